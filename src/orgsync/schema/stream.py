"""Decoding of one SQS message body, as EventBridge Pipes delivers a DynamoDB stream record.

Every body gets a defined outcome: a `UserChange`, `Ignored` (not ours, counted) or `Rejected`
(can never succeed: forwarded to the DLQ with the reason). Standard library only; this is the
hot path, so it reads the typed attribute values directly instead of deserializing whole images.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from orgsync.domain.model import (
    MEMBERSHIP_PREFIX,
    ORGANIZATION_PREFIX,
    USER_PREFIX,
    USER_SORT_KEY,
    ChangeKind,
    UserChange,
    UserState,
)

# DynamoDB key size limits (bytes, UTF-8): partition key 2048, sort key 1024.
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024

_UPSERT_EVENTS = frozenset({"INSERT", "MODIFY"})
_TTL_PRINCIPAL = "dynamodb.amazonaws.com"


class IgnoreReason(StrEnum):
    """Why a well-formed record is not a user change; such records succeed without writes."""

    NOT_A_USER = "not_a_user"
    EMPTY_USER_ID = "empty_user_id"


class RejectReason(StrEnum):
    """Why a record can never be applied; such records go to the DLQ at once."""

    INVALID_JSON = "invalid_json"
    NOT_A_STREAM_RECORD = "not_a_stream_record"
    UNKNOWN_EVENT_NAME = "unknown_event_name"
    INVALID_SEQUENCE_NUMBER = "invalid_sequence_number"
    MISSING_NEW_IMAGE = "missing_new_image"
    INVALID_ORGANIZATIONS = "invalid_organizations"
    INVALID_ATTRIBUTE = "invalid_attribute"
    KEY_TOO_LONG = "key_too_long"


@dataclass(frozen=True, slots=True)
class Ignored:
    """A record that is not a user's; `user_id` is set when the keys looked like one."""

    reason: IgnoreReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that can never succeed. `detail` never holds attribute values (no PII)."""

    reason: RejectReason
    detail: str
    user_id: str | None = None


DecodeResult = UserChange | Ignored | Rejected


class _RejectError(Exception):
    """Internal short-cut out of nested decoding; never leaves this module."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def decode_body(body: str) -> DecodeResult:
    """Decode one message body; never raises."""
    try:
        record = json.loads(body)
    except (ValueError, TypeError) as exc:
        return Rejected(RejectReason.INVALID_JSON, f"body is not JSON: {type(exc).__name__}")
    return decode_record(record)


def decode_record(record: Any) -> DecodeResult:
    """Decode a parsed stream record (Lambda-style keys, DynamoDB-typed images); never raises."""
    user_id: str | None = None
    try:
        if not isinstance(record, dict):
            raise _RejectError(RejectReason.NOT_A_STREAM_RECORD, "body is not a JSON object")
        stream = record.get("dynamodb")
        if not isinstance(stream, dict):
            raise _RejectError(RejectReason.NOT_A_STREAM_RECORD, "no 'dynamodb' object")
        keys = stream.get("Keys")
        if not isinstance(keys, dict):
            raise _RejectError(RejectReason.NOT_A_STREAM_RECORD, "no 'dynamodb.Keys' object")
        pk = _string_value(keys.get("pk"))
        sk = _string_value(keys.get("sk"))
        if pk is None or sk is None:
            raise _RejectError(RejectReason.NOT_A_STREAM_RECORD, "keys 'pk'/'sk' are not strings")
        if not pk.startswith(USER_PREFIX) or sk != USER_SORT_KEY:
            return Ignored(IgnoreReason.NOT_A_USER)
        user_id = pk[len(USER_PREFIX) :]
        if not user_id:
            return Ignored(IgnoreReason.EMPTY_USER_ID)
        return _decode_user_record(record, stream, user_id)
    except _RejectError as exc:
        return Rejected(exc.reason, exc.detail, user_id)


def _decode_user_record(record: dict[str, Any], stream: dict[str, Any], user_id: str) -> UserChange:
    event_name = record.get("eventName")
    if event_name not in _UPSERT_EVENTS and event_name != "REMOVE":
        raise _RejectError(RejectReason.UNKNOWN_EVENT_NAME, f"eventName {event_name!r:.40}")
    seq = _parse_sequence_number(stream.get("SequenceNumber"))
    event_id = record.get("eventID")
    created_at = stream.get("ApproximateCreationDateTime")
    common: dict[str, Any] = {
        "user_id": user_id,
        "seq": seq,
        "event_id": event_id if isinstance(event_id, str) else "",
        "created_at": float(created_at) if isinstance(created_at, int | float) else None,
    }
    if event_name == "REMOVE":
        return UserChange(
            kind=ChangeKind.REMOVE, state=None, by_ttl=_is_ttl_delete(record), **common
        )
    image = stream.get("NewImage")
    if not isinstance(image, dict):
        raise _RejectError(RejectReason.MISSING_NEW_IMAGE, f"{event_name} without NewImage")
    state = _decode_state(image)
    _check_key_sizes(user_id, state.organizations)
    return UserChange(kind=ChangeKind.UPSERT, state=state, **common)


def decode_user_image(image: Mapping[str, Any]) -> UserState | Rejected:
    """The replicated state of a user item read from the users table (reconcile, invariant)."""
    try:
        state = _decode_state(image)
        pk = _string_value(image.get("pk")) or ""
        _check_key_sizes(pk[len(USER_PREFIX) :], state.organizations)
    except _RejectError as exc:
        return Rejected(exc.reason, exc.detail)
    return state


def _parse_sequence_number(value: Any) -> int:
    # Stream sequence numbers are numeric strings of varying length: compare as integers.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise _RejectError(
        RejectReason.INVALID_SEQUENCE_NUMBER, "SequenceNumber missing or not numeric"
    )


def _decode_state(image: Mapping[str, Any]) -> UserState:
    return UserState(
        email=_optional_string(image, "email"),
        status=_optional_string(image, "status"),
        organizations=_decode_organizations(image.get("organizations")),
    )


def _optional_string(image: Mapping[str, Any], name: str) -> str | None:
    value = image.get(name)
    if value is None or value == {"NULL": True}:
        return None
    text = _string_value(value)
    if text is None:
        raise _RejectError(RejectReason.INVALID_ATTRIBUTE, f"'{name}' is not a string")
    return text


def _decode_organizations(value: Any) -> frozenset[str]:
    """Org ids from an L of S or an SS; missing or NULL means no organizations."""
    if value is None or value == {"NULL": True}:
        return frozenset()
    if not isinstance(value, dict) or len(value) != 1:
        raise _RejectError(RejectReason.INVALID_ORGANIZATIONS, "'organizations' is not typed")
    if "SS" in value:
        items = value["SS"]
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise _RejectError(
                RejectReason.INVALID_ORGANIZATIONS, "'organizations' SS is malformed"
            )
        return frozenset(items)
    if "L" in value and isinstance(value["L"], list):
        org_ids = [_string_value(element) for element in value["L"]]
        if not all(org_ids):
            raise _RejectError(
                RejectReason.INVALID_ORGANIZATIONS,
                "'organizations' holds non-strings or empty strings",
            )
        return frozenset(org_id for org_id in org_ids if org_id)
    kind = next(iter(value))
    raise _RejectError(RejectReason.INVALID_ORGANIZATIONS, f"'organizations' is of type {kind:.8}")


def _check_key_sizes(user_id: str, organizations: frozenset[str]) -> None:
    if len((MEMBERSHIP_PREFIX + user_id).encode()) > MAX_SORT_KEY_BYTES:
        raise _RejectError(RejectReason.KEY_TOO_LONG, "user id too long for a membership sort key")
    for org_id in organizations:
        if len((ORGANIZATION_PREFIX + org_id).encode()) > MAX_PARTITION_KEY_BYTES:
            raise _RejectError(RejectReason.KEY_TOO_LONG, "org id too long for a partition key")


def _string_value(value: Any) -> str | None:
    if isinstance(value, dict):
        text = value.get("S")
        if isinstance(text, str):
            return text
    return None


def _is_ttl_delete(record: Mapping[str, Any]) -> bool:
    identity = record.get("userIdentity")
    return (
        isinstance(identity, dict)
        and identity.get("type") == "Service"
        and identity.get("principalId") == _TTL_PRINCIPAL
    )
