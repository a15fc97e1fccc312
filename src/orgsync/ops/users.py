"""Operator writes and reads of user records in the users table (the replication's source).

Talks to DynamoDB through an injected client; must not depend on the CLI, pipe or local stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orgsync.errors import OrgsyncError
from orgsync.schema.users import User, replication_problem
from orgsync.store.users import UsersTable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "UnreplicableUserError",
    "User",
    "UserNotFoundError",
    "check_replicable",
    "default_email",
    "delete_user",
    "get_user",
    "put_user",
]

# The seed's `put-item` (Taskfile `put-item`); the two org ids are ours, the seed's were not kept.
DEFAULT_USER_ID = "auth0|66199504eddfc16953adc92e"
DEFAULT_EMAIL = "admin@example.org"
DEFAULT_STATUS = "ACTIVE"
DEFAULT_ORGANIZATIONS: tuple[str, ...] = ("org-acme", "org-globex")


class UserNotFoundError(OrgsyncError):
    """The users table has no METADATA item for this user id."""


class UnreplicableUserError(OrgsyncError):
    """The user could be written but never replicated (`schema.users.replication_problem`):
    refused before writing, so no record is left for the pipe or the consumer to drop."""


def default_email(user_id: str) -> str | None:
    """The seed's address belongs to the seed's user; any other user gets no email attribute
    (allowed by the contract: its memberships then carry none) rather than someone else's."""
    return DEFAULT_EMAIL if user_id == DEFAULT_USER_ID else None


def put_user(dynamodb: DynamoDBClient, table_name: str, user: User) -> None:
    """Write the whole user item; `organizations` goes out as L of S, the form the seed wrote.

    Raises UnreplicableUserError, writing nothing, for a user the pipeline could not carry.
    """
    check_replicable(user)
    UsersTable(dynamodb, table_name).put(user)


def check_replicable(user: User) -> None:
    """Raise UnreplicableUserError when the pipeline could not carry this user."""
    problem = replication_problem(user.user_id, user.organizations)
    if problem is not None:
        raise UnreplicableUserError(f"cannot replicate this user: {problem}")


def get_user(dynamodb: DynamoDBClient, table_name: str, user_id: str) -> User:
    user = UsersTable(dynamodb, table_name).get(user_id)
    if user is None:
        raise UserNotFoundError(f"user {user_id!r} not found in table {table_name}")
    return user


def delete_user(dynamodb: DynamoDBClient, table_name: str, user_id: str) -> bool:
    """Delete the user item; returns whether it existed (deleting twice is not an error)."""
    return UsersTable(dynamodb, table_name).delete(user_id)
