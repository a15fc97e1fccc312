"""The organizations table's item format (docs/design.md §1): memberships and REPLICATION records.

Pure: standard library only. Built by hand rather than with boto3's TypeSerializer: the shapes
are fixed and few, and this runs once per membership written. Ids are read from keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from orgsync.domain.model import Membership, ReplicationState
from orgsync.schema.attributes import string_of
from orgsync.schema.keys import (
    TypedItem,
    key_strings,
    membership_key,
    membership_of_key,
    replication_key,
    user_id_of_replication_key,
)

TTL_ATTRIBUTE = "expires_at"
# Set on a REPLICATION record only while a chunked commit holds its claim.
PENDING_ATTRIBUTE = "pending_seq"
FENCE_ATTRIBUTE = "revision"


def membership_item(member: Membership) -> TypedItem:
    item = membership_key(member.org_id, member.user_id)
    item["org_id"] = {"S": member.org_id}
    item["user_id"] = {"S": member.user_id}
    item["source_seq"] = {"N": str(member.source_seq)}
    if member.email is not None:
        item["email"] = {"S": member.email}
    if member.status is not None:
        item["status"] = {"S": member.status}
    return item


def decode_membership(item: Mapping[str, Any]) -> Membership | None:
    """The membership an item is, ids from its key; None for any other item of the table.

    Lenient about attributes (a membership edited by hand is still judged, not skipped): an
    email or status that is not a string reads as absent, a bad `source_seq` as 0.
    """
    ids = membership_of_key(*key_strings(item))
    if ids is None:
        return None
    org_id, user_id = ids
    return Membership(
        org_id=org_id,
        user_id=user_id,
        email=string_of(item.get("email")),
        status=string_of(item.get("status")),
        source_seq=_int_or_zero(item.get("source_seq")),
    )


def replication_item(
    user_id: str, state: ReplicationState, *, expires_at: int | None = None
) -> TypedItem:
    item = replication_key(user_id)
    item["user_id"] = {"S": user_id}
    item["seq"] = {"N": str(state.seq)}
    item[FENCE_ATTRIBUTE] = {"N": str(state.revision)}
    item["orgs"] = _string_list(state.orgs)
    item["deleted"] = {"BOOL": state.deleted}
    if state.fingerprint is not None:
        item["fingerprint"] = {"S": state.fingerprint}
    if state.pending_seq is not None:
        item[PENDING_ATTRIBUTE] = {"N": str(state.pending_seq)}
        item["dirty"] = _string_list(state.dirty)
    if expires_at is not None:
        item[TTL_ATTRIBUTE] = {"N": str(expires_at)}
    return item


def replication_user_id(item: Mapping[str, Any]) -> str | None:
    """The user a REPLICATION record belongs to; None for any other item of the table."""
    return user_id_of_replication_key(*key_strings(item))


def decode_replication(item: Mapping[str, Any]) -> ReplicationState:
    """Raises KeyError, ValueError or TypeError for a record orgsync did not write."""
    return ReplicationState(
        seq=int(item["seq"]["N"]),
        revision=int(item[FENCE_ATTRIBUTE]["N"]) if FENCE_ATTRIBUTE in item else 0,
        orgs=_decode_string_list(item.get("orgs")),
        fingerprint=item["fingerprint"]["S"] if "fingerprint" in item else None,
        deleted=bool(item.get("deleted", {}).get("BOOL", False)),
        pending_seq=int(item[PENDING_ATTRIBUTE]["N"]) if PENDING_ATTRIBUTE in item else None,
        dirty=_decode_string_list(item.get("dirty")),
    )


def _string_list(values: Iterable[str]) -> TypedItem:
    # A list, not a string set: sets cannot be empty, and a deleted user replicates to none.
    return {"L": [{"S": value} for value in sorted(values)]}


def _decode_string_list(value: Mapping[str, Any] | None) -> frozenset[str]:
    if not value:
        return frozenset()
    if "SS" in value:
        return frozenset(value["SS"])
    return frozenset(element["S"] for element in value.get("L", []))


def _int_or_zero(value: Any) -> int:
    try:
        return int(value["N"]) if value else 0
    except (KeyError, ValueError, TypeError):
        return 0
