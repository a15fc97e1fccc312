"""A cheap snapshot of the pipeline for operators: queues, table sizes, pipe positions, and
what needs an operator, with the command to run.

Talks to SQS, DynamoDB and (optionally) CloudWatch through injected clients; never scans a large
table, never consumes or delays a message. Must not depend on the CLI or the local stack (the
pipe checkpoint table is read by name, as data). Anything missing is reported, not raised.

The age of a queue's oldest message is no SQS attribute. The two DLQs are sampled: one receive
of up to 10 messages with a visibility timeout of 0 (they stay visible), reading `SentTimestamp`
— harmless there, as neither DLQ has a redrive policy that would count the receive. The main
queue is never received from (each receive counts toward its `maxReceiveCount` of 5, and
would push messages toward the DLQ); its age is CloudWatch's `ApproximateAgeOfOldestMessage`,
read when a CloudWatch client is given (AWS), unknown otherwise (local emulators publish no
SQS metrics).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from orgsync.schema.keys import replication_key
from orgsync.schema.organizations import decode_replication

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef
    from mypy_boto3_sqs import SQSClient

# The template's UserStreamQueueOldestMessageAlarm fires at this age: normal lag is seconds.
STUCK_AFTER_SECONDS = 300
_SAMPLE = 10
_MISSING_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
)
_NOT_DEPLOYED = (
    "check --endpoint-url and --name-prefix",
    "or deploy the stack (locally: `orgsync local up`)",
)
_DEPTH_ATTRIBUTES: list[Any] = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


class MetricsReader(Protocol):
    """The one CloudWatch call status makes (a boto3 CloudWatch client has it)."""

    def get_metric_statistics(self, **kwargs: Any) -> Mapping[str, Any]: ...


class QueueRole(StrEnum):
    MAIN = "main"
    DEAD_LETTER = "dead-letter"
    PIPE_DEAD_LETTER = "pipe dead-letter"


class AgeSource(StrEnum):
    SAMPLED = "sampled"  # the oldest SentTimestamp among up to 10 messages received
    CLOUDWATCH = "cloudwatch"  # ApproximateAgeOfOldestMessage, Maximum of the last minutes


@dataclass(frozen=True)
class QueueDepth:
    name: str
    visible: int
    in_flight: int
    delayed: int


@dataclass(frozen=True)
class QueueStatus:
    """One queue as status shows it; `exists=False` when it is not there (counts then 0)."""

    name: str
    role: QueueRole
    exists: bool
    visible: int = 0
    in_flight: int = 0
    delayed: int = 0
    oldest_age_seconds: float | None = None
    age_source: AgeSource | None = None

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed


@dataclass(frozen=True)
class Attention:
    """Something an operator should act on, and what to run: one short line per step."""

    subject: str
    problem: str
    hints: tuple[str, ...]


@dataclass(frozen=True)
class TableSummary:
    """`item_count` is DescribeTable's figure, which AWS refreshes only about every six hours."""

    name: str
    item_count: int | None
    exists: bool = True


@dataclass(frozen=True)
class ShardPosition:
    """A local pipe's checkpoint of one shard, as the local pipe emulation writes it."""

    pipe: str
    shard_id: str
    sequence_number: str | None
    finished: bool


@dataclass(frozen=True)
class UserReplication:
    """One user's REPLICATION record: the newest change applied for that user."""

    user_id: str
    orgs: tuple[str, ...]
    seq: int | None
    deleted: bool
    pending_seq: int | None
    dirty: tuple[str, ...]


@dataclass(frozen=True)
class PipelineStatus:
    main_queue: QueueStatus
    dead_letter_queue: QueueStatus
    pipe_dead_letter_queue: QueueStatus | None  # None when not asked for
    tables: tuple[TableSummary, ...]
    # None when the local pipe's checkpoint table does not exist (e.g. on AWS, where Pipes runs).
    pipe_positions: tuple[ShardPosition, ...] | None
    user: UserReplication | None
    attention: tuple[Attention, ...]

    @property
    def queues(self) -> tuple[QueueStatus, ...]:
        queues = (self.main_queue, self.dead_letter_queue, self.pipe_dead_letter_queue)
        return tuple(queue for queue in queues if queue is not None)


def read_queue_depth(sqs: SQSClient, queue_name: str) -> QueueDepth:
    url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    ).get("Attributes", {})
    return QueueDepth(
        name=queue_name,
        visible=int(attributes.get("ApproximateNumberOfMessages", "0")),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0")),
        delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", "0")),
    )


def read_queue_status(
    sqs: SQSClient,
    queue_name: str,
    role: QueueRole,
    *,
    cloudwatch: MetricsReader | None = None,
    now: datetime | None = None,
) -> QueueStatus:
    """Depth and oldest message age of one queue; a missing queue is reported as missing."""
    now = now or datetime.now(tz=UTC)
    try:
        url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=_DEPTH_ATTRIBUTES).get(
            "Attributes", {}
        )
    except ClientError as exc:
        if _error_code(exc) in _MISSING_QUEUE_CODES:
            return QueueStatus(name=queue_name, role=role, exists=False)
        raise
    depth = QueueStatus(
        name=queue_name,
        role=role,
        exists=True,
        visible=int(attributes.get("ApproximateNumberOfMessages", "0")),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0")),
        delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", "0")),
    )
    if role is QueueRole.MAIN:
        age = _cloudwatch_age(cloudwatch, queue_name, now) if cloudwatch is not None else None
        source = AgeSource.CLOUDWATCH
    else:
        age = _sampled_age(sqs, url, now) if depth.visible else None
        source = AgeSource.SAMPLED
    if age is None:
        return depth
    return dataclasses.replace(depth, oldest_age_seconds=age, age_source=source)


def read_table_summary(dynamodb: DynamoDBClient, table_name: str) -> TableSummary:
    try:
        table = dynamodb.describe_table(TableName=table_name)["Table"]
    except ClientError as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            return TableSummary(name=table_name, item_count=None, exists=False)
        raise
    return TableSummary(name=table_name, item_count=table.get("ItemCount"))


def read_pipe_positions(
    dynamodb: DynamoDBClient, checkpoint_table: str
) -> tuple[ShardPosition, ...] | None:
    """The local pipe's per-shard checkpoints; a handful of items, so a Scan is fine."""
    positions: list[ShardPosition] = []
    try:
        for page in dynamodb.get_paginator("scan").paginate(
            TableName=checkpoint_table, ConsistentRead=True
        ):
            positions.extend(_shard_position(item) for item in page.get("Items", []))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise
    return tuple(sorted(positions, key=lambda position: (position.pipe, position.shard_id)))


def read_user_replication(
    dynamodb: DynamoDBClient, organizations_table: str, user_id: str
) -> UserReplication | None:
    item = dynamodb.get_item(
        TableName=organizations_table, Key=replication_key(user_id), ConsistentRead=True
    ).get("Item")
    if item is None:
        return None
    record = decode_replication(item)
    return UserReplication(
        user_id=user_id,
        orgs=tuple(sorted(record.orgs)),
        seq=record.seq,
        deleted=record.deleted,
        pending_seq=record.pending_seq,
        dirty=tuple(sorted(record.dirty)),
    )


def read_status(
    sqs: SQSClient,
    dynamodb: DynamoDBClient,
    *,
    main_queue: str,
    dead_letter_queue: str,
    tables: tuple[str, ...],
    checkpoint_table: str,
    pipe_dead_letter_queue: str | None = None,
    user_id: str | None = None,
    organizations_table: str | None = None,
    cloudwatch: MetricsReader | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
) -> PipelineStatus:
    now = clock()

    def queue(name: str, role: QueueRole) -> QueueStatus:
        return read_queue_status(sqs, name, role, cloudwatch=cloudwatch, now=now)

    main = queue(main_queue, QueueRole.MAIN)
    dead_letter = queue(dead_letter_queue, QueueRole.DEAD_LETTER)
    pipe_dead_letter = (
        None
        if pipe_dead_letter_queue is None
        else queue(pipe_dead_letter_queue, QueueRole.PIPE_DEAD_LETTER)
    )
    summaries = tuple(read_table_summary(dynamodb, name) for name in tables)
    missing = {summary.name for summary in summaries if not summary.exists}
    table = organizations_table if organizations_table not in missing else None
    user = None
    if user_id is not None and table is not None:
        user = read_user_replication(dynamodb, table, user_id)
    queues = tuple(q for q in (main, dead_letter, pipe_dead_letter) if q is not None)
    return PipelineStatus(
        main_queue=main,
        dead_letter_queue=dead_letter,
        pipe_dead_letter_queue=pipe_dead_letter,
        tables=summaries,
        pipe_positions=read_pipe_positions(dynamodb, checkpoint_table),
        user=user,
        attention=needs_attention(queues, summaries),
    )


def needs_attention(
    queues: tuple[QueueStatus, ...], tables: tuple[TableSummary, ...]
) -> tuple[Attention, ...]:
    """What an operator should act on, in the order to look at it, each with a command."""
    found: list[Attention] = []
    for queue in queues:
        if not queue.exists:
            found.append(
                Attention(
                    queue.name,
                    f"the {queue.role} queue does not exist",
                    _NOT_DEPLOYED,
                )
            )
        elif queue.role is QueueRole.DEAD_LETTER and queue.total:
            found.append(
                Attention(
                    queue.name,
                    f"{queue.total} message(s) in the consumer's DLQ",
                    (
                        "inspect: `orgsync dlq list`",
                        "drop the obsolete ones: `orgsync dlq discard --stale`",
                        "once the cause is fixed: `orgsync dlq redrive`",
                    ),
                )
            )
        elif queue.role is QueueRole.PIPE_DEAD_LETTER and queue.total:
            found.append(
                Attention(
                    queue.name,
                    f"{queue.total} batch(es) the pipe gave up on (shard and sequence ranges, "
                    "not records)",
                    ("restore the affected users: `orgsync reconcile --repair`",),
                )
            )
        elif (
            queue.role is QueueRole.MAIN
            and queue.oldest_age_seconds is not None
            and queue.oldest_age_seconds >= STUCK_AFTER_SECONDS
        ):
            found.append(
                Attention(
                    queue.name,
                    f"the oldest message has waited {int(queue.oldest_age_seconds)} s: a user's "
                    "group is blocked by retries, or the consumer is not running",
                    (
                        "check the consumer's errors (its log, the errors alarm)",
                        "after 5 receives a message moves to the DLQ: `orgsync dlq list`",
                    ),
                )
            )
    found.extend(
        Attention(
            table.name,
            "the table does not exist",
            _NOT_DEPLOYED,
        )
        for table in tables
        if not table.exists
    )
    return tuple(found)


def _sampled_age(sqs: SQSClient, queue_url: str, now: datetime) -> float | None:
    """Age of the oldest of up to 10 messages received and left visible (VisibilityTimeout 0)."""
    try:
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=_SAMPLE,
            VisibilityTimeout=0,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["SentTimestamp"],
        ).get("Messages", [])
    except ClientError:
        return None
    sent = [
        int(stamp)
        for message in messages
        if (stamp := message.get("Attributes", {}).get("SentTimestamp"))
    ]
    if not sent:
        return None  # a short poll may return nothing from a non-empty standard queue
    oldest = datetime.fromtimestamp(min(sent) / 1000, tz=UTC)
    return max(0.0, (now - oldest).total_seconds())


def _cloudwatch_age(cloudwatch: MetricsReader, queue_name: str, now: datetime) -> float | None:
    """The latest one-minute Maximum of ApproximateAgeOfOldestMessage over the last 5 minutes."""
    try:
        response = cloudwatch.get_metric_statistics(
            Namespace="AWS/SQS",
            MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": queue_name}],
            StartTime=now - timedelta(minutes=5),
            EndTime=now,
            Period=60,
            Statistics=["Maximum"],
        )
    except (ClientError, BotoCoreError):
        return None  # no permission, no metric yet: unknown, not an error of status
    points = [point for point in response.get("Datapoints", []) if "Maximum" in point]
    if not points:
        return None
    latest = max(points, key=lambda point: point["Timestamp"])
    return float(latest["Maximum"])


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _shard_position(item: dict[str, AttributeValueTypeDef]) -> ShardPosition:
    # The pipe's partition key is "<pipe name>|<stream ARN>" (orgsync.local.pipes.checkpoint).
    return ShardPosition(
        pipe=item.get("pipe", {}).get("S", "?").partition("|")[0],
        shard_id=item.get("shard_id", {}).get("S", "?"),
        sequence_number=item.get("sequence_number", {}).get("S"),
        finished=bool(item.get("finished", {}).get("BOOL", False)),
    )
