"""Dead-letter queue inspection, redrive, stale discard and purge for operators.

Talks to SQS (and, to read the fence, DynamoDB) through injected clients; must not depend on the
CLI or the local stack. Reads the attributes the consumer's `DeadLetterForwarder` writes, under
the names it defines. Peeking never consumes; a redrive never deletes a message from the DLQ
before its copy was sent; a stale discard deletes only what the fence says is obsolete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, cast

from botocore.exceptions import ClientError

from orgsync.consumer.dead_letter import (
    DETAIL_ATTRIBUTE,
    REASON_ATTRIBUTE,
    SOURCE_MESSAGE_ATTRIBUTE,
)
from orgsync.domain.model import ReplicationState
from orgsync.domain.rule import stale_against
from orgsync.errors import OrgsyncError
from orgsync.ops.endpoints import is_local_endpoint
from orgsync.schema.keys import USER_PREFIX
from orgsync.schema.stream import StreamIdentity, read_identity
from orgsync.store.replication import DynamoReplicationStore

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        DeleteMessageBatchRequestEntryTypeDef,
        MessageAttributeValueOutputTypeDef,
        MessageAttributeValueTypeDef,
        MessageTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

logger = logging.getLogger(__name__)

# The consumer sets OrgsyncReason/Detail/SourceMessageId on the messages it forwards itself;
# SQS's own redrive sets none: those were received too often.
MAX_RECEIVES_EXCEEDED = "max_receives_exceeded"

# SQS limits a MessageDeduplicationId to 128 characters.
_MAX_DEDUP_ID = 128
_SQS_BATCH = 10
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


class DiscardError(OrgsyncError):
    """A stale discard stopped; what it had not deleted is still in the DLQ."""


class PurgeError(OrgsyncError):
    """SQS refused to purge the queue (e.g. a purge of it is already running)."""


class RedriveMethod(StrEnum):
    AUTO = "auto"
    MOVE_TASK = "move-task"
    COPY = "copy"


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


@dataclass(frozen=True)
class RedriveResult:
    method: RedriveMethod
    moved: int
    task_handle: str | None = None


@dataclass(frozen=True)
class DiscardedMessage:
    """A DLQ message the fence made obsolete: the user has applied `applied_seq` >= `seq`."""

    message_id: str
    user_id: str
    seq: int
    reason: str
    applied_seq: int


@dataclass(frozen=True)
class DiscardResult:
    """What `discard_stale` did. `kept` still matter; `unreadable` name no user id and seq."""

    examined: int
    discarded: tuple[DiscardedMessage, ...]
    kept: int
    unreadable: int
    # Obsolete, but SQS did not confirm the delete: still in the DLQ, for the next run.
    delete_failed: int
    # Held back by SQS, e.g. behind a kept message of the same FIFO group; a later run sees them.
    not_examined: int


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
    expected = _visible_messages(sqs, queue_url)
    seen: dict[str, DlqMessage] = {}
    held: list[str] = []
    try:
        while len(seen) < min(limit, expected):
            response = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=min(_SQS_BATCH, limit - len(seen)),
                VisibilityTimeout=hold_seconds,
                WaitTimeSeconds=wait_seconds,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            if not messages:
                break
            for message in messages:
                held.append(message["ReceiptHandle"])
                described = describe_message(message)
                seen.setdefault(described.message_id, described)
    finally:
        _release(sqs, queue_url, held)
    return sorted(seen.values(), key=lambda m: m.sent_at or datetime.min.replace(tzinfo=UTC))


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
        raise RedriveError(f"StartMessageMoveTask refused: {code}: {_message(exc)}") from exc
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
        max_messages = _visible_messages(sqs, dlq_url)
    moved = 0
    while max_messages is None or moved < max_messages:
        wanted = _SQS_BATCH if max_messages is None else min(_SQS_BATCH, max_messages - moved)
        messages = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=wanted,
            VisibilityTimeout=hold_seconds,
            WaitTimeSeconds=wait_seconds,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        by_entry = {str(index): message for index, message in enumerate(messages)}
        try:
            response = sqs.send_message_batch(
                QueueUrl=main_queue_url,
                Entries=[_copy_entry(entry_id, m, token) for entry_id, m in by_entry.items()],
            )
        except ClientError as exc:
            _release(sqs, dlq_url, [m["ReceiptHandle"] for m in messages])
            raise RedriveError(
                f"sending to the main queue failed after {moved} moved, nothing deleted "
                f"from this batch: {_code(exc)}: {_message(exc)}"
            ) from exc
        sent = [by_entry[ok["Id"]] for ok in response.get("Successful", [])]
        failed = [by_entry[bad["Id"]] for bad in response.get("Failed", [])]
        _delete(sqs, dlq_url, sent)
        moved += len(sent)
        if on_moved is not None and sent:
            on_moved(len(sent))
        if failed:
            _release(sqs, dlq_url, [m["ReceiptHandle"] for m in failed])
            first = response.get("Failed", [])[0]
            raise RedriveError(
                f"{len(failed)} message(s) refused by the main queue after {moved} moved "
                f"(left in the DLQ): {first.get('Code')}: {first.get('Message', '')}"
            )
    return moved


def discard_stale(
    sqs: SQSClient,
    dlq_url: str,
    dynamodb: DynamoDBClient,
    organizations_table: str,
    *,
    hold_seconds: int = 60,
    wait_seconds: int = 1,
) -> DiscardResult:
    """Delete exactly the DLQ messages whose user has applied a change at least as new.

    Each message is read to (user id, sequence number) the way the consumer reads it, however
    invalid the rest of its body, and judged by the same fence (`stale_against`) against one
    consistent BatchGetItem per received batch. Everything else is made visible again untouched:
    it still matters (`dlq redrive` it once the cause is fixed) or names no user to judge by.
    """
    store = DynamoReplicationStore(dynamodb, organizations_table)
    expected = _visible_messages(sqs, dlq_url)
    seen: set[str] = set()
    held: list[str] = []
    discarded: list[DiscardedMessage] = []
    kept = unreadable = delete_failed = 0
    try:
        while len(seen) < expected:
            messages = sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=_SQS_BATCH,
                VisibilityTimeout=hold_seconds,
                WaitTimeSeconds=wait_seconds,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                break
            fresh = [m for m in messages if m["MessageId"] not in seen]
            held.extend(m["ReceiptHandle"] for m in messages if m["MessageId"] in seen)
            seen.update(m["MessageId"] for m in fresh)
            identities = {m["MessageId"]: read_identity(m.get("Body", "")) for m in fresh}
            users = {identity.user_id for identity in identities.values() if identity is not None}
            fences = store.read(users) if users else {}
            obsolete: list[tuple[MessageTypeDef, DiscardedMessage]] = []
            for message in fresh:
                identity = identities[message["MessageId"]]
                verdict = None if identity is None else _obsolete(message, identity, fences)
                if verdict is not None:
                    obsolete.append((message, verdict))
                    continue
                held.append(message["ReceiptHandle"])
                if identity is None:
                    unreadable += 1
                else:
                    kept += 1
            deleted = _delete_obsolete(sqs, dlq_url, [m for m, _ in obsolete], len(discarded))
            for message, record in obsolete:
                if message["MessageId"] in deleted:
                    discarded.append(record)
                else:
                    delete_failed += 1
                    held.append(message["ReceiptHandle"])
    finally:
        _release(sqs, dlq_url, held)
    return DiscardResult(
        examined=len(seen),
        discarded=tuple(discarded),
        kept=kept,
        unreadable=unreadable,
        delete_failed=delete_failed,
        not_examined=max(0, expected - len(seen)),
    )


def _obsolete(
    message: MessageTypeDef, identity: StreamIdentity, fences: Mapping[str, ReplicationState | None]
) -> DiscardedMessage | None:
    """The discard record of a message the fence says is obsolete; None if it still matters."""
    stale = stale_against(identity.user_id, identity.seq, fences.get(identity.user_id))
    if stale is None:
        return None
    return DiscardedMessage(
        message_id=message["MessageId"],
        user_id=identity.user_id,
        seq=identity.seq,
        reason=describe_message(message).reason,
        applied_seq=stale.applied_seq,
    )


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


def purge(sqs: SQSClient, queue_url: str) -> int:
    """Drop every message of the queue (SQS PurgeQueue); returns how many it held just before.

    On AWS the purge takes up to 60 seconds to finish, and one purge per queue per 60 seconds is
    allowed: a second one within that time is refused (`PurgeQueueInProgress`).
    """
    held = count_messages(sqs, queue_url)
    try:
        sqs.purge_queue(QueueUrl=queue_url)
    except ClientError as exc:
        if _code(exc).endswith("PurgeQueueInProgress"):
            raise PurgeError(
                "a purge of this queue is already in progress (SQS allows one per 60 s); "
                "nothing more to do"
            ) from exc
        raise
    return held


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
    entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
    ]
    try:
        response = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    except ClientError as exc:
        raise RedriveError(
            f"copies were sent but deleting them from the DLQ failed: {_code(exc)}; they will "
            "reappear in the DLQ and a second redrive re-sends them (duplicates are fenced)"
        ) from exc
    if response.get("Failed"):
        # They reappear after the hold; this run re-sends them under the same dedup id.
        logger.warning(
            "%s DLQ deletes failed; the messages will be seen again", len(response["Failed"])
        )


def _delete_obsolete(
    sqs: SQSClient, queue_url: str, messages: Sequence[MessageTypeDef], done: int
) -> set[str]:
    """Delete the messages; returns the ids SQS confirmed deleted."""
    if not messages:
        return set()
    entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
    ]
    try:
        response = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    except ClientError as exc:
        raise DiscardError(
            f"deleting obsolete messages from the DLQ failed after {done} discarded: "
            f"{_code(exc)}: {_message(exc)}"
        ) from exc
    return {messages[int(ok["Id"])]["MessageId"] for ok in response.get("Successful", [])}


def _may_move(sqs: SQSClient) -> bool:
    """Whether `auto` should try SQS's move task on this client's endpoint."""
    endpoint = _endpoint_of(sqs)
    return not is_local_endpoint(endpoint) and endpoint not in _NO_MOVE_TASK


def _endpoint_of(sqs: SQSClient) -> str:
    return str(sqs.meta.endpoint_url).rstrip("/")


def _release(sqs: SQSClient, queue_url: str, receipt_handles: Sequence[str]) -> None:
    """Make held messages visible again at once; on failure they reappear after the hold anyway."""
    for start in range(0, len(receipt_handles), _SQS_BATCH):
        chunk = receipt_handles[start : start + _SQS_BATCH]
        try:
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for i, handle in enumerate(chunk)
                ],
            )
        except ClientError as exc:
            logger.warning("could not release %s held messages: %s", len(chunk), _code(exc))


def _visible_messages(sqs: SQSClient, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    ).get("Attributes", {})
    return int(attributes.get("ApproximateNumberOfMessages", "0"))


def _queue_arn(sqs: SQSClient, queue_url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return attributes["Attributes"]["QueueArn"]


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


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _message(exc: ClientError) -> str:
    # Emulators sometimes answer with an HTML page; keep the first line only.
    lines = str(exc.response.get("Error", {}).get("Message", "")).strip().splitlines()
    return lines[0] if lines else ""
