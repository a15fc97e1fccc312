"""Scratch tables for the benchmark: exact copies of a stack table's definition, then dropped.

A copy keeps keys, billing and the stream setting, so writes to it cost the store what writes
to the original cost, while nothing in the pipeline reads it. Talks to DynamoDB only.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from orgsync.errors import OrgsyncError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_ACTIVE_TIMEOUT_SECONDS = 30.0


class ScratchTableError(OrgsyncError):
    """A scratch table could not be created or did not become ACTIVE in time."""


def copy_table(dynamodb: DynamoDBClient, source: str, target: str) -> str:
    """Create `target` with `source`'s keys, billing and stream; returns the name once ACTIVE."""
    table = dynamodb.describe_table(TableName=source)["Table"]
    request: dict[str, Any] = {
        "TableName": target,
        "KeySchema": table["KeySchema"],
        "AttributeDefinitions": table["AttributeDefinitions"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    stream = table.get("StreamSpecification")
    if stream and stream.get("StreamEnabled"):
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }
    dynamodb.create_table(**request)
    deadline = time.monotonic() + _ACTIVE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        status = dynamodb.describe_table(TableName=target)["Table"]["TableStatus"]
        if status == "ACTIVE":
            return target
        time.sleep(0.1)
    raise ScratchTableError(f"table {target} did not become ACTIVE in {_ACTIVE_TIMEOUT_SECONDS}s")


def drop_table(dynamodb: DynamoDBClient, name: str) -> None:
    """Delete a scratch table; a table already gone is fine."""
    try:
        dynamodb.delete_table(TableName=name)
    except dynamodb.exceptions.ResourceNotFoundException:
        return
