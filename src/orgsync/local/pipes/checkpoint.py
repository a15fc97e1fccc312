"""Per-shard checkpoints of a local pipe, kept in a small DynamoDB table of the same store.

Takes a boto3 DynamoDB client; knows nothing of records, filters or targets.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from orgsync.local.pipes.errors import PipeCheckpointError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

logger = logging.getLogger(__name__)

# Key: one partition per (pipe, stream). A table recreated under the same name gets a new
# stream ARN, and moto reuses one fixed shard id for every stream, so the pipe name alone
# would resume a new stream from an old stream's sequence numbers.
_PIPE_KEY = "pipe"
_SHARD_KEY = "shard_id"
_TABLE_READY_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Checkpoint:
    shard_id: str
    # Last sequence number the target accepted (or the filter consumed); None = nothing yet.
    sequence_number: str | None
    # The shard is closed and read to its end: its children may be read.
    finished: bool = False


class CheckpointStore:
    def __init__(
        self, dynamodb: DynamoDBClient, *, table_name: str, pipe_name: str, stream_arn: str
    ) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._partition = f"{pipe_name}|{stream_arn}"

    def ensure_table(self) -> None:
        """Create the table if missing (on-demand) and wait until it is ACTIVE."""
        try:
            status: str | None
            try:
                status = self._dynamodb.describe_table(TableName=self._table)["Table"].get(
                    "TableStatus"
                )
            except self._dynamodb.exceptions.ResourceNotFoundException:
                status = self._create_table()
            deadline = time.monotonic() + _TABLE_READY_TIMEOUT_SECONDS
            while status != "ACTIVE":
                if time.monotonic() > deadline:
                    raise PipeCheckpointError(f"checkpoint table {self._table} never became ACTIVE")
                time.sleep(0.1)
                status = self._dynamodb.describe_table(TableName=self._table)["Table"].get(
                    "TableStatus"
                )
        except (ClientError, BotoCoreError) as exc:
            raise PipeCheckpointError(f"cannot prepare checkpoint table {self._table}") from exc

    def _create_table(self) -> str | None:  # the new table's status
        try:
            created = self._dynamodb.create_table(
                TableName=self._table,
                KeySchema=[
                    {"AttributeName": _PIPE_KEY, "KeyType": "HASH"},
                    {"AttributeName": _SHARD_KEY, "KeyType": "RANGE"},
                ],
                AttributeDefinitions=[
                    {"AttributeName": _PIPE_KEY, "AttributeType": "S"},
                    {"AttributeName": _SHARD_KEY, "AttributeType": "S"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        except self._dynamodb.exceptions.ResourceInUseException:
            # Another pipe created it meanwhile.
            return None
        logger.info("created pipe checkpoint table %s", self._table)
        return created["TableDescription"].get("TableStatus")

    def load(self) -> dict[str, Checkpoint]:
        """Every checkpoint of this pipe on this stream, by shard id (strongly consistent)."""
        checkpoints: dict[str, Checkpoint] = {}
        try:
            paginator = self._dynamodb.get_paginator("query")
            pages = paginator.paginate(
                TableName=self._table,
                KeyConditionExpression="#p = :p",
                ExpressionAttributeNames={"#p": _PIPE_KEY},
                ExpressionAttributeValues={":p": {"S": self._partition}},
                ConsistentRead=True,
            )
            for page in pages:
                for item in page.get("Items", []):
                    shard_id = item[_SHARD_KEY]["S"]
                    seq = item.get("sequence_number", {}).get("S")
                    finished = bool(item.get("finished", {}).get("BOOL", False))
                    checkpoints[shard_id] = Checkpoint(shard_id, seq, finished)
        except (ClientError, BotoCoreError) as exc:
            raise PipeCheckpointError(f"cannot read checkpoints from {self._table}") from exc
        return checkpoints

    def save(self, checkpoint: Checkpoint) -> None:
        # Sequence numbers are stored as S: they can exceed the 38 digits of an N, and are
        # compared as integers in code, never by DynamoDB.
        item: dict[str, AttributeValueTypeDef] = {
            _PIPE_KEY: {"S": self._partition},
            _SHARD_KEY: {"S": checkpoint.shard_id},
            "finished": {"BOOL": checkpoint.finished},
            "updated_at": {"S": datetime.now(UTC).isoformat()},
        }
        if checkpoint.sequence_number is not None:
            item["sequence_number"] = {"S": checkpoint.sequence_number}
        try:
            self._dynamodb.put_item(TableName=self._table, Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise PipeCheckpointError(
                f"cannot write checkpoint of shard {checkpoint.shard_id} to {self._table}"
            ) from exc
