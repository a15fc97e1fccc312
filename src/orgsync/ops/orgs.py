"""Operator reads of organization memberships: the read pattern the replication exists for.

Talks to DynamoDB through an injected client; must not depend on the CLI or the local stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

ORGANIZATION_PREFIX = "ORGANIZATION#"
MEMBERSHIP_PREFIX = "MEMBERSHIP#"


@dataclass(frozen=True)
class Membership:
    org_id: str
    user_id: str
    email: str
    status: str
    source_seq: int | None


def list_members(dynamodb: DynamoDBClient, table_name: str, org_id: str) -> list[Membership]:
    """One paginated Query (DESIGN.md §1); strongly consistent so a just-replicated change shows."""
    paginator = dynamodb.get_paginator("query")
    pages = paginator.paginate(
        TableName=table_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={
            ":pk": {"S": f"{ORGANIZATION_PREFIX}{org_id}"},
            ":prefix": {"S": MEMBERSHIP_PREFIX},
        },
        ConsistentRead=True,
    )
    return [_membership(org_id, item) for page in pages for item in page.get("Items", [])]


def _membership(org_id: str, item: dict[str, AttributeValueTypeDef]) -> Membership:
    # user_id is also recoverable from the sort key, which the replication always writes.
    sort_key = item.get("sk", {}).get("S", "")
    user_id = item.get("user_id", {}).get("S") or sort_key.removeprefix(MEMBERSHIP_PREFIX)
    seq = item.get("source_seq", {}).get("N")
    return Membership(
        org_id=item.get("org_id", {}).get("S", org_id),
        user_id=user_id,
        email=item.get("email", {}).get("S", ""),
        status=item.get("status", {}).get("S", ""),
        source_seq=int(seq) if seq is not None else None,
    )
