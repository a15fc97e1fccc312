"""Operator writes and reads of user records in the users table (the replication's source).

Talks to DynamoDB through an injected client; must not depend on the CLI, pipe or local stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from orgsync.errors import OrgsyncError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

USER_PREFIX = "USER#"
METADATA_SK = "METADATA"

# The seed's `put-item` (Taskfile `put-item`); the two org ids are ours, the seed's were not kept.
DEFAULT_USER_ID = "auth0|66199504eddfc16953adc92e"
DEFAULT_EMAIL = "admin@example.org"
DEFAULT_STATUS = "ACTIVE"
DEFAULT_ORGANIZATIONS: tuple[str, ...] = ("org-acme", "org-globex")


class UserNotFoundError(OrgsyncError):
    """The users table has no METADATA item for this user id."""


@dataclass(frozen=True)
class User:
    user_id: str
    email: str
    status: str
    organizations: tuple[str, ...]


def user_key(user_id: str) -> dict[str, AttributeValueTypeDef]:
    return {"pk": {"S": f"{USER_PREFIX}{user_id}"}, "sk": {"S": METADATA_SK}}


def put_user(dynamodb: DynamoDBClient, table_name: str, user: User) -> None:
    """Write the whole user item; `organizations` goes out as L of S, the form the seed wrote."""
    dynamodb.put_item(
        TableName=table_name,
        Item={
            **user_key(user.user_id),
            "email": {"S": user.email},
            "status": {"S": user.status},
            "organizations": {"L": [{"S": org} for org in user.organizations]},
        },
    )


def get_user(dynamodb: DynamoDBClient, table_name: str, user_id: str) -> User:
    response = dynamodb.get_item(TableName=table_name, Key=user_key(user_id), ConsistentRead=True)
    item = response.get("Item")
    if item is None:
        raise UserNotFoundError(f"user {user_id!r} not found in table {table_name}")
    return User(
        user_id=user_id,
        email=item.get("email", {}).get("S", ""),
        status=item.get("status", {}).get("S", ""),
        organizations=_organizations(item.get("organizations")),
    )


def delete_user(dynamodb: DynamoDBClient, table_name: str, user_id: str) -> bool:
    """Delete the user item; returns whether it existed (deleting twice is not an error)."""
    response = dynamodb.delete_item(
        TableName=table_name, Key=user_key(user_id), ReturnValues="ALL_OLD"
    )
    return bool(response.get("Attributes"))


def _organizations(value: AttributeValueTypeDef | None) -> tuple[str, ...]:
    # DESIGN.md §1: organizations may be L of S or SS; show both the same way.
    if value is None:
        return ()
    if "SS" in value:
        return tuple(sorted(value["SS"]))
    return tuple(
        str(element["S"])
        for element in value.get("L", ())
        if isinstance(element, dict) and "S" in element
    )
