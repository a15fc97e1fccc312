"""Reading the DLQ: what an operator needs to know of each message, without consuming any.

Reads the attributes the consumer's `DeadLetterForwarder` writes, under the names it defines, and
tolerates bodies that are not stream records. Peeking never consumes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from orgsync.consumer.dead_letter import (
    DETAIL_ATTRIBUTE,
    REASON_ATTRIBUTE,
    SOURCE_MESSAGE_ATTRIBUTE,
)
from orgsync.ops.dlq import _sqs
from orgsync.schema.keys import USER_PREFIX

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueOutputTypeDef, MessageTypeDef

# The consumer sets OrgsyncReason/Detail/SourceMessageId on the messages it forwards itself;
# SQS's own redrive sets none: those were received too often.
MAX_RECEIVES_EXCEEDED = "max_receives_exceeded"


@dataclass(frozen=True)
class DlqMessage:
    message_id: str
    reason: str
    detail: str | None
    source_message_id: str | None
    group_id: str | None
    deduplication_id: str | None
    user_id: str | None
    event_id: str | None
    event_name: str | None
    sequence_number: str | None
    sent_at: datetime | None
    receive_count: int

    def age_seconds(self, now: datetime) -> float | None:
        return None if self.sent_at is None else (now - self.sent_at).total_seconds()


def describe_message(message: MessageTypeDef) -> DlqMessage:
    """Decode what an operator needs from a DLQ message; tolerant of bodies that are not records."""
    attributes = message.get("Attributes", {})
    custom = message.get("MessageAttributes", {})
    record = _parse_record(message.get("Body", ""))
    raw_dynamodb = record.get("dynamodb")
    dynamodb = cast("dict[str, object]", raw_dynamodb) if isinstance(raw_dynamodb, dict) else {}
    pk = _nested_str(dynamodb, "Keys", "pk", "S")
    sent = attributes.get("SentTimestamp")
    return DlqMessage(
        message_id=message.get("MessageId", ""),
        reason=_string_attribute(custom, REASON_ATTRIBUTE) or MAX_RECEIVES_EXCEEDED,
        detail=_string_attribute(custom, DETAIL_ATTRIBUTE),
        source_message_id=_string_attribute(custom, SOURCE_MESSAGE_ATTRIBUTE),
        group_id=attributes.get("MessageGroupId"),
        deduplication_id=attributes.get("MessageDeduplicationId"),
        user_id=pk.removeprefix(USER_PREFIX) if pk is not None else None,
        event_id=_as_str(record.get("eventID")),
        event_name=_as_str(record.get("eventName")),
        sequence_number=_as_str(dynamodb.get("SequenceNumber")),
        sent_at=datetime.fromtimestamp(int(sent) / 1000, tz=UTC) if sent else None,
        receive_count=int(attributes.get("ApproximateReceiveCount", "0")),
    )


def peek_messages(
    sqs: SQSClient,
    queue_url: str,
    *,
    limit: int = 50,
    hold_seconds: int = 30,
    wait_seconds: int = 1,
) -> list[DlqMessage]:
    """Read up to `limit` messages and make them visible again, consuming none.

    SQS has no peek: a receive hides the message (and, on FIFO, its whole group) and increments
    its receive count. We hide for a short `hold_seconds`, long enough to page through without
    seeing a message twice, then set visibility back to 0; if we die, they reappear on their own.
    The receive count only matters on the DLQ if it has a redrive policy of its own, which ours
    does not. FIFO returns nothing more from a group while part of it is held, so a group with
    more than 10 messages shows only its first ones.
    """
    expected = _sqs.visible_messages(sqs, queue_url)
    seen: dict[str, DlqMessage] = {}
    held: list[str] = []
    try:
        while len(seen) < min(limit, expected):
            messages = _sqs.receive(
                sqs,
                queue_url,
                max_messages=min(_sqs.SQS_BATCH, limit - len(seen)),
                hold_seconds=hold_seconds,
                wait_seconds=wait_seconds,
            )
            if not messages:
                break
            for message in messages:
                held.append(message["ReceiptHandle"])
                described = describe_message(message)
                seen.setdefault(described.message_id, described)
    finally:
        _sqs.release(sqs, queue_url, held)
    return sorted(seen.values(), key=lambda m: m.sent_at or datetime.min.replace(tzinfo=UTC))


def count_messages(sqs: SQSClient, queue_url: str) -> int:
    """Visible, in flight and delayed: everything a purge would drop (SQS's approximation)."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    ).get("Attributes", {})
    return sum(
        int(attributes.get(name, "0"))
        for name in (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        )
    )


def _parse_record(body: str) -> dict[str, object]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _nested_str(mapping: dict[str, object], *path: str) -> str | None:
    current: object = mapping
    for key in path:
        if not isinstance(current, dict):
            return None
        current = cast("dict[str, object]", current).get(key)
    return current if isinstance(current, str) else None


def _as_str(value: object) -> str | None:
    return None if value is None else str(value)


def _string_attribute(
    attributes: dict[str, MessageAttributeValueOutputTypeDef], name: str
) -> str | None:
    value = attributes.get(name)
    return None if value is None else value.get("StringValue")
