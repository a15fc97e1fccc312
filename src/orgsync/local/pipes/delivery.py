"""The pipe's target stage: a batch of records → one SendMessageBatch to the SQS target.

Entries SQS lists as failed are re-sent after a backoff; a request SQS refuses for size (1 MiB
per message and per batch) is re-sent as two halves, recursively, the first half done before the
second, as `OnPartialBatchItemFailure: AUTOMATIC_BISECT` does. A record that can never be sent (a
group id SQS refuses, a message too large on its own, an entry refused as a sender fault) is
failed alone, to the pipe's DLQ when one is set. Talks to SQS only through the client it is given.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from orgsync.local.pipes.errors import PipeTargetError, TargetParameterError
from orgsync.local.pipes.metrics import PipeFailure, PipeMetrics
from orgsync.local.pipes.record import PipeRecord, sequence_number
from orgsync.local.pipes.settings import PipeSettings
from orgsync.local.pipes.target import SqsTarget, encode_body

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

logger = logging.getLogger(__name__)

# Waits before re-sending entries SendMessageBatch listed as Failed; after the last one the
# pass fails and the next pass re-sends the whole batch from the checkpoint (at least once).
ENTRY_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
MAX_FAILURES_KEPT = 1000
# How SQS refuses a request for size. botocore gives SQS's JSON-protocol errors their query code
# ("AWS.SimpleQueueService.BatchRequestTooLong") and keeps the short one as QueryErrorCode; a
# body past the queue's MaximumMessageSize is an InvalidParameterValue "Message must be shorter
# than N bytes" (AWS's wording, which moto copies).
TOO_LONG_CODES = frozenset({"BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong"})
TOO_LONG_MESSAGE_CODE = "InvalidParameterValue"
TOO_LONG_MESSAGE_TEXT = "must be shorter than"

# An entry of a batch being sent: what SQS gets, and the record it came from.
Item = tuple["SendMessageBatchRequestEntryTypeDef", PipeRecord]


class ExtraEntries(Protocol):
    """Entries to send after a batch the target accepted (fault injection: late duplicates)."""

    def extra_entries(
        self, sent: Sequence[SendMessageBatchRequestEntryTypeDef]
    ) -> list[SendMessageBatchRequestEntryTypeDef]: ...


@dataclass(frozen=True)
class Batch:
    """Records of one shard to send, and how far the shard is read (for the log)."""

    shard_id: str
    records: Sequence[PipeRecord]
    read_seq: str | None


class TargetStage:
    """Sends batches to the target queue; remembers the records it gave up on (`failures`)."""

    def __init__(
        self, settings: PipeSettings, *, sqs: SQSClient, extra: ExtraEntries | None = None
    ) -> None:
        self.settings = settings
        self.failures: deque[PipeFailure] = deque(maxlen=MAX_FAILURES_KEPT)
        self._sqs = sqs
        self._extra = extra
        self._target = SqsTarget.from_settings(
            settings.message_group_id, settings.message_deduplication_id
        )
        # Replaced by the runner's stop event, so that a stop interrupts a retry backoff.
        self.stop = threading.Event()

    def send(self, batch: Batch, metrics: PipeMetrics) -> int:
        """Send every record of the batch or fail it alone; returns how many were sent.

        Raises PipeTargetError when the target keeps failing: nothing is checkpointed then,
        and the next pass re-sends the whole batch (SQS drops the duplicates by dedup id).
        """
        items: list[Item] = []
        for index, record in enumerate(batch.records):
            entry_id = str(index)
            try:
                items.append((self._target.build_entry(entry_id, record), record))
            except TargetParameterError as exc:
                self._fail(batch.shard_id, record, str(exc), metrics)
        sent = self._send_items(batch.shard_id, items, metrics)
        metrics.sent += sent
        metrics.batches += 1
        if self._extra is not None:
            self._send_extra(self._extra.extra_entries([entry for entry, _ in items]))
        logger.debug(
            "pipe %s: sent %s records of shard %s up to sequence %s",
            self.settings.name,
            sent,
            batch.shard_id,
            batch.read_seq,
        )
        return sent

    def _send_items(self, shard_id: str, items: Sequence[Item], metrics: PipeMetrics) -> int:
        """SendMessageBatch of `items`, Failed entries retried; returns how many were sent."""
        waiting = {entry["Id"]: (entry, record) for entry, record in items}
        sent = 0
        attempt = 0
        while waiting:
            try:
                response = self._sqs.send_message_batch(
                    QueueUrl=self.settings.target_queue_url,
                    Entries=[entry for entry, _ in waiting.values()],
                )
            except ClientError as exc:
                if not refused_for_size(exc):
                    raise PipeTargetError(
                        f"SendMessageBatch to {self.settings.target_queue_url} failed"
                    ) from exc
                return sent + self._bisect(shard_id, list(waiting.values()), exc, metrics)
            except BotoCoreError as exc:
                raise PipeTargetError(
                    f"SendMessageBatch to {self.settings.target_queue_url} failed"
                ) from exc
            for ok in response.get("Successful", []):
                if waiting.pop(ok["Id"], None) is not None:
                    sent += 1
            for failed in response.get("Failed", []):
                if failed.get("SenderFault") and failed["Id"] in waiting:
                    # The request itself is wrong (too long an id, bad body): retrying cannot help.
                    _, record = waiting.pop(failed["Id"])
                    reason = f"{failed.get('Code')}: {failed.get('Message', '')}"
                    self._fail(shard_id, record, reason, metrics)
            if not waiting:
                break
            if attempt >= len(ENTRY_RETRY_DELAYS):
                raise PipeTargetError(
                    f"{len(waiting)} entries still failing after {attempt} retries; "
                    "the batch will be re-sent from the checkpoint"
                )
            metrics.send_retries += len(waiting)
            self.stop.wait(ENTRY_RETRY_DELAYS[attempt])
            attempt += 1
        return sent

    def _bisect(
        self, shard_id: str, items: Sequence[Item], refusal: ClientError, metrics: PipeMetrics
    ) -> int:
        """Re-send a request refused for size as two halves, the first done before the second
        (so each message group keeps its order); a record refused alone can never be sent."""
        if len(items) == 1:
            [(entry, record)] = items
            reason = (
                f"a message of {len(entry['MessageBody'].encode())} bytes refused by SQS: "
                f"{_error_code(refusal)}: {_error_message(refusal)}"
            )
            self._fail(shard_id, record, reason, metrics)
            return 0
        metrics.bisections += 1
        middle = (len(items) + 1) // 2
        logger.info(
            "pipe %s: SendMessageBatch of %d records refused (%s); sending halves of %d and %d",
            self.settings.name,
            len(items),
            _error_code(refusal),
            middle,
            len(items) - middle,
        )
        first = self._send_items(shard_id, items[:middle], metrics)
        return first + self._send_items(shard_id, items[middle:], metrics)

    def _send_extra(self, extra: list[SendMessageBatchRequestEntryTypeDef]) -> None:
        """Best effort: the batch itself was accepted, so a lost extra loses nothing."""
        for start in range(0, len(extra), self.settings.batch_size):
            try:
                self._sqs.send_message_batch(
                    QueueUrl=self.settings.target_queue_url,
                    Entries=extra[start : start + self.settings.batch_size],
                )
            except (ClientError, BotoCoreError) as exc:
                logger.info("pipe %s: extra entries not sent: %s", self.settings.name, exc)

    def _fail(self, shard_id: str, record: PipeRecord, reason: str, metrics: PipeMetrics) -> None:
        """The pipe's failure log: a warning, `failures`, a counter, and the DLQ if configured."""
        seq = sequence_number(record)
        failure = PipeFailure(shard_id, seq, record["eventID"], reason)
        if self.settings.dead_letter_queue_url:
            self._dead_letter(failure, record)
        self.failures.append(failure)
        metrics.failed += 1
        logger.warning(
            "pipe %s: record %s (sequence %s, shard %s) failed and is skipped: %s",
            self.settings.name,
            failure.event_id,
            seq,
            shard_id,
            reason,
        )

    def _dead_letter(self, failure: PipeFailure, record: PipeRecord) -> None:
        # Like Pipes for stream sources, the DLQ gets where the record is, not the record.
        created = record["dynamodb"].get("ApproximateCreationDateTime")
        body: dict[str, Any] = {
            "version": "1.0",
            "context": {"pipeName": self.settings.name, "reason": failure.reason},
            "DDBStreamBatchInfo": {
                "shardId": failure.shard_id,
                "startSequenceNumber": failure.sequence_number,
                "endSequenceNumber": failure.sequence_number,
                "approximateArrivalOfFirstRecord": created,
                "approximateArrivalOfLastRecord": created,
                "batchSize": 1,
                "streamArn": self.settings.stream_arn,
            },
        }
        try:
            self._sqs.send_message(
                QueueUrl=self.settings.dead_letter_queue_url or "", MessageBody=encode_body(body)
            )
        except (ClientError, BotoCoreError) as exc:
            raise PipeTargetError("cannot send a failed record to the pipe DLQ") from exc


def refused_for_size(exc: ClientError) -> bool:
    """Whether SQS refused the whole request because a message, or the batch, is too large."""
    error = exc.response.get("Error", {})
    codes = {error.get("Code"), error.get("QueryErrorCode")}
    if codes & TOO_LONG_CODES:
        return True
    return TOO_LONG_MESSAGE_CODE in codes and TOO_LONG_MESSAGE_TEXT in _error_message(exc)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))
