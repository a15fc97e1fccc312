"""Why an item or stream record can never be replicated: the reasons, and how codecs say so.

Pure: standard library only. A `Rejected` value never holds attribute values (no PII), only the
reason and a short description of what was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
class Rejected:
    """A record or item that can never succeed. `detail` never holds attribute values (no PII)."""

    reason: RejectReason
    detail: str
    user_id: str | None = None


class RejectedItemError(Exception):
    """Raised inside the codecs of this package to leave nested decoding; callers outside
    `orgsync.schema` receive `Rejected` values instead."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
