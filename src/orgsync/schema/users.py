"""The users table's item format (docs/design.md §1): one codec for every reader and writer.

Pure: standard library only. Two readings of one format: `decode_user_state` is replication's
(strict: an item it cannot project is rejected with a reason), `decode_user` the operator's view
(lenient: it shows whatever is there). The hot path reads typed values directly instead of
deserializing whole images.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orgsync.domain.model import UserState
from orgsync.schema.attributes import string_of
from orgsync.schema.keys import (
    TypedItem,
    key_strings,
    keys_too_long,
    org_id_problem,
    user_id_of_user_key,
    user_id_problem,
    user_key,
)
from orgsync.schema.rejection import Rejected, RejectedItemError, RejectReason

_NULL = {"NULL": True}


@dataclass(frozen=True)
class User:
    """A user item as an operator writes and reads it; `email=None`: the item has none (§1
    allows it: the memberships then omit the attribute)."""

    user_id: str
    email: str | None
    status: str
    organizations: tuple[str, ...]


def encode_user(user: User) -> TypedItem:
    """The whole item; `organizations` goes out as an L of S, the form the seed wrote."""
    item: TypedItem = {**user_key(user.user_id)}
    if user.email is not None:
        item["email"] = {"S": user.email}
    item["status"] = {"S": user.status}
    item["organizations"] = {"L": [{"S": org} for org in user.organizations]}
    return item


def decode_user(user_id: str, item: Mapping[str, Any]) -> User:
    """The operator's view of an item: a missing or malformed email shows as None, a missing or
    malformed status as empty, organizations that are not strings are skipped."""
    return User(
        user_id=user_id,
        email=string_of(item.get("email")),
        status=string_of(item.get("status")) or "",
        organizations=_shown_organizations(item.get("organizations")),
    )


def decode_user_state(image: Mapping[str, Any]) -> UserState:
    """Replication's reading of a user image; raises RejectedItemError (inside orgsync.schema)."""
    return UserState(
        email=_optional_string(image, "email"),
        status=_optional_string(image, "status"),
        organizations=_organizations(image.get("organizations")),
    )


def replication_problem(user_id: str, organizations: Iterable[str]) -> str | None:
    """Why a user with this id and these orgs could not be replicated end to end, or None.

    The one statement of what the pipeline (pipe, then consumer) can carry, for writers that
    want to refuse before writing (`orgsync users put`); `check_keys` is the consumer's subset.
    """
    problem = user_id_problem(user_id)
    if problem is not None:
        return problem
    for org_id in organizations:
        problem = org_id_problem(org_id)
        if problem is not None:
            return problem
    return None


def check_keys(user_id: str, state: UserState) -> None:
    """Raise RejectedItemError when the memberships of `state` could not be keyed."""
    problem = keys_too_long(user_id, state.organizations)
    if problem is not None:
        raise RejectedItemError(RejectReason.KEY_TOO_LONG, problem)


def user_state_of_item(item: Mapping[str, Any]) -> UserState | Rejected:
    """The replicated state of an item read from the users table (reconcile, the invariant)."""
    pk, sk = key_strings(item)
    user_id = user_id_of_user_key(pk, sk) or ""
    try:
        state = decode_user_state(item)
        check_keys(user_id, state)
    except RejectedItemError as exc:
        return Rejected(exc.reason, exc.detail)
    return state


def _optional_string(image: Mapping[str, Any], name: str) -> str | None:
    value = image.get(name)
    if value is None or value == _NULL:
        return None
    text = string_of(value)
    if text is None:
        raise RejectedItemError(RejectReason.INVALID_ATTRIBUTE, f"'{name}' is not a string")
    return text


def _organizations(value: Any) -> frozenset[str]:
    """Org ids from an L of S or an SS; missing or NULL means no organizations."""
    if value is None or value == _NULL:
        return frozenset()
    if not isinstance(value, dict) or len(value) != 1:
        raise RejectedItemError(RejectReason.INVALID_ORGANIZATIONS, "'organizations' is not typed")
    if "SS" in value:
        items = value["SS"]
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise RejectedItemError(
                RejectReason.INVALID_ORGANIZATIONS, "'organizations' SS is malformed"
            )
        return frozenset(items)
    if "L" in value and isinstance(value["L"], list):
        org_ids = [string_of(element) for element in value["L"]]
        if not all(org_ids):
            raise RejectedItemError(
                RejectReason.INVALID_ORGANIZATIONS,
                "'organizations' holds non-strings or empty strings",
            )
        return frozenset(org_id for org_id in org_ids if org_id)
    kind = next(iter(value))
    raise RejectedItemError(
        RejectReason.INVALID_ORGANIZATIONS, f"'organizations' is of type {kind:.8}"
    )


def _shown_organizations(value: Any) -> tuple[str, ...]:
    # L of S or SS (docs/design.md §1): show both the same way, skipping what is not a string.
    if not isinstance(value, dict):
        return ()
    if isinstance(value.get("SS"), list):
        return tuple(sorted(str(org) for org in value["SS"]))
    elements = value.get("L")
    if not isinstance(elements, list):
        return ()
    return tuple(text for element in elements if (text := string_of(element)) is not None)
