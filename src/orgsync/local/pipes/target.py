"""Builds SendMessageBatch entries from Lambda-shaped records: body, group id, deduplication id.

Pure: no boto3 calls, no I/O; the runner sends what this builds.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orgsync.local.pipes.errors import TargetParameterError

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

# Pipes treats a target parameter as a JSON path when the whole value is one
# (eb-pipes-event-target.html): "$.dynamodb.Keys.pk.S", "$.eventID".
PATH_PREFIX = "$."
# SQS limits for MessageGroupId and MessageDeduplicationId (botocore SQS model): 1..128
# characters, each an ASCII letter, digit or punctuation mark. moto checks neither the length nor
# the characters, and AWS refuses the entry, so the pipe checks both (docs/aws-facts.md).
MAX_ID_LENGTH = 128
ID_CHARACTERS = frozenset(string.ascii_letters + string.digits + string.punctuation)


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
        """The value for this record; raises when SQS would refuse it as a group or dedup id.

        A literal is checked here too, not when the pipe is created: CreatePipe accepts any
        literal, and on AWS each record then fails at the target stage, as it does here.
        """
        value = self._value(record)
        problem = id_problem(value)
        if problem is not None:
            raise TargetParameterError(f"{self._described()} {problem}")
        return value

    def _value(self, record: Mapping[str, Any]) -> str:
        if self.path is None:
            return self.raw
        node: Any = record
        for key in self.path:
            if not isinstance(node, Mapping) or key not in node:
                raise TargetParameterError(f"path {self.raw} resolves to nothing")
            node = node[key]
        if isinstance(node, bool) or not isinstance(node, str | int | float):
            raise TargetParameterError(f"path {self.raw} resolves to a non-scalar value")
        return str(node)

    def _described(self) -> str:
        return f"path {self.raw} resolves to a value that" if self.path else "the literal"


def id_problem(value: str) -> str | None:
    """Why SQS would refuse `value` as a MessageGroupId/MessageDeduplicationId, or None.

    Names the length or the offending code point, never the value: a group id is a user's key,
    which may be an email, and this text goes to the log and the pipe DLQ.
    """
    if not value:
        return "is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"has {len(value)} characters; SQS allows {MAX_ID_LENGTH}"
    for position, character in enumerate(value, start=1):
        if character not in ID_CHARACTERS:
            return (
                f"holds {_character_class(character)} at character {position}; "
                "SQS allows only ASCII letters, digits and punctuation"
            )
    return None


def _character_class(character: str) -> str:
    """Every printable ASCII character but the space is a letter, digit or punctuation mark."""
    code_point = f"U+{ord(character):04X}"
    if character == " ":
        return f"a space ({code_point})"
    if not character.isascii():
        return f"a non-ASCII character ({code_point})"
    return f"a control character ({code_point})"


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
            entry["MessageGroupId"] = _resolve("MessageGroupId", self.message_group_id, record)
        if self.message_deduplication_id is not None:
            entry["MessageDeduplicationId"] = _resolve(
                "MessageDeduplicationId", self.message_deduplication_id, record
            )
        return entry


def _resolve(name: str, parameter: TargetParameter, record: Mapping[str, Any]) -> str:
    """The parameter's value, its error naming the SqsQueueParameters field it was for."""
    try:
        return parameter.resolve(record)
    except TargetParameterError as exc:
        raise TargetParameterError(f"{name}: {exc}") from exc


def encode_body(record: Mapping[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))
