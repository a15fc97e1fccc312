"""Emptying the template's tables and queues through the API, for a test's clean slate.

Through the API rather than moto's internals, so that it works the same on moto, DynamoDB Local
and any other endpoint: the tables keep their streams and ARNs (the pipe reads on), the queues
their URLs (the poller polls on). Deleting items writes REMOVE records to the stream: the caller
has the pipe skip them (`PipeRunner.skip_to_end`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from orgsync.local.errors import EmbeddedStackError
from orgsync.local.status import read_queue_depth

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

    from orgsync.local.template.model import StackModel, TableModel
    from orgsync.local.template.resources import CreatedResources

_BATCH_WRITE_LIMIT: Final = 25
_MAX_UNPROCESSED_ROUNDS: Final = 20


def empty_resources(
    model: StackModel, created: CreatedResources, *, dynamodb: DynamoDBClient, sqs: SQSClient
) -> None:
    """Empty every table and queue of the template.

    One after the other: sent together they cost as much (the embedded store answers one
    request at a time, and the client side is bound by the GIL), and they are simpler so.
    """
    for table in model.tables:
        empty_table(dynamodb, table)
    for queue in model.queues:
        empty_queue(sqs, created.queue_urls[queue.logical_id])


def empty_table(dynamodb: DynamoDBClient, table: TableModel) -> int:
    """Delete every item of the table; returns how many there were."""
    key_names = [key.attribute_name for key in table.key_schema]
    names = {f"#k{index}": name for index, name in enumerate(key_names)}
    keys: list[dict[str, Any]] = []
    try:
        for page in dynamodb.get_paginator("scan").paginate(
            TableName=table.name,
            ProjectionExpression=", ".join(names),
            ExpressionAttributeNames=names,
            ConsistentRead=True,
        ):
            keys.extend(page.get("Items", []))
        for start in range(0, len(keys), _BATCH_WRITE_LIMIT):
            _delete_batch(dynamodb, table.name, keys[start : start + _BATCH_WRITE_LIMIT])
    except ClientError as exc:
        raise EmbeddedStackError(f"cannot empty table {table.name}: {exc}") from exc
    return len(keys)


def _delete_batch(dynamodb: DynamoDBClient, table_name: str, keys: Sequence[Any]) -> None:
    requests: Any = {table_name: [{"DeleteRequest": {"Key": key}} for key in keys]}
    for _ in range(_MAX_UNPROCESSED_ROUNDS):
        requests = dynamodb.batch_write_item(RequestItems=requests).get("UnprocessedItems")
        if not requests:
            return
    raise EmbeddedStackError(f"cannot empty table {table_name}: writes stay unprocessed")


def empty_queue(sqs: SQSClient, queue_url: str) -> None:
    """Drop every message, in flight or not (SQS's PurgeQueue).

    SQS allows one purge a minute per queue; the pytest fixture's stack process lifts moto's
    limit (`remote`). Elsewhere a second purge within the minute is refused, which is fine
    when the queue is empty anyway.
    """
    try:
        sqs.purge_queue(QueueUrl=queue_url)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code.endswith("PurgeQueueInProgress"):
            depth = read_queue_depth(sqs, queue_url)
            if not (depth.visible or depth.in_flight or depth.delayed):
                return
        raise EmbeddedStackError(f"cannot purge queue {queue_url}: {exc}") from exc
