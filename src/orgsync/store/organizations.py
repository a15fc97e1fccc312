"""Consistent reads of the organizations table by key, for reconcile's streaming passes.

The apply loop's own reads (`store.replication`) raise on a record orgsync cannot decode;
reconcile must instead count such a record and go on, so it reads the raw items here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from orgsync.domain.model import Membership, ReplicationState
from orgsync.schema.keys import membership_key, replication_key
from orgsync.schema.organizations import decode_membership, decode_replication, replication_user_id
from orgsync.store.retry import Caller

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class Unreadable(str):
    """Why a REPLICATION record could not be decoded (the record exists: not None)."""


RecordRead = ReplicationState | Unreadable | None


def unreadable_reason(exc: Exception) -> Unreadable:
    return Unreadable(f"unreadable REPLICATION record ({type(exc).__name__})")


def decode_record(item: dict[str, object]) -> ReplicationState | Unreadable:
    try:
        return decode_replication(item)
    except (KeyError, ValueError, TypeError) as exc:
        return unreadable_reason(exc)


class OrganizationsReader:
    """Batch reads of REPLICATION records and memberships (100 keys per BatchGetItem)."""

    def __init__(
        self, client: DynamoDBClient, table_name: str, caller: Caller | None = None
    ) -> None:
        self._client = client
        self._table = table_name
        self._caller = caller or Caller()

    def records(self, user_ids: Collection[str]) -> dict[str, RecordRead]:
        reads: dict[str, RecordRead] = dict.fromkeys(user_ids)
        keys = [replication_key(user_id) for user_id in reads]
        for item in self._caller.batch_get(self._client, self._table, keys):
            user_id = replication_user_id(item)
            if user_id is not None:
                reads[user_id] = decode_record(item)
        return reads

    def memberships(self, pairs: Iterable[tuple[str, str]]) -> list[Membership]:
        """The membership items that exist among these (org id, user id) keys."""
        keys = [membership_key(org_id, user_id) for org_id, user_id in pairs]
        found: list[Membership] = []
        for item in self._caller.batch_get(self._client, self._table, keys):
            member = decode_membership(item)
            if member is not None:
                found.append(member)
        return found
