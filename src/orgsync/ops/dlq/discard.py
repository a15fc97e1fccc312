"""Dropping DLQ messages: those the fence makes obsolete (stale discard), or all of them (purge).

A stale discard reads the fence from DynamoDB and deletes only what it says is obsolete; a purge
drops everything and is the operator's call (the CLI asks first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from orgsync.domain.model import ReplicationState
from orgsync.domain.rule import stale_against
from orgsync.errors import OrgsyncError
from orgsync.ops.dlq import _sqs
from orgsync.ops.dlq.messages import count_messages, describe_message
from orgsync.schema.stream import StreamIdentity, read_identity
from orgsync.store.replication import DynamoReplicationStore

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef


class DiscardError(OrgsyncError):
    """A stale discard stopped; what it had not deleted is still in the DLQ."""


class PurgeError(OrgsyncError):
    """SQS refused to purge the queue (e.g. a purge of it is already running)."""


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
    expected = _sqs.visible_messages(sqs, dlq_url)
    seen: set[str] = set()
    held: list[str] = []
    discarded: list[DiscardedMessage] = []
    kept = unreadable = delete_failed = 0
    try:
        while len(seen) < expected:
            messages = _sqs.receive(
                sqs,
                dlq_url,
                max_messages=_sqs.SQS_BATCH,
                hold_seconds=hold_seconds,
                wait_seconds=wait_seconds,
            )
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
        _sqs.release(sqs, dlq_url, held)
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


def purge(sqs: SQSClient, queue_url: str) -> int:
    """Drop every message of the queue (SQS PurgeQueue); returns how many it held just before.

    On AWS the purge takes up to 60 seconds to finish, and one purge per queue per 60 seconds is
    allowed: a second one within that time is refused (`PurgeQueueInProgress`).
    """
    held = count_messages(sqs, queue_url)
    try:
        sqs.purge_queue(QueueUrl=queue_url)
    except ClientError as exc:
        if _sqs.error_code(exc).endswith("PurgeQueueInProgress"):
            raise PurgeError(
                "a purge of this queue is already in progress (SQS allows one per 60 s); "
                "nothing more to do"
            ) from exc
        raise
    return held


def _delete_obsolete(
    sqs: SQSClient, queue_url: str, messages: Sequence[MessageTypeDef], done: int
) -> set[str]:
    """Delete the messages; returns the ids SQS confirmed deleted."""
    if not messages:
        return set()
    try:
        response = _sqs.delete_batch(sqs, queue_url, messages)
    except ClientError as exc:
        raise DiscardError(
            f"deleting obsolete messages from the DLQ failed after {done} discarded: "
            f"{_sqs.error_code(exc)}: {_sqs.error_message(exc)}"
        ) from exc
    return {messages[int(ok["Id"])]["MessageId"] for ok in response.get("Successful", [])}
