"""Creates the template's tables and queues on an endpoint (moto, DynamoDB Local, LocalStack, AWS).

Idempotent: what exists already is kept and brought to the template's settings where the API
allows it. Takes boto3 clients from its caller; knows nothing of how the endpoint is served.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from orgsync.local.errors import ResourceCreationError
from orgsync.local.template.model import QueueModel, StackModel, TableModel

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

__all__ = ["CreatedResources", "create_resources", "create_tables", "create_queues"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CreatedResources:
    """What the endpoint actually calls the resources: queue URLs/ARNs and live stream ARNs."""

    queue_urls: Mapping[str, str]  # logical id → QueueUrl returned by the endpoint
    queue_arns: Mapping[str, str]  # logical id → QueueArn attribute
    stream_arns: Mapping[str, str]  # table logical id → LatestStreamArn (streamed tables only)


def create_resources(
    model: StackModel, *, dynamodb: DynamoDBClient, sqs: SQSClient
) -> CreatedResources:
    """Create every table and queue of the model; return the names the endpoint gave them."""
    stream_arns = create_tables(model, dynamodb=dynamodb)
    queue_urls, queue_arns = create_queues(model, sqs=sqs)
    return CreatedResources(
        queue_urls=MappingProxyType(queue_urls),
        queue_arns=MappingProxyType(queue_arns),
        stream_arns=MappingProxyType(stream_arns),
    )


# --------------------------------------------------------------------------- tables


def create_tables(model: StackModel, *, dynamodb: DynamoDBClient) -> dict[str, str]:
    """Create the tables (on-demand, whatever the template bills) and return live stream ARNs."""
    stream_arns: dict[str, str] = {}
    for table in model.tables:
        description = _ensure_table(table, dynamodb)
        arn = description.get("LatestStreamArn")
        if table.stream_view_type is not None and arn:
            stream_arns[table.logical_id] = str(arn)
        if table.ttl_attribute is not None:
            _enable_ttl(table, dynamodb)
    return stream_arns


def _table_request(table: TableModel) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TableName": table.name,
        "KeySchema": [
            {"AttributeName": key.attribute_name, "KeyType": key.key_type}
            for key in table.key_schema
        ],
        "AttributeDefinitions": [
            {"AttributeName": item.attribute_name, "AttributeType": item.attribute_type}
            for item in table.attribute_definitions
        ],
        # Locally capacity means nothing and provisioned throughput only adds throttling noise.
        "BillingMode": "PAY_PER_REQUEST",
    }
    if table.stream_view_type is not None:
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": table.stream_view_type,
        }
    if table.global_secondary_indexes:
        request["GlobalSecondaryIndexes"] = [
            {key: value for key, value in index.items() if key != "ProvisionedThroughput"}
            for index in table.global_secondary_indexes
        ]
    if table.local_secondary_indexes:
        request["LocalSecondaryIndexes"] = [dict(index) for index in table.local_secondary_indexes]
    return request


def _ensure_table(table: TableModel, dynamodb: DynamoDBClient) -> Mapping[str, Any]:
    try:
        created = dynamodb.create_table(**_table_request(table))
        description: Mapping[str, Any] = created["TableDescription"]
        logger.info("created table %s", table.name)
    except ClientError as exc:
        if _code(exc) != "ResourceInUseException":
            raise ResourceCreationError(f"cannot create table {table.name}: {exc}") from exc
        description = _describe_table(table.name, dynamodb)
        description = _enable_stream_if_missing(table, description, dynamodb)
    if description.get("TableStatus") != "ACTIVE":
        try:
            dynamodb.get_waiter("table_exists").wait(
                TableName=table.name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
        except Exception as exc:  # botocore's WaiterError, or a ClientError while waiting
            raise ResourceCreationError(f"table {table.name} did not become ACTIVE") from exc
        description = _describe_table(table.name, dynamodb)
    return description


def _describe_table(name: str, dynamodb: DynamoDBClient) -> Mapping[str, Any]:
    try:
        return dynamodb.describe_table(TableName=name)["Table"]
    except ClientError as exc:
        raise ResourceCreationError(f"cannot describe table {name}: {exc}") from exc


def _enable_stream_if_missing(
    table: TableModel, description: Mapping[str, Any], dynamodb: DynamoDBClient
) -> Mapping[str, Any]:
    # A table kept in a state dir from before the stream was declared: enable it rather than
    # run a pipe with nothing to read.
    spec = description.get("StreamSpecification") or {}
    if table.stream_view_type is None or spec.get("StreamEnabled"):
        return description
    stream: Any = {"StreamEnabled": True, "StreamViewType": table.stream_view_type}
    try:
        updated = dynamodb.update_table(TableName=table.name, StreamSpecification=stream)
    except ClientError as exc:
        raise ResourceCreationError(f"cannot enable the stream of {table.name}: {exc}") from exc
    logger.info("enabled the stream of existing table %s", table.name)
    result: Mapping[str, Any] = updated["TableDescription"]
    return result


def _enable_ttl(table: TableModel, dynamodb: DynamoDBClient) -> None:
    try:
        dynamodb.update_time_to_live(
            TableName=table.name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": str(table.ttl_attribute)},
        )
    except ClientError as exc:
        # Already enabled (ValidationException), or a store without TTL (DynamoDB Local accepts
        # the setting but never expires items): expiry is an optimisation, not correctness here.
        logger.debug("TTL on %s not changed: %s", table.name, exc)


# --------------------------------------------------------------------------- queues


def create_queues(model: StackModel, *, sqs: SQSClient) -> tuple[dict[str, str], dict[str, str]]:
    """Create the queues, dead-letter queues first; return (logical id → URL, logical id → ARN)."""
    urls: dict[str, str] = {}
    arns: dict[str, str] = {}
    arn_by_name: dict[str, str] = {}
    for queue in model.queues_in_creation_order():
        attributes = queue_attributes(queue, dead_letter_arns=arn_by_name)
        url = _ensure_queue(queue, attributes, sqs)
        try:
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
        except (ClientError, KeyError) as exc:
            raise ResourceCreationError(f"cannot read the ARN of queue {queue.name}") from exc
        urls[queue.logical_id] = url
        arns[queue.logical_id] = arn
        arn_by_name[queue.name] = arn
    return urls, arns


def queue_attributes(
    queue: QueueModel, *, dead_letter_arns: Mapping[str, str]
) -> dict[QueueAttributeNameType, str]:
    """CreateQueue attributes; the redrive target is the ARN the endpoint gave the DLQ."""
    attributes: dict[QueueAttributeNameType, str] = {
        "VisibilityTimeout": str(queue.visibility_timeout),
        "MessageRetentionPeriod": str(queue.message_retention_period),
    }
    if queue.fifo:
        attributes["FifoQueue"] = "true"
        attributes["ContentBasedDeduplication"] = str(queue.content_based_deduplication).lower()
        if queue.deduplication_scope is not None:
            attributes["DeduplicationScope"] = queue.deduplication_scope
        if queue.fifo_throughput_limit is not None:
            attributes["FifoThroughputLimit"] = queue.fifo_throughput_limit
    optional: dict[QueueAttributeNameType, int | None] = {
        "DelaySeconds": queue.delay_seconds,
        "ReceiveMessageWaitTimeSeconds": queue.receive_message_wait_time_seconds,
        "MaximumMessageSize": queue.maximum_message_size,
    }
    attributes.update({key: str(value) for key, value in optional.items() if value is not None})
    if queue.sqs_managed_sse_enabled is not None:
        attributes["SqsManagedSseEnabled"] = str(queue.sqs_managed_sse_enabled).lower()
    if queue.redrive_policy is not None:
        policy = queue.redrive_policy
        target = dead_letter_arns.get(policy.dead_letter_queue_name, policy.dead_letter_target_arn)
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": target, "maxReceiveCount": policy.max_receive_count}
        )
    if queue.redrive_allow_policy is not None:
        attributes["RedriveAllowPolicy"] = queue.redrive_allow_policy
    return attributes


def _ensure_queue(
    queue: QueueModel, attributes: Mapping[QueueAttributeNameType, str], sqs: SQSClient
) -> str:
    try:
        url = sqs.create_queue(QueueName=queue.name, Attributes=dict(attributes))["QueueUrl"]
        logger.info("created queue %s", queue.name)
        return url
    except ClientError as exc:
        if _code(exc) not in ("QueueAlreadyExists", "QueueNameExists"):
            raise ResourceCreationError(f"cannot create queue {queue.name}: {exc}") from exc
    # It exists with other attributes (e.g. an older template): bring the mutable ones in line.
    try:
        url = sqs.get_queue_url(QueueName=queue.name)["QueueUrl"]
        mutable: dict[QueueAttributeNameType, str] = {
            key: value for key, value in attributes.items() if key != "FifoQueue"
        }
        sqs.set_queue_attributes(QueueUrl=url, Attributes=mutable)
    except ClientError as exc:
        raise ResourceCreationError(f"cannot update queue {queue.name}: {exc}") from exc
    logger.info("updated existing queue %s", queue.name)
    return url


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
