"""Redrive: DLQ messages back to the main queue, by SQS's own move task or by copying them.

A redrive never deletes a message from the DLQ before its copy was sent; copies keep their group
ids (per-user order) and get deduplication ids of their own (the main queue's window still holds
the originals').
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from orgsync.errors import OrgsyncError
from orgsync.ops.dlq import _sqs
from orgsync.ops.endpoints import is_local_endpoint

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        MessageAttributeValueOutputTypeDef,
        MessageAttributeValueTypeDef,
        MessageTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

logger = logging.getLogger(__name__)

# SQS limits a MessageDeduplicationId to 128 characters.
_MAX_DEDUP_ID = 128
# A server that does not implement an action answers with one of these (or with a non-AWS error
# page, whose "code" botocore reports as the bare HTTP status: moto on StartMessageMoveTask).
_NOT_IMPLEMENTED_CODES = frozenset(
    {"InvalidAction", "NotImplemented", "UnknownOperation", "UnknownOperationException"}
)


# Endpoints that answered StartMessageMoveTask with "not implemented", in this process: `auto`
# copies there at once instead of asking again.
_NO_MOVE_TASK: set[str] = set()


class RedriveError(OrgsyncError):
    """A redrive stopped; messages not yet sent are still in the DLQ."""


class RedriveMethod(StrEnum):
    AUTO = "auto"
    MOVE_TASK = "move-task"
    COPY = "copy"


@dataclass(frozen=True)
class RedriveResult:
    method: RedriveMethod
    moved: int
    task_handle: str | None = None


def redrive(
    sqs: SQSClient,
    dlq_url: str,
    main_queue_url: str,
    *,
    method: RedriveMethod = RedriveMethod.AUTO,
    max_messages: int | None = None,
    on_moved: Callable[[int], None] | None = None,
) -> RedriveResult:
    """Move DLQ messages back to the main queue, with SQS's own move task where possible.

    `StartMessageMoveTask` has no message count, so a bounded redrive always copies. `auto`
    also copies on an endpoint on this machine (the embedded moto server, other emulators), and
    on one that already said it lacks the move task: moto answers that request with a 500 and a
    `NotImplementedError` traceback in the server's terminal, so it is never sent there.
    """
    if method is RedriveMethod.COPY or (
        method is RedriveMethod.AUTO and (max_messages is not None or not _may_move(sqs))
    ):
        moved = copy_messages(
            sqs, dlq_url, main_queue_url, max_messages=max_messages, on_moved=on_moved
        )
        return RedriveResult(method=RedriveMethod.COPY, moved=moved)
    handle = start_move_task(sqs, dlq_url, main_queue_url)
    if handle is not None:
        return RedriveResult(method=RedriveMethod.MOVE_TASK, moved=0, task_handle=handle)
    _NO_MOVE_TASK.add(_endpoint_of(sqs))
    if method is RedriveMethod.MOVE_TASK:
        raise RedriveError("this endpoint does not implement StartMessageMoveTask; use copy")
    logger.info("StartMessageMoveTask not implemented by the endpoint; copying instead")
    moved = copy_messages(
        sqs, dlq_url, main_queue_url, max_messages=max_messages, on_moved=on_moved
    )
    return RedriveResult(method=RedriveMethod.COPY, moved=moved)


def start_move_task(sqs: SQSClient, dlq_url: str, main_queue_url: str) -> str | None:
    """Start SQS's asynchronous redrive; None when the endpoint does not implement it."""
    source_arn = _queue_arn(sqs, dlq_url)
    destination_arn = _queue_arn(sqs, main_queue_url)
    try:
        response = sqs.start_message_move_task(SourceArn=source_arn, DestinationArn=destination_arn)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _NOT_IMPLEMENTED_CODES or code.isdigit() or status == 501:
            return None
        # e.g. a move task already running on this DLQ: copying as well would only add noise.
        raise RedriveError(
            f"StartMessageMoveTask refused: {code}: {_sqs.error_message(exc)}"
        ) from exc
    return response["TaskHandle"]


def copy_messages(
    sqs: SQSClient,
    dlq_url: str,
    main_queue_url: str,
    *,
    max_messages: int | None = None,
    on_moved: Callable[[int], None] | None = None,
    run_token: str | None = None,
    hold_seconds: int = 60,
    wait_seconds: int = 1,
) -> int:
    """Receive → send → delete, batch by batch; returns how many messages were moved.

    Group ids are kept so per-user order holds among redriven messages. Each copy gets a new
    deduplication id (original + run token): the main queue's 5-minute dedup window still holds
    the original id and would silently drop the copy. The token is per run, so re-sending within
    one run (a send that succeeded but whose delete failed) is deduplicated, and a later run is not.

    Without `max_messages`, a run moves what the DLQ held when it started: while the consumer is
    live, a redriven poison message is forwarded straight back to the DLQ, and an unbounded run
    would move it forever.
    """
    token = run_token or uuid.uuid4().hex[:12]
    if max_messages is None:
        max_messages = _sqs.visible_messages(sqs, dlq_url)
    moved = 0
    while max_messages is None or moved < max_messages:
        wanted = (
            _sqs.SQS_BATCH if max_messages is None else min(_sqs.SQS_BATCH, max_messages - moved)
        )
        messages = _sqs.receive(
            sqs, dlq_url, max_messages=wanted, hold_seconds=hold_seconds, wait_seconds=wait_seconds
        )
        if not messages:
            break
        by_entry = {str(index): message for index, message in enumerate(messages)}
        try:
            response = sqs.send_message_batch(
                QueueUrl=main_queue_url,
                Entries=[_copy_entry(entry_id, m, token) for entry_id, m in by_entry.items()],
            )
        except ClientError as exc:
            _sqs.release(sqs, dlq_url, [m["ReceiptHandle"] for m in messages])
            raise RedriveError(
                f"sending to the main queue failed after {moved} moved, nothing deleted "
                f"from this batch: {_sqs.error_code(exc)}: {_sqs.error_message(exc)}"
            ) from exc
        sent = [by_entry[ok["Id"]] for ok in response.get("Successful", [])]
        failed = [by_entry[bad["Id"]] for bad in response.get("Failed", [])]
        _delete(sqs, dlq_url, sent)
        moved += len(sent)
        if on_moved is not None and sent:
            on_moved(len(sent))
        if failed:
            _sqs.release(sqs, dlq_url, [m["ReceiptHandle"] for m in failed])
            first = response.get("Failed", [])[0]
            raise RedriveError(
                f"{len(failed)} message(s) refused by the main queue after {moved} moved "
                f"(left in the DLQ): {first.get('Code')}: {first.get('Message', '')}"
            )
    return moved


def redrive_deduplication_id(original: str, run_token: str) -> str:
    suffix = f"-redrive-{run_token}"
    if len(original) + len(suffix) > _MAX_DEDUP_ID:
        original = hashlib.sha256(original.encode()).hexdigest()
    return f"{original}{suffix}"[:_MAX_DEDUP_ID]


def _copy_entry(
    entry_id: str, message: MessageTypeDef, run_token: str
) -> SendMessageBatchRequestEntryTypeDef:
    attributes = message.get("Attributes", {})
    group_id = attributes.get("MessageGroupId")
    if group_id is None:
        raise RedriveError(f"message {message.get('MessageId')} has no MessageGroupId (not FIFO?)")
    original = attributes.get("MessageDeduplicationId") or message["MessageId"]
    entry: SendMessageBatchRequestEntryTypeDef = {
        "Id": entry_id,
        "MessageBody": message["Body"],
        "MessageGroupId": group_id,
        "MessageDeduplicationId": redrive_deduplication_id(original, run_token),
    }
    copied = _copy_attributes(message.get("MessageAttributes", {}))
    if copied:
        entry["MessageAttributes"] = copied
    return entry


def _copy_attributes(
    attributes: dict[str, MessageAttributeValueOutputTypeDef],
) -> dict[str, MessageAttributeValueTypeDef]:
    copied: dict[str, MessageAttributeValueTypeDef] = {}
    for name, value in attributes.items():
        new: MessageAttributeValueTypeDef = {"DataType": value["DataType"]}
        if "StringValue" in value:
            new["StringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            new["BinaryValue"] = value["BinaryValue"]
        copied[name] = new
    return copied


def _delete(sqs: SQSClient, queue_url: str, messages: Sequence[MessageTypeDef]) -> None:
    if not messages:
        return
    try:
        response = _sqs.delete_batch(sqs, queue_url, messages)
    except ClientError as exc:
        raise RedriveError(
            f"copies were sent but deleting them from the DLQ failed: {_sqs.error_code(exc)}; they "
            "will reappear in the DLQ and a second redrive re-sends them (duplicates are fenced)"
        ) from exc
    if response.get("Failed"):
        # They reappear after the hold; this run re-sends them under the same dedup id.
        logger.warning(
            "%s DLQ deletes failed; the messages will be seen again", len(response["Failed"])
        )


def _may_move(sqs: SQSClient) -> bool:
    """Whether `auto` should try SQS's move task on this client's endpoint."""
    endpoint = _endpoint_of(sqs)
    return not is_local_endpoint(endpoint) and endpoint not in _NO_MOVE_TASK


def _endpoint_of(sqs: SQSClient) -> str:
    return str(sqs.meta.endpoint_url).rstrip("/")


def _queue_arn(sqs: SQSClient, queue_url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return attributes["Attributes"]["QueueArn"]
