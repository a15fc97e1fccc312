"""Forwards records that can never succeed straight to the DLQ, with the reason attached.

Waiting for five receives would block the user's message group for five visibility timeouts;
forwarding keeps the body, the group id and the reason, so `orgsync dlq` can show and redrive it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

REASON_ATTRIBUTE = "OrgsyncReason"
DETAIL_ATTRIBUTE = "OrgsyncDetail"
SOURCE_MESSAGE_ATTRIBUTE = "OrgsyncSourceMessageId"
# A forwarded record without a group id still needs one on a FIFO queue.
FALLBACK_GROUP_ID = "orgsync-rejected"
_MAX_BATCH = 10


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message to forward: its id, body, FIFO group and why it can never succeed."""

    message_id: str
    body: str
    group_id: str | None
    reason: str
    detail: str


class RejectionSink(Protocol):
    """Where the consumer sends what can never succeed (the DLQ; a fake in unit tests)."""

    def forward(self, rejections: Sequence[Rejection]) -> dict[str, str | None]:
        """Send each rejection; returns message id → None when sent, else the error."""
        ...


class DeadLetterForwarder:
    """The DLQ as a `RejectionSink`: SendMessageBatch, ten at a time."""

    def __init__(self, sqs: SQSClient, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url

    def forward(self, rejections: Sequence[Rejection]) -> dict[str, str | None]:
        """Send each rejection to the DLQ; returns message id → None when sent, else the error."""
        results: dict[str, str | None] = {}
        for start in range(0, len(rejections), _MAX_BATCH):
            results.update(self._send_batch(rejections[start : start + _MAX_BATCH]))
        return results

    def _send_batch(self, batch: Sequence[Rejection]) -> dict[str, str | None]:
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {
                "Id": str(index),
                "MessageBody": rejection.body,
                "MessageGroupId": rejection.group_id or FALLBACK_GROUP_ID,
                # The source message id makes a retried forward a duplicate SQS drops.
                "MessageDeduplicationId": rejection.message_id,
                "MessageAttributes": {
                    REASON_ATTRIBUTE: {"DataType": "String", "StringValue": rejection.reason},
                    DETAIL_ATTRIBUTE: {
                        "DataType": "String",
                        "StringValue": rejection.detail or "-",
                    },
                    SOURCE_MESSAGE_ATTRIBUTE: {
                        "DataType": "String",
                        "StringValue": rejection.message_id,
                    },
                },
            }
            for index, rejection in enumerate(batch)
        ]
        try:
            response = self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            return {rejection.message_id: f"SendMessageBatch failed: {exc}" for rejection in batch}
        results: dict[str, str | None] = {rejection.message_id: None for rejection in batch}
        for failure in response.get("Failed", []):
            rejection = batch[int(failure["Id"])]
            results[rejection.message_id] = f"{failure.get('Code')}: {failure.get('Message', '')}"
        return results
