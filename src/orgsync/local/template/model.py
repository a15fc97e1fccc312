"""The local stack's model of template.yaml: tables, queues, pipes and functions, names resolved.

Everything the local stack creates or runs comes from here, so nothing is configured twice.
Plain values; `reader.load_stack_model` builds them from the template.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from orgsync.local.errors import TemplateError

if TYPE_CHECKING:
    from orgsync.local.pipes.settings import PipeSettings

__all__ = [
    "AttributeDefinition",
    "FunctionModel",
    "KeyElement",
    "NotEmulated",
    "PipeModel",
    "QueueModel",
    "RedrivePolicyModel",
    "SqsEventSourceModel",
    "StackModel",
    "TableModel",
]


@dataclass(frozen=True)
class KeyElement:
    attribute_name: str
    key_type: str  # HASH | RANGE, as the DynamoDB API spells it


@dataclass(frozen=True)
class AttributeDefinition:
    attribute_name: str
    attribute_type: str  # S | N | B


@dataclass(frozen=True)
class TableModel:
    logical_id: str
    name: str
    arn: str
    key_schema: tuple[KeyElement, ...]
    attribute_definitions: tuple[AttributeDefinition, ...]
    stream_view_type: str | None
    ttl_attribute: str | None
    billing_mode: str
    global_secondary_indexes: tuple[Mapping[str, Any], ...] = ()
    local_secondary_indexes: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class RedrivePolicyModel:
    dead_letter_target_arn: str
    dead_letter_queue_name: str
    max_receive_count: int


@dataclass(frozen=True)
class QueueModel:
    logical_id: str
    name: str
    url: str
    arn: str
    fifo: bool
    content_based_deduplication: bool
    deduplication_scope: str | None
    fifo_throughput_limit: str | None
    visibility_timeout: int
    message_retention_period: int
    delay_seconds: int | None = None
    receive_message_wait_time_seconds: int | None = None
    maximum_message_size: int | None = None
    sqs_managed_sse_enabled: bool | None = None
    redrive_policy: RedrivePolicyModel | None = None
    redrive_allow_policy: str | None = None  # JSON, as SQS takes it


@dataclass(frozen=True)
class PipeModel:
    """A DynamoDB-stream → SQS pipe; the live stream ARN is only known once the table exists."""

    logical_id: str
    name: str
    source_table_name: str
    target_queue_name: str
    target_queue_url: str
    batch_size: int
    starting_position: str
    maximum_batching_window_seconds: float
    filter_patterns: tuple[str, ...]
    message_group_id: str | None
    message_deduplication_id: str | None
    maximum_retry_attempts: int | None = None
    maximum_record_age_seconds: int | None = None
    dead_letter_target_arn: str | None = None
    dead_letter_queue_name: str | None = None
    dead_letter_queue_url: str | None = None

    def settings(
        self,
        stream_arn: str,
        *,
        target_queue_url: str | None = None,
        dead_letter_queue_url: str | None = None,
        checkpoint_table: str | None = None,
    ) -> PipeSettings:
        """The pipe emulation's settings, bound to the stream the live table actually has."""
        from orgsync.local.pipes.settings import PipeSettings  # noqa: PLC0415 - pipe is optional here

        extra: dict[str, Any] = {}
        if checkpoint_table is not None:
            extra["checkpoint_table"] = checkpoint_table
        return PipeSettings(
            name=self.name,
            stream_arn=stream_arn,
            target_queue_url=target_queue_url or self.target_queue_url,
            batch_size=self.batch_size,
            starting_position=self.starting_position,
            maximum_batching_window_seconds=self.maximum_batching_window_seconds,
            filter_patterns=self.filter_patterns,
            message_group_id=self.message_group_id,
            message_deduplication_id=self.message_deduplication_id,
            dead_letter_queue_url=dead_letter_queue_url or self.dead_letter_queue_url,
            **extra,
        )


@dataclass(frozen=True)
class SqsEventSourceModel:
    """An SQS event source (SAM `Events: {Type: SQS}` or an AWS::Lambda::EventSourceMapping)."""

    name: str
    queue_name: str
    queue_url: str
    queue_arn: str
    batch_size: int
    function_response_types: tuple[str, ...]
    maximum_concurrency: int | None
    maximum_batching_window_seconds: int = 0
    enabled: bool = True

    @property
    def report_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types


@dataclass(frozen=True)
class FunctionModel:
    logical_id: str
    name: str
    arn: str
    handler: str  # dotted path: module.function
    runtime: str | None
    timeout_seconds: int
    memory_size_mb: int
    environment: Mapping[str, str]
    sqs_event_sources: tuple[SqsEventSourceModel, ...] = ()


@dataclass(frozen=True)
class NotEmulated:
    """A resource of the template the local stack neither creates nor runs, and why."""

    logical_id: str
    resource_type: str
    reason: str

    def __str__(self) -> str:
        return f"{self.logical_id} ({self.resource_type}: {self.reason})"


@dataclass(frozen=True)
class StackModel:
    template_path: Path
    stack_name: str
    region: str
    account_id: str
    partition: str
    parameters: Mapping[str, str]
    tables: tuple[TableModel, ...]
    queues: tuple[QueueModel, ...]
    pipes: tuple[PipeModel, ...]
    functions: tuple[FunctionModel, ...]
    _physical_ids: Mapping[str, str] = field(default_factory=dict, repr=False)
    # What AWS would run and this stack does not (a bucket, a state machine, a function nothing
    # invokes): named once when the stack starts, so that no one mistakes it for emulated.
    not_emulated: tuple[NotEmulated, ...] = ()

    def table(self, logical_id: str) -> TableModel:
        return _find(self.tables, logical_id, "table")

    def queue(self, logical_id: str) -> QueueModel:
        return _find(self.queues, logical_id, "queue")

    def pipe(self, logical_id: str) -> PipeModel:
        return _find(self.pipes, logical_id, "pipe")

    def function(self, logical_id: str) -> FunctionModel:
        return _find(self.functions, logical_id, "function")

    def table_named(self, name: str) -> TableModel:
        for table in self.tables:
            if table.name == name:
                return table
        raise TemplateError(f"the template declares no table named {name!r}")

    def queue_named(self, name: str) -> QueueModel:
        for queue in self.queues:
            if queue.name == name:
                return queue
        raise TemplateError(f"the template declares no queue named {name!r}")

    def queues_in_creation_order(self) -> tuple[QueueModel, ...]:
        """Dead-letter queues before those redriving into them (RedrivePolicy needs the ARN)."""
        ordered: list[QueueModel] = []
        by_name = {queue.name: queue for queue in self.queues}

        def visit(queue: QueueModel, trail: tuple[str, ...]) -> None:
            if queue in ordered:
                return
            if queue.name in trail:
                raise TemplateError(f"redrive policies form a cycle through {queue.name}")
            policy = queue.redrive_policy
            if policy is not None and policy.dead_letter_queue_name in by_name:
                visit(by_name[policy.dead_letter_queue_name], (*trail, queue.name))
            ordered.append(queue)

        for queue in self.queues:
            visit(queue, ())
        return tuple(ordered)


_Model = TypeVar("_Model", TableModel, QueueModel, PipeModel, FunctionModel)


def _find(items: Sequence[_Model], logical_id: str, kind: str) -> _Model:
    for item in items:
        if item.logical_id == logical_id:
            return item
    raise TemplateError(f"the template declares no {kind} {logical_id!r}")
