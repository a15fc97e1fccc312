"""Builds SendMessageBatch entries from Lambda-shaped records: body, group id, deduplication id.

Pure: no boto3 calls, no I/O; the runner sends what this builds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orgsync.local.pipes.errors import TargetParameterError

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

# Pipes treats a target parameter as a JSON path when the whole value is one
# (eb-pipes-event-target.html): "$.dynamodb.Keys.pk.S", "$.eventID".
PATH_PREFIX = "$."
# SQS limit for MessageGroupId and MessageDeduplicationId.
MAX_ID_LENGTH = 128


@dataclass(frozen=True)
class TargetParameter:
    """A literal, or a dotted key path into the record (keys only: no indexes, no wildcards)."""

    raw: str
    path: tuple[str, ...] | None

    @classmethod
    def parse(cls, raw: str) -> TargetParameter:
        if not raw.startswith(PATH_PREFIX):
            return cls(raw=raw, path=None)
        keys = tuple(raw[len(PATH_PREFIX) :].split("."))
        if any(not key for key in keys):
            raise TargetParameterError(f"unsupported JSON path {raw!r}: empty key")
        return cls(raw=raw, path=keys)

    def resolve(self, record: Mapping[str, Any]) -> str:
        """The value for this record; raises when the path leads nowhere a string can come from."""
        if self.path is None:
            return self.raw
        node: Any = record
        for key in self.path:
            if not isinstance(node, Mapping) or key not in node:
                raise TargetParameterError(f"path {self.raw} resolves to nothing")
            node = node[key]
        if isinstance(node, bool) or not isinstance(node, str | int | float):
            raise TargetParameterError(f"path {self.raw} resolves to a non-scalar value")
        value = str(node)
        if not value:
            raise TargetParameterError(f"path {self.raw} resolves to an empty string")
        if len(value) > MAX_ID_LENGTH:
            raise TargetParameterError(
                f"path {self.raw} resolves to {len(value)} characters; SQS allows {MAX_ID_LENGTH}"
            )
        return value


@dataclass(frozen=True)
class SqsTarget:
    """SqsQueueParameters of a pipe: how each record becomes one message."""

    message_group_id: TargetParameter | None = None
    message_deduplication_id: TargetParameter | None = None

    @classmethod
    def from_settings(
        cls, message_group_id: str | None, message_deduplication_id: str | None
    ) -> SqsTarget:
        return cls(
            message_group_id=TargetParameter.parse(message_group_id) if message_group_id else None,
            message_deduplication_id=(
                TargetParameter.parse(message_deduplication_id)
                if message_deduplication_id
                else None
            ),
        )

    def build_entry(
        self, entry_id: str, record: Mapping[str, Any]
    ) -> SendMessageBatchRequestEntryTypeDef:
        """One batch entry; raises TargetParameterError when a path does not resolve."""
        entry: SendMessageBatchRequestEntryTypeDef = {
            "Id": entry_id,
            "MessageBody": encode_body(record),
        }
        if self.message_group_id is not None:
            entry["MessageGroupId"] = self.message_group_id.resolve(record)
        if self.message_deduplication_id is not None:
            entry["MessageDeduplicationId"] = self.message_deduplication_id.resolve(record)
        return entry


def encode_body(record: Mapping[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))
