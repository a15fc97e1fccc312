"""What `EmbeddedStack.status()` reports: queue depths, pipe positions, poller counters.

Plain values, and the one read they need (queue depth); used by `local up`'s status line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from orgsync.local.errors import EmbeddedStackError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

    from orgsync.local.lambda_.sqs_poller import PollerStats, SqsEventSourcePoller
    from orgsync.local.pipes.metrics import PipeMetrics, ShardPosition
    from orgsync.local.pipes.thread import PipeThread

_DEPTH_ATTRIBUTES: list[Any] = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


@dataclass(frozen=True)
class QueueDepth:
    name: str
    url: str
    visible: int
    in_flight: int
    delayed: int


@dataclass(frozen=True)
class PipeStatus:
    name: str
    running: bool
    caught_up: bool
    metrics: PipeMetrics
    shards: tuple[ShardPosition, ...]
    failures: int
    last_error: str | None


@dataclass(frozen=True)
class PollerStatus:
    function_name: str
    queue_name: str
    concurrency: int
    stats: PollerStats


@dataclass(frozen=True)
class StackStatus:
    endpoint_url: str
    store: str
    queues: tuple[QueueDepth, ...]
    pipes: tuple[PipeStatus, ...]
    pollers: tuple[PollerStatus, ...]
    faults: Mapping[str, int] = field(default_factory=dict)  # chaos: faults injected by kind
    # Tables and queues the template declares that the endpoint no longer has (deleted by a
    # client): reported, never fatal; `EmbeddedStack.recreate_missing` puts them back.
    missing: tuple[str, ...] = ()

    def queue(self, name: str) -> QueueDepth:
        for depth in self.queues:
            if depth.name == name:
                return depth
        raise EmbeddedStackError(f"no queue named {name}")


class QueueMissingError(EmbeddedStackError):
    """The queue does not exist (any more) on the endpoint."""


_MISSING_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
)


def read_queue_depth(sqs: SQSClient, queue_url: str) -> QueueDepth:
    """The queue's depth; QueueMissingError when it does not exist."""
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=_DEPTH_ATTRIBUTES)[
            "Attributes"
        ]
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING_QUEUE_CODES:
            raise QueueMissingError(f"queue {queue_url} does not exist") from exc
        raise EmbeddedStackError(f"cannot read the depth of {queue_url}: {exc}") from exc
    except BotoCoreError as exc:
        raise EmbeddedStackError(f"cannot read the depth of {queue_url}: {exc}") from exc
    return QueueDepth(
        name=queue_url.rstrip("/").rsplit("/", 1)[-1],
        url=queue_url,
        visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
    )


def missing_tables(dynamodb: DynamoDBClient, declared: list[str]) -> list[str]:
    """Which of the declared tables the endpoint does not have (one ListTables per 100)."""
    existing: set[str] = set()
    try:
        for page in dynamodb.get_paginator("list_tables").paginate():
            existing.update(page.get("TableNames", []))
    except (ClientError, BotoCoreError) as exc:
        raise EmbeddedStackError(f"cannot list the tables: {exc}") from exc
    return [name for name in declared if name not in existing]


def pipe_status(thread: PipeThread) -> PipeStatus:
    return PipeStatus(
        name=thread.runner.settings.name,
        running=thread.alive,
        caught_up=thread.runner.is_caught_up(),
        metrics=thread.runner.metrics.snapshot(),
        shards=tuple(thread.runner.position()),
        failures=len(thread.runner.failures),
        last_error=thread.error,
    )


def poller_status(poller: SqsEventSourcePoller) -> PollerStatus:
    return PollerStatus(
        function_name=poller.config.function_name,
        queue_name=poller.config.queue_url.rsplit("/", 1)[-1],
        concurrency=poller.config.maximum_concurrency,
        stats=poller.stats(),
    )
