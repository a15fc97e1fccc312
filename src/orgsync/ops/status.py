"""A cheap snapshot of the pipeline for operators: queue depths, table sizes, pipe positions.

Talks to SQS and DynamoDB through injected clients; never scans a large table. Must not depend on
the CLI or the local stack (the pipe checkpoint table is read by name, as data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from orgsync.schema.keys import replication_key
from orgsync.schema.organizations import decode_replication

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class QueueDepth:
    name: str
    visible: int
    in_flight: int
    delayed: int


@dataclass(frozen=True)
class TableSummary:
    """`item_count` is DescribeTable's figure, which AWS refreshes only about every six hours."""

    name: str
    item_count: int | None


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
    main_queue: QueueDepth
    dead_letter_queue: QueueDepth
    tables: tuple[TableSummary, ...]
    # None when the local pipe's checkpoint table does not exist (e.g. on AWS, where Pipes runs).
    pipe_positions: tuple[ShardPosition, ...] | None
    user: UserReplication | None


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


def read_table_summary(dynamodb: DynamoDBClient, table_name: str) -> TableSummary:
    table = dynamodb.describe_table(TableName=table_name)["Table"]
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
    user_id: str | None = None,
    organizations_table: str | None = None,
) -> PipelineStatus:
    user = None
    if user_id is not None and organizations_table is not None:
        user = read_user_replication(dynamodb, organizations_table, user_id)
    return PipelineStatus(
        main_queue=read_queue_depth(sqs, main_queue),
        dead_letter_queue=read_queue_depth(sqs, dead_letter_queue),
        tables=tuple(read_table_summary(dynamodb, name) for name in tables),
        pipe_positions=read_pipe_positions(dynamodb, checkpoint_table),
        user=user,
    )


def _shard_position(item: dict[str, AttributeValueTypeDef]) -> ShardPosition:
    # The pipe's partition key is "<pipe name>|<stream ARN>" (orgsync.local.pipes.checkpoint).
    return ShardPosition(
        pipe=item.get("pipe", {}).get("S", "?").partition("|")[0],
        shard_id=item.get("shard_id", {}).get("S", "?"),
        sequence_number=item.get("sequence_number", {}).get("S"),
        finished=bool(item.get("finished", {}).get("BOOL", False)),
    )
