"""The SQS calls the DLQ modules share: receive, delete, release, count, read an error.

Private to `orgsync.ops.dlq`: one place for the receive every reader of the DLQ makes, the batch
delete and the handing back of held messages, so `messages`, `redrive` and `discard` hold and let
go of SQS messages the same way.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        DeleteMessageBatchRequestEntryTypeDef,
        DeleteMessageBatchResultTypeDef,
        MessageTypeDef,
    )

logger = logging.getLogger(__name__)

SQS_BATCH = 10


def receive(
    sqs: SQSClient, queue_url: str, *, max_messages: int, hold_seconds: int, wait_seconds: int
) -> list[MessageTypeDef]:
    """One ReceiveMessage with every attribute, hiding what it returns for `hold_seconds`."""
    return sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=max_messages,
        VisibilityTimeout=hold_seconds,
        WaitTimeSeconds=wait_seconds,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
    ).get("Messages", [])


def delete_batch(
    sqs: SQSClient, queue_url: str, messages: Sequence[MessageTypeDef]
) -> DeleteMessageBatchResultTypeDef:
    """Delete up to 10 received messages; each entry's id is its message's index in `messages`."""
    entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
    ]
    return sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)


def release(sqs: SQSClient, queue_url: str, receipt_handles: Sequence[str]) -> None:
    """Make held messages visible again at once; on failure they reappear after the hold anyway."""
    for start in range(0, len(receipt_handles), SQS_BATCH):
        chunk = receipt_handles[start : start + SQS_BATCH]
        try:
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for i, handle in enumerate(chunk)
                ],
            )
        except ClientError as exc:
            logger.warning("could not release %s held messages: %s", len(chunk), error_code(exc))


def visible_messages(sqs: SQSClient, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    ).get("Attributes", {})
    return int(attributes.get("ApproximateNumberOfMessages", "0"))


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def error_message(exc: ClientError) -> str:
    # Emulators sometimes answer with an HTML page; keep the first line only.
    lines = str(exc.response.get("Error", {}).get("Message", "")).strip().splitlines()
    return lines[0] if lines else ""
