"""Requests per change of the running pipeline, read from one phase's request counts.

Splits what the pipeline asked of each service into the work (moving and applying changes)
and the idle polling (empty receives and reads), and turns the work into billable usage.
Pure arithmetic over `RequestCounts`; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orgsync.bench.ledger import RequestCounts
from orgsync.bench.pricing import Usage, estimate_cost

# The SQS calls that move messages; attribute reads and idle polls are not per-change work.
_MESSAGE_OPERATIONS = (
    "SendMessage",
    "SendMessageBatch",
    "ReceiveMessage",
    "DeleteMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch",
)


@dataclass(frozen=True)
class PipelineNames:
    """Which table and queues are the pipeline's (the rest is the local emulation's)."""

    organizations_table: str
    main_queue: str
    dead_letter_queue: str
    checkpoint_table: str


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


@dataclass(frozen=True)
class PhaseCosts:
    """The pipeline's requests during one phase, and the user changes written in it."""

    counts: RequestCounts
    names: PipelineNames
    user_changes: int

    # -- DynamoDB (the consumer's, on the organizations table)

    @property
    def dynamodb_requests(self) -> int:
        return self.counts.total("dynamodb", resource=self.names.organizations_table)

    @property
    def applied_changes(self) -> int:
        return self.counts.total(
            "dynamodb", "TransactWriteItems", self.names.organizations_table, "replication_puts"
        )

    @property
    def memberships_written(self) -> int:
        table = self.names.organizations_table
        return self.counts.total(
            "dynamodb", "TransactWriteItems", table, "membership_puts"
        ) + self.counts.total("dynamodb", "TransactWriteItems", table, "membership_deletes")

    @property
    def checkpoint_requests(self) -> int:
        """The local pipe's checkpoints: EventBridge Pipes keeps these itself, unbilled."""
        return self.counts.total("dynamodb", resource=self.names.checkpoint_table)

    # -- SQS

    @property
    def empty_receives(self) -> int:
        return self.counts.total("sqs", "ReceiveMessage", measure="empty")

    @property
    def invocations(self) -> int:
        """Receives that returned messages: each became one handler invocation."""
        receives = self.counts.total("sqs", "ReceiveMessage", self.names.main_queue)
        return receives - self.counts.total("sqs", "ReceiveMessage", self.names.main_queue, "empty")

    @property
    def sqs_work_requests(self) -> int:
        moving = sum(
            self.counts.total("sqs", operation, name)
            for operation in _MESSAGE_OPERATIONS
            for name in (self.names.main_queue, self.names.dead_letter_queue)
        )
        return moving - self.empty_receives

    @property
    def pipes_records(self) -> int:
        return self.counts.total("sqs", "SendMessageBatch", self.names.main_queue, "entries")

    # -- Streams

    @property
    def streams_requests(self) -> int:
        return self.counts.total("dynamodbstreams")

    @property
    def streams_reads_with_records(self) -> int:
        return self.counts.total("dynamodbstreams", "GetRecords") - self.counts.total(
            "dynamodbstreams", "GetRecords", measure="empty"
        )

    def usage(self, lambda_seconds_per_invocation: float) -> Usage:
        table = self.names.organizations_table
        return Usage(
            user_changes=self.user_changes,
            transactional_item_writes=self.counts.total(
                "dynamodb", "TransactWriteItems", table, "actions"
            ),
            standard_item_writes=sum(
                self.counts.total("dynamodb", operation, table)
                for operation in ("PutItem", "DeleteItem", "UpdateItem")
            ),
            consistent_item_reads=self.counts.total("dynamodb", "BatchGetItem", table, "keys")
            + self.counts.total("dynamodb", "GetItem", table),
            sqs_requests=self.sqs_work_requests,
            lambda_invocations=self.invocations,
            lambda_seconds_per_invocation=lambda_seconds_per_invocation,
            pipes_requests=self.pipes_records,
        )

    def as_dict(self, lambda_seconds_per_invocation: float) -> dict[str, Any]:
        changes = self.user_changes
        memberships = self.memberships_written
        return {
            "user_changes_written": changes,
            "user_changes_applied": self.applied_changes,
            "memberships_written": memberships,
            "per_user_change": {
                "dynamodb": _ratio(self.dynamodb_requests, changes),
                "sqs": _ratio(self.sqs_work_requests, changes),
                "streams": _ratio(self.streams_requests, changes),
                "streams_reads_with_records": _ratio(self.streams_reads_with_records, changes),
            },
            "per_applied_change": {
                "dynamodb": _ratio(self.dynamodb_requests, self.applied_changes),
            },
            "per_membership_written": {
                "dynamodb": _ratio(self.dynamodb_requests, memberships),
                "sqs": _ratio(self.sqs_work_requests, memberships),
                "streams": _ratio(self.streams_requests, memberships),
            },
            "invocations": self.invocations,
            "records_per_invocation": _ratio(
                self.counts.total("sqs", "ReceiveMessage", self.names.main_queue, "messages"),
                self.invocations,
            ),
            "idle": {
                "empty_receives": self.empty_receives,
                "empty_stream_reads": self.counts.total(
                    "dynamodbstreams", "GetRecords", measure="empty"
                ),
                "checkpoint_requests": self.checkpoint_requests,
            },
            "price_usd_per_million_user_changes": estimate_cost(
                self.usage(lambda_seconds_per_invocation)
            ).as_dict(),
            "requests": {
                service: self.counts.calls_by_operation(service)
                for service in ("dynamodb", "sqs", "dynamodbstreams")
            },
        }
