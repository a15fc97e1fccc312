"""DynamoDB adapter of the users table: the operator's writes and reads, and consistent batch
reads of users' replicated state for reconcile.

Item shapes are `orgsync.schema.users`'. The batch reads retry under the store's one policy
(`store.retry`); the operator's single writes and reads are one call each, errors as AWS says.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from orgsync.domain.model import UserState
from orgsync.schema.keys import key_strings, user_id_of_user_key, user_key
from orgsync.schema.rejection import Rejected
from orgsync.schema.users import User, decode_user, encode_user, user_state_of_item
from orgsync.store.retry import Caller, RetryPolicy

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

UserRead = UserState | Rejected | None


class UsersTable:
    """User items in the users table (the replication's source of truth)."""

    def __init__(
        self, client: DynamoDBClient, table_name: str, *, retry: RetryPolicy | None = None
    ) -> None:
        self._client = client
        self._table = table_name
        self._caller = Caller(retry or RetryPolicy())

    @property
    def name(self) -> str:
        return self._table

    def put(self, user: User) -> None:
        """Write the whole item (a PutItem the stream turns into one INSERT or MODIFY)."""
        self._client.put_item(TableName=self._table, Item=encode_user(user))

    def get(self, user_id: str) -> User | None:
        """Strongly consistent read, in the operator's view; None when there is no such user."""
        response = self._client.get_item(
            TableName=self._table, Key=user_key(user_id), ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else decode_user(user_id, item)

    def delete(self, user_id: str) -> bool:
        """Delete the item; returns whether it existed (deleting twice is not an error)."""
        response = self._client.delete_item(
            TableName=self._table, Key=user_key(user_id), ReturnValues="ALL_OLD"
        )
        return bool(response.get("Attributes"))

    def read_states(self, user_ids: Collection[str]) -> dict[str, UserRead]:
        """Replicated state of each user by consistent BatchGetItem (None: no such user)."""
        states: dict[str, UserRead] = dict.fromkeys(user_ids)
        keys = [user_key(user_id) for user_id in states]
        for item in self._caller.batch_get(self._client, self._table, keys):
            user_id = user_id_of_user_key(*key_strings(item))
            if user_id is not None:
                states[user_id] = user_state_of_item(item)
        return states
