"""Operator reads of organization memberships: the read pattern the replication exists for.

Talks to DynamoDB through an injected client; must not depend on the CLI or the local stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orgsync.domain.model import Membership
from orgsync.schema.keys import MEMBERSHIP_PREFIX, organization_partition
from orgsync.schema.organizations import decode_membership

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["Membership", "list_members"]


def list_members(dynamodb: DynamoDBClient, table_name: str, org_id: str) -> list[Membership]:
    """One paginated Query (docs/design.md §1); consistent, so a just-replicated change shows."""
    paginator = dynamodb.get_paginator("query")
    pages = paginator.paginate(
        TableName=table_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={
            ":pk": {"S": organization_partition(org_id)},
            ":prefix": {"S": MEMBERSHIP_PREFIX},
        },
        ConsistentRead=True,
    )
    members = (decode_membership(item) for page in pages for item in page.get("Items", []))
    return [member for member in members if member is not None]
