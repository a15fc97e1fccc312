"""The key scheme of both tables (docs/design.md §1): prefixes, key builders, and their inverses.

Pure: standard library only. `<user_id>` is everything after the first `USER#`, so ids may hold
`#` and `|`; ids are always read back from keys (what queries see), never from attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orgsync.schema.attributes import string_of

USER_PREFIX = "USER#"
USER_SORT_KEY = "METADATA"
ORGANIZATION_PREFIX = "ORGANIZATION#"
MEMBERSHIP_PREFIX = "MEMBERSHIP#"
REPLICATION_SORT_KEY = "REPLICATION"

# DynamoDB key size limits (bytes, UTF-8): partition key 2048, sort key 1024.
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024

# A key or item in DynamoDB's low-level typed format ({"pk": {"S": ...}, ...}).
TypedItem = dict[str, Any]


def user_key(user_id: str) -> TypedItem:
    """The users table's key of a user."""
    return {"pk": {"S": USER_PREFIX + user_id}, "sk": {"S": USER_SORT_KEY}}


def membership_key(org_id: str, user_id: str) -> TypedItem:
    return {"pk": {"S": ORGANIZATION_PREFIX + org_id}, "sk": {"S": MEMBERSHIP_PREFIX + user_id}}


def replication_key(user_id: str) -> TypedItem:
    """The organizations table's key of a user's REPLICATION record."""
    return {"pk": {"S": USER_PREFIX + user_id}, "sk": {"S": REPLICATION_SORT_KEY}}


def organization_partition(org_id: str) -> str:
    """The partition key an org's memberships share: what "list the members" queries."""
    return ORGANIZATION_PREFIX + org_id


def user_id_of_user_key(pk: str, sk: str) -> str | None:
    """The user id of a users-table key; None for items that are not users (or `USER#` alone)."""
    if sk != USER_SORT_KEY or not pk.startswith(USER_PREFIX):
        return None
    return pk[len(USER_PREFIX) :] or None


def user_id_of_replication_key(pk: str, sk: str) -> str | None:
    if sk != REPLICATION_SORT_KEY or not pk.startswith(USER_PREFIX):
        return None
    return pk[len(USER_PREFIX) :]


def membership_of_key(pk: str, sk: str) -> tuple[str, str] | None:
    """(org id, user id) of a membership key; None for any other organizations-table item."""
    if not sk.startswith(MEMBERSHIP_PREFIX) or not pk.startswith(ORGANIZATION_PREFIX):
        return None
    return pk[len(ORGANIZATION_PREFIX) :], sk[len(MEMBERSHIP_PREFIX) :]


def key_strings(item: Mapping[str, Any]) -> tuple[str, str]:
    """The item's `pk` and `sk` as strings ('' where absent or not strings)."""
    pk, sk = item.get("pk"), item.get("sk")
    return string_of(pk) or "", string_of(sk) or ""


def keys_too_long(user_id: str, org_ids: frozenset[str]) -> str | None:
    """Why a user's memberships could not be keyed (DynamoDB's key limits), or None."""
    if len((MEMBERSHIP_PREFIX + user_id).encode()) > MAX_SORT_KEY_BYTES:
        return "user id too long for a membership sort key"
    for org_id in org_ids:
        if len((ORGANIZATION_PREFIX + org_id).encode()) > MAX_PARTITION_KEY_BYTES:
            return "org id too long for a partition key"
    return None
