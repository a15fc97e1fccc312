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

from orgsync.domain.model import ChangeKind, UserChange
from orgsync.schema.attributes import string_of
from orgsync.schema.keys import USER_PREFIX, USER_SORT_KEY, user_id_of_user_key
from orgsync.schema.rejection import Rejected, RejectedItemError, RejectReason
from orgsync.schema.users import check_keys, decode_user_state

_UPSERT_EVENTS = frozenset({"INSERT", "MODIFY"})
_TTL_PRINCIPAL = "dynamodb.amazonaws.com"


class IgnoreReason(StrEnum):
    """Why a well-formed record is not a user change; such records succeed without writes."""

    NOT_A_USER = "not_a_user"
    EMPTY_USER_ID = "empty_user_id"


@dataclass(frozen=True, slots=True)
class Ignored:
    """A record that is not a user's."""

    reason: IgnoreReason
    detail: str = ""


DecodeResult = UserChange | Ignored | Rejected


@dataclass(frozen=True, slots=True)
class StreamIdentity:
    """Whose change a record is and where it stands in the user's stream: all the fence needs."""

    user_id: str
    seq: int
    event_id: str | None = None


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
            raise RejectedItemError(RejectReason.NOT_A_STREAM_RECORD, "body is not a JSON object")
        stream = record.get("dynamodb")
        if not isinstance(stream, dict):
            raise RejectedItemError(RejectReason.NOT_A_STREAM_RECORD, "no 'dynamodb' object")
        keys = stream.get("Keys")
        if not isinstance(keys, dict):
            raise RejectedItemError(RejectReason.NOT_A_STREAM_RECORD, "no 'dynamodb.Keys' object")
        pk = string_of(keys.get("pk"))
        sk = string_of(keys.get("sk"))
        if pk is None or sk is None:
            raise RejectedItemError(
                RejectReason.NOT_A_STREAM_RECORD, "keys 'pk'/'sk' are not strings"
            )
        if not pk.startswith(USER_PREFIX) or sk != USER_SORT_KEY:
            return Ignored(IgnoreReason.NOT_A_USER)
        user_id = pk[len(USER_PREFIX) :]
        if not user_id:
            return Ignored(IgnoreReason.EMPTY_USER_ID)
        return _decode_user_record(record, stream, user_id)
    except RejectedItemError as exc:
        return Rejected(exc.reason, exc.detail, user_id)


def read_identity(body: str) -> StreamIdentity | None:
    """The user id and sequence number of a body, however invalid the rest; None if unreadable.

    A record the consumer rejects (bad organizations, unknown eventName, no NewImage, ...) can
    still be judged by the fence: if its user has applied a change at least as new, it is
    obsolete. Reads the keys exactly as `decode_record` does; never raises.
    """
    try:
        record = json.loads(body)
    except (ValueError, TypeError):
        return None
    stream = record.get("dynamodb") if isinstance(record, dict) else None
    keys = stream.get("Keys") if isinstance(stream, dict) else None
    if not isinstance(stream, dict) or not isinstance(keys, dict):
        return None
    pk, sk = string_of(keys.get("pk")), string_of(keys.get("sk"))
    user_id = user_id_of_user_key(pk, sk) if pk is not None and sk is not None else None
    if user_id is None:
        return None
    try:
        seq = _parse_sequence_number(stream.get("SequenceNumber"))
    except RejectedItemError:
        return None
    event_id = record.get("eventID")
    return StreamIdentity(user_id, seq, event_id if isinstance(event_id, str) else None)


def _decode_user_record(record: dict[str, Any], stream: dict[str, Any], user_id: str) -> UserChange:
    event_name = record.get("eventName")
    if event_name not in _UPSERT_EVENTS and event_name != "REMOVE":
        raise RejectedItemError(RejectReason.UNKNOWN_EVENT_NAME, f"eventName {event_name!r:.40}")
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
        raise RejectedItemError(RejectReason.MISSING_NEW_IMAGE, f"{event_name} without NewImage")
    state = decode_user_state(image)
    check_keys(user_id, state)
    return UserChange(kind=ChangeKind.UPSERT, state=state, **common)


def _parse_sequence_number(value: Any) -> int:
    # Stream sequence numbers are numeric strings of varying length: compare as integers.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise RejectedItemError(
        RejectReason.INVALID_SEQUENCE_NUMBER, "SequenceNumber missing or not numeric"
    )


def _is_ttl_delete(record: Mapping[str, Any]) -> bool:
    identity = record.get("userIdentity")
    return (
        isinstance(identity, dict)
        and identity.get("type") == "Service"
        and identity.get("principalId") == _TTL_PRINCIPAL
    )
