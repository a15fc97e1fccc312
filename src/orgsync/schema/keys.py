"""The key scheme of both tables (docs/design.md §1): prefixes, key builders, and their inverses.

Pure: standard library only. `<user_id>` is everything after the first `USER#`, so ids may hold
`#` and `|`; ids are always read back from keys (what queries see), never from attributes.
"""

from __future__ import annotations

import string
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

# The pipe's MessageGroupId is the user's `pk` (template.yaml: "$.dynamodb.Keys.pk.S"), and SQS
# allows a group id of at most 128 characters, each an ASCII letter, digit or punctuation mark
# (docs/aws-facts.md). A record whose pk breaks either rule never reaches the consumer.
MAX_MESSAGE_GROUP_ID_CHARS = 128
MESSAGE_GROUP_ID_CHARS = frozenset(string.ascii_letters + string.digits + string.punctuation)
MAX_USER_ID_CHARS = MAX_MESSAGE_GROUP_ID_CHARS - len(USER_PREFIX)

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


def user_id_problem(user_id: str) -> str | None:
    """Why the pipeline cannot carry a user with this id end to end, or None.

    Stricter than `keys_too_long`, which is what the consumer can key: the pipe must first turn
    `USER#<user_id>` into an SQS message group id, or the record is dropped to the pipe's DLQ.
    The answer names lengths and code points, never the id itself (ids may be PII).
    """
    if not user_id:
        return "the user id is empty (a pk of USER# alone is not a user)"
    if len(user_id) > MAX_USER_ID_CHARS:
        return (
            f"the user id is {len(user_id)} characters; the pipe's message group id "
            f"{USER_PREFIX}<user id> leaves room for {MAX_USER_ID_CHARS}"
        )
    for position, character in enumerate(user_id, start=1):
        if character not in MESSAGE_GROUP_ID_CHARS:
            return (
                f"the user id holds {_code_point(character)} at character {position}; the pipe's "
                "message group id allows only ASCII letters, digits and punctuation"
            )
    return keys_too_long(user_id, frozenset())


def org_id_problem(org_id: str) -> str | None:
    """Why the consumer cannot replicate a membership of this org, or None (ids travel in the
    message body, so any Unicode is fine; only emptiness and DynamoDB's key size limit)."""
    if not org_id:
        return "an org id is empty"
    if len((ORGANIZATION_PREFIX + org_id).encode()) > MAX_PARTITION_KEY_BYTES:
        return "an org id is too long for a partition key"
    return None


def _code_point(character: str) -> str:
    name = {" ": "a space", "\t": "a tab", "\n": "a newline"}.get(character)
    return f"U+{ord(character):04X}" + (f" ({name})" if name else "")
