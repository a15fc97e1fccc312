"""Reads template.yaml into the `StackModel`: what the local stack creates and runs.

Intrinsics are resolved by `intrinsics.Resolver`; SAM's Globals and CloudFormation's and SQS's
defaults are applied here. What the model leaves out is listed in `StackModel.not_emulated`
(bar permissions, log groups and alarms, which have nothing to run here). Standard library,
PyYAML (through `cloudformation`) and the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from orgsync.local.errors import TemplateError
from orgsync.local.template.cloudformation import (
    load_template,
    scalar_text,
    to_int,
    to_optional_int,
    truthy,
)
from orgsync.local.template.intrinsics import Resolver
from orgsync.local.template.model import (
    AttributeDefinition,
    FunctionModel,
    KeyElement,
    NotEmulated,
    PipeModel,
    QueueModel,
    RedrivePolicyModel,
    SqsEventSourceModel,
    StackModel,
    TableModel,
)

__all__ = ["load_stack_model"]

# SAM's defaults for AWS::Serverless::Function when neither the function nor Globals set them.
_SAM_DEFAULT_TIMEOUT: Final = 3
_SAM_DEFAULT_MEMORY: Final = 128
# SQS's defaults (CreateQueue API reference).
_SQS_DEFAULT_VISIBILITY_TIMEOUT: Final = 30
_SQS_DEFAULT_RETENTION: Final = 345_600
_DEFAULT_EVENT_BATCH_SIZE: Final = 10

# What the local stack creates or runs; functions only when an enabled SQS event source invokes
# them, event source mappings only from SQS.
_EMULATED: Final = frozenset({"AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::Pipes::Pipe"})
# Kinds with nothing to run here, so not worth a word: permissions (nothing is authorised
# locally), log groups (logs go to the terminal or --log-file), alarms (no metrics locally).
_NOTHING_TO_RUN: Final = frozenset(
    {
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::Logs::LogGroup",
        "AWS::CloudWatch::Alarm",
        "AWS::SQS::QueuePolicy",
        "AWS::Lambda::Permission",
    }
)
_NOT_EMULATED_REASONS: Final = MappingProxyType(
    {
        "AWS::S3::Bucket": "no S3 store runs locally",
        "AWS::S3::BucketPolicy": "no S3 store runs locally",
        "AWS::Serverless::StateMachine": "Step Functions is not emulated",
        "AWS::StepFunctions::StateMachine": "Step Functions is not emulated",
    }
)


def load_stack_model(
    path: Path,
    *,
    parameters: Mapping[str, str] = MappingProxyType({}),
    region: str = "us-east-1",
    account_id: str = "000000000000",
    stack_name: str = "orgsync-local",
    endpoint_url: str | None = None,
    physical_ids: Mapping[str, str] = MappingProxyType({}),
) -> StackModel:
    """Read template.yaml into what the local stack creates and runs.

    `endpoint_url` makes queue URLs path-style under that endpoint (as moto and SQS's own
    endpoints return them); `physical_ids` overrides what `Ref` of a resource gives (logical id →
    value), for endpoints that name things their own way (e.g. LocalStack's queue URLs).
    """
    template = load_template(path)
    resolver = Resolver(
        template,
        parameters=parameters,
        region=region,
        account_id=account_id,
        stack_name=stack_name,
        endpoint_url=endpoint_url,
        physical_ids=physical_ids,
    )
    resources: Mapping[str, Any] = template["Resources"]
    included = [lid for lid in resources if resolver.resource_included(lid)]

    def of_type(*kinds: str) -> list[str]:
        return [lid for lid in included if (resources[lid] or {}).get("Type") in kinds]

    queues = tuple(_queue_model(resolver, lid) for lid in of_type("AWS::SQS::Queue"))
    tables = tuple(_table_model(resolver, lid) for lid in of_type("AWS::DynamoDB::Table"))
    pipes = tuple(_pipe_model(resolver, lid, queues) for lid in of_type("AWS::Pipes::Pipe"))
    function_ids = of_type("AWS::Serverless::Function", "AWS::Lambda::Function")
    mappings = {
        lid: resolver.resolve((resources[lid] or {}).get("Properties") or {})
        for lid in of_type("AWS::Lambda::EventSourceMapping")
    }
    functions = tuple(
        _function_model(resolver, lid, template, queues, list(mappings.values()))
        for lid in function_ids
    )
    not_emulated = _not_emulated(resources, included, functions, mappings)
    flat_parameters = {
        name: value if isinstance(value, str) else ",".join(value)
        for name, value in resolver.parameters.items()
    }
    return StackModel(
        template_path=path,
        stack_name=stack_name,
        region=region,
        account_id=account_id,
        partition=resolver.partition,
        parameters=MappingProxyType(flat_parameters),
        tables=tables,
        queues=queues,
        pipes=pipes,
        functions=functions,
        _physical_ids=MappingProxyType(dict(physical_ids)),
        not_emulated=not_emulated,
    )


def _not_emulated(
    resources: Mapping[str, Any],
    included: Sequence[str],
    functions: Sequence[FunctionModel],
    mappings: Mapping[str, Mapping[str, Any]],
) -> tuple[NotEmulated, ...]:
    """Every included resource the stack neither creates nor runs, in template order."""
    invoked = {f.logical_id for f in functions if any(s.enabled for s in f.sqs_event_sources)}
    skipped: list[NotEmulated] = []
    for logical_id in included:
        kind = str((resources[logical_id] or {}).get("Type", ""))
        if kind in _NOTHING_TO_RUN or kind in _EMULATED:
            continue
        if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            if logical_id in invoked:
                continue
            reason = "no enabled SQS event source invokes it"
        elif kind == "AWS::Lambda::EventSourceMapping":
            if ":sqs:" in str(mappings[logical_id].get("EventSourceArn", "")):
                continue
            reason = "only SQS event sources run locally"
        else:
            reason = _NOT_EMULATED_REASONS.get(kind, "not emulated locally")
        skipped.append(NotEmulated(logical_id, kind, reason))
    return tuple(skipped)


def _properties(resolver: Resolver, logical_id: str) -> dict[str, Any]:
    _, properties = resolver.resource(logical_id)
    resolved = resolver.resolve(dict(properties))
    assert isinstance(resolved, dict)
    return resolved


def _table_model(resolver: Resolver, logical_id: str) -> TableModel:
    properties = _properties(resolver, logical_id)
    stream = properties.get("StreamSpecification") or {}
    ttl = properties.get("TimeToLiveSpecification") or {}
    ttl_enabled = truthy(ttl.get("Enabled", False)) and ttl.get("AttributeName")
    return TableModel(
        logical_id=logical_id,
        name=resolver.name_of(logical_id),
        arn=resolver.arn_of(logical_id),
        key_schema=tuple(
            KeyElement(str(item["AttributeName"]), str(item["KeyType"]))
            for item in properties.get("KeySchema") or ()
        ),
        attribute_definitions=tuple(
            AttributeDefinition(str(item["AttributeName"]), str(item["AttributeType"]))
            for item in properties.get("AttributeDefinitions") or ()
        ),
        stream_view_type=stream.get("StreamViewType"),
        ttl_attribute=str(ttl["AttributeName"]) if ttl_enabled else None,
        billing_mode=str(properties.get("BillingMode", "PROVISIONED")),
        global_secondary_indexes=tuple(properties.get("GlobalSecondaryIndexes") or ()),
        local_secondary_indexes=tuple(properties.get("LocalSecondaryIndexes") or ()),
    )


def _queue_model(resolver: Resolver, logical_id: str) -> QueueModel:
    properties = _properties(resolver, logical_id)
    name = resolver.name_of(logical_id)
    redrive = properties.get("RedrivePolicy")
    if isinstance(redrive, str):
        redrive = json.loads(redrive)
    policy = None
    if redrive:
        target_arn = str(redrive["deadLetterTargetArn"])
        policy = RedrivePolicyModel(
            dead_letter_target_arn=target_arn,
            dead_letter_queue_name=target_arn.rsplit(":", 1)[-1],
            max_receive_count=to_int(
                redrive.get("maxReceiveCount"), f"{logical_id} maxReceiveCount"
            ),
        )
    allow = properties.get("RedriveAllowPolicy")
    sse = properties.get("SqsManagedSseEnabled")
    return QueueModel(
        logical_id=logical_id,
        name=name,
        url=str(resolver.resolve({"Ref": logical_id})),
        arn=resolver.arn_of(logical_id),
        fifo=truthy(properties.get("FifoQueue", False)),
        content_based_deduplication=truthy(properties.get("ContentBasedDeduplication", False)),
        deduplication_scope=properties.get("DeduplicationScope"),
        fifo_throughput_limit=properties.get("FifoThroughputLimit"),
        visibility_timeout=to_int(
            properties.get("VisibilityTimeout", _SQS_DEFAULT_VISIBILITY_TIMEOUT),
            f"{logical_id} VisibilityTimeout",
        ),
        message_retention_period=to_int(
            properties.get("MessageRetentionPeriod", _SQS_DEFAULT_RETENTION),
            f"{logical_id} MessageRetentionPeriod",
        ),
        delay_seconds=to_optional_int(properties.get("DelaySeconds"), "DelaySeconds"),
        receive_message_wait_time_seconds=to_optional_int(
            properties.get("ReceiveMessageWaitTimeSeconds"), "ReceiveMessageWaitTimeSeconds"
        ),
        maximum_message_size=to_optional_int(
            properties.get("MaximumMessageSize"), "MaximumMessageSize"
        ),
        sqs_managed_sse_enabled=None if sse is None else truthy(sse),
        redrive_policy=policy,
        redrive_allow_policy=(
            None if allow is None else allow if isinstance(allow, str) else json.dumps(allow)
        ),
    )


def _queue_for_arn(queues: Sequence[QueueModel], arn: str, what: str) -> QueueModel:
    for queue in queues:
        if queue.arn == arn or queue.name == arn.rsplit(":", 1)[-1]:
            return queue
    raise TemplateError(f"{what} {arn} is not a queue this template declares")


_STREAM_ARN: Final = re.compile(r"^arn:[^:]+:dynamodb:[^:]*:[^:]*:table/([^/]+)/stream/")


def _pipe_model(resolver: Resolver, logical_id: str, queues: Sequence[QueueModel]) -> PipeModel:
    properties = _properties(resolver, logical_id)
    source = str(properties.get("Source", ""))
    match = _STREAM_ARN.match(source)
    if match is None:
        raise TemplateError(f"pipe {logical_id}: only DynamoDB stream sources run locally")
    target = _queue_for_arn(queues, str(properties.get("Target", "")), f"pipe {logical_id} target")
    source_parameters = properties.get("SourceParameters") or {}
    stream_parameters = source_parameters.get("DynamoDBStreamParameters") or {}
    filters = (source_parameters.get("FilterCriteria") or {}).get("Filters") or ()
    patterns = tuple(
        item["Pattern"] if isinstance(item["Pattern"], str) else json.dumps(item["Pattern"])
        for item in filters
    )
    sqs_parameters = (properties.get("TargetParameters") or {}).get("SqsQueueParameters") or {}
    dead_letter_arn = (stream_parameters.get("DeadLetterConfig") or {}).get("Arn")
    dead_letter = None
    if dead_letter_arn is not None and ":sqs:" in str(dead_letter_arn):
        dead_letter = _queue_for_arn(queues, str(dead_letter_arn), f"pipe {logical_id} DLQ")
    return PipeModel(
        logical_id=logical_id,
        name=resolver.name_of(logical_id),
        source_table_name=match.group(1),
        target_queue_name=target.name,
        target_queue_url=target.url,
        batch_size=to_int(stream_parameters.get("BatchSize", 10), f"{logical_id} BatchSize"),
        starting_position=str(stream_parameters.get("StartingPosition", "TRIM_HORIZON")),
        maximum_batching_window_seconds=float(
            stream_parameters.get("MaximumBatchingWindowInSeconds", 0)
        ),
        filter_patterns=patterns,
        message_group_id=sqs_parameters.get("MessageGroupId"),
        message_deduplication_id=sqs_parameters.get("MessageDeduplicationId"),
        maximum_retry_attempts=to_optional_int(
            stream_parameters.get("MaximumRetryAttempts"), "MaximumRetryAttempts"
        ),
        maximum_record_age_seconds=to_optional_int(
            stream_parameters.get("MaximumRecordAgeInSeconds"), "MaximumRecordAgeInSeconds"
        ),
        dead_letter_target_arn=dead_letter_arn,
        dead_letter_queue_name=dead_letter.name if dead_letter else None,
        dead_letter_queue_url=dead_letter.url if dead_letter else None,
    )


def _event_source(
    name: str, properties: Mapping[str, Any], queue: QueueModel
) -> SqsEventSourceModel:
    scaling = properties.get("ScalingConfig") or {}
    concurrency = scaling.get("MaximumConcurrency")
    return SqsEventSourceModel(
        name=name,
        queue_name=queue.name,
        queue_url=queue.url,
        queue_arn=queue.arn,
        batch_size=to_int(properties.get("BatchSize", _DEFAULT_EVENT_BATCH_SIZE), "BatchSize"),
        function_response_types=tuple(
            str(kind) for kind in properties.get("FunctionResponseTypes") or ()
        ),
        maximum_concurrency=to_optional_int(concurrency, "MaximumConcurrency"),
        maximum_batching_window_seconds=to_int(
            properties.get("MaximumBatchingWindowInSeconds", 0), "MaximumBatchingWindowInSeconds"
        ),
        enabled=truthy(properties.get("Enabled", True)),
    )


def _function_model(
    resolver: Resolver,
    logical_id: str,
    template: Mapping[str, Any],
    queues: Sequence[QueueModel],
    mappings: Sequence[Mapping[str, Any]],
) -> FunctionModel:
    kind, _ = resolver.resource(logical_id)
    properties = _properties(resolver, logical_id)
    if kind == "AWS::Serverless::Function":
        # SAM's Globals are defaults; a function's Environment.Variables merge over them.
        globals_ = resolver.resolve(((template.get("Globals") or {}).get("Function")) or {})
        merged = {**globals_, **properties}
        global_env = (globals_.get("Environment") or {}).get("Variables") or {}
        own_env = (properties.get("Environment") or {}).get("Variables") or {}
        merged["Environment"] = {"Variables": {**global_env, **own_env}}
        properties = merged
    name = resolver.name_of(logical_id)
    arn = resolver.arn_of(logical_id)
    variables = (properties.get("Environment") or {}).get("Variables") or {}
    sources: list[SqsEventSourceModel] = []
    for event_name, event in (properties.get("Events") or {}).items():
        if (event or {}).get("Type") != "SQS":
            continue
        event_properties = event.get("Properties") or {}
        queue = _queue_for_arn(queues, str(event_properties.get("Queue")), f"event {event_name}")
        sources.append(_event_source(event_name, event_properties, queue))
    for index, mapping in enumerate(mappings):
        target = str(mapping.get("FunctionName", ""))
        if target not in (name, arn, logical_id) and not target.endswith(f":function:{name}"):
            continue
        source_arn = str(mapping.get("EventSourceArn", ""))
        if ":sqs:" not in source_arn:
            continue
        queue = _queue_for_arn(queues, source_arn, "event source mapping")
        sources.append(_event_source(f"EventSourceMapping{index}", mapping, queue))
    handler = properties.get("Handler")
    if not isinstance(handler, str) or "." not in handler:
        raise TemplateError(f"function {logical_id} has no Handler of the form module.function")
    return FunctionModel(
        logical_id=logical_id,
        name=name,
        arn=arn,
        handler=handler,
        runtime=properties.get("Runtime"),
        timeout_seconds=to_int(properties.get("Timeout", _SAM_DEFAULT_TIMEOUT), "Timeout"),
        memory_size_mb=to_int(properties.get("MemorySize", _SAM_DEFAULT_MEMORY), "MemorySize"),
        environment=MappingProxyType({str(k): scalar_text(v) for k, v in variables.items()}),
        sqs_event_sources=tuple(sources),
    )
