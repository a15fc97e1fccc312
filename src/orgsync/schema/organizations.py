"""DynamoDB item shapes of the organizations table (DESIGN §1), in the low-level typed format.

Built by hand rather than with boto3's TypeSerializer: the shapes are fixed and few, and this
runs once per membership written. Imports no boto3.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from orgsync.domain.model import (
    MEMBERSHIP_PREFIX,
    ORGANIZATION_PREFIX,
    REPLICATION_SORT_KEY,
    USER_PREFIX,
    Membership,
    ReplicationState,
)

TypedItem = dict[str, Any]

TTL_ATTRIBUTE = "expires_at"


def membership_key(org_id: str, user_id: str) -> TypedItem:
    return {"pk": {"S": ORGANIZATION_PREFIX + org_id}, "sk": {"S": MEMBERSHIP_PREFIX + user_id}}


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


def decode_membership(item: Mapping[str, Any]) -> Membership:
    return Membership(
        org_id=item["org_id"]["S"],
        user_id=item["user_id"]["S"],
        email=item["email"]["S"] if "email" in item else None,
        status=item["status"]["S"] if "status" in item else None,
        source_seq=int(item["source_seq"]["N"]) if "source_seq" in item else 0,
    )


def replication_key(user_id: str) -> TypedItem:
    return {"pk": {"S": USER_PREFIX + user_id}, "sk": {"S": REPLICATION_SORT_KEY}}


def replication_item(
    user_id: str, state: ReplicationState, *, expires_at: int | None = None
) -> TypedItem:
    item = replication_key(user_id)
    item["user_id"] = {"S": user_id}
    item["seq"] = {"N": str(state.seq)}
    item["revision"] = {"N": str(state.revision)}
    item["orgs"] = _string_list(state.orgs)
    item["deleted"] = {"BOOL": state.deleted}
    if state.fingerprint is not None:
        item["fingerprint"] = {"S": state.fingerprint}
    if state.pending_seq is not None:
        item["pending_seq"] = {"N": str(state.pending_seq)}
        item["dirty"] = _string_list(state.dirty)
    if expires_at is not None:
        item[TTL_ATTRIBUTE] = {"N": str(expires_at)}
    return item


def decode_replication(item: Mapping[str, Any]) -> ReplicationState:
    return ReplicationState(
        seq=int(item["seq"]["N"]),
        revision=int(item["revision"]["N"]) if "revision" in item else 0,
        orgs=_decode_string_list(item.get("orgs")),
        fingerprint=item["fingerprint"]["S"] if "fingerprint" in item else None,
        deleted=bool(item.get("deleted", {}).get("BOOL", False)),
        pending_seq=int(item["pending_seq"]["N"]) if "pending_seq" in item else None,
        dirty=_decode_string_list(item.get("dirty")),
    )


def user_id_of_replication_key(item: Mapping[str, Any]) -> str:
    return str(item["pk"]["S"])[len(USER_PREFIX) :]


def _string_list(values: Iterable[str]) -> TypedItem:
    # A list, not a string set: sets cannot be empty, and a deleted user replicates to none.
    return {"L": [{"S": value} for value in sorted(values)]}


def _decode_string_list(value: Mapping[str, Any] | None) -> frozenset[str]:
    if not value:
        return frozenset()
    if "SS" in value:
        return frozenset(value["SS"])
    return frozenset(element["S"] for element in value.get("L", []))
