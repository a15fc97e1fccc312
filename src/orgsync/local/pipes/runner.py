"""The local EventBridge Pipe: every shard of a DynamoDB stream → filter → SQS FIFO, checkpointed.

Talks to AWS only through the boto3 clients it is given; never imports local, cli or consumer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from orgsync.local.pipes.checkpoint import Checkpoint, CheckpointStore
from orgsync.local.pipes.errors import (
    PipeError,
    PipeSourceError,
    PipeTargetError,
    TargetParameterError,
)
from orgsync.local.pipes.filter import RecordFilter
from orgsync.local.pipes.metrics import PipeFailure, PipeMetrics, ShardPosition
from orgsync.local.pipes.record import PipeRecord, sequence_number, to_pipe_record
from orgsync.local.pipes.settings import PipeSettings, StartingPosition
from orgsync.local.pipes.target import SqsTarget, encode_body

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_dynamodbstreams.type_defs import (
        GetRecordsOutputTypeDef,
        GetShardIteratorInputTypeDef,
        ShardTypeDef,
    )
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

logger = logging.getLogger(__name__)

# GetRecords returns at most 1000 records per call (Streams API reference).
GET_RECORDS_LIMIT = 1000
# Waits before re-sending entries SendMessageBatch listed as Failed; after the last one the
# pass fails and the next pass re-sends the whole batch from the checkpoint (at least once).
ENTRY_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
MAX_ERROR_BACKOFF_SECONDS = 5.0
MAX_FAILURES_KEPT = 1000
# New shards appear only when a shard ends, which a pass sees through its iterator and answers
# with an immediate DescribeStream; otherwise shards are re-listed this often, not every pass
# (DescribeStream is limited to 10/s per account and cost one request per record batch).
SHARD_DISCOVERY_INTERVAL_SECONDS = 10.0


class ExtraEntries(Protocol):
    """Entries to send after a batch the target accepted (fault injection: late duplicates)."""

    def extra_entries(
        self, sent: Sequence[SendMessageBatchRequestEntryTypeDef]
    ) -> list[SendMessageBatchRequestEntryTypeDef]: ...


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    closed: bool
    saved: Checkpoint | None = None
    finished: bool = False
    start: StartingPosition = StartingPosition.TRIM_HORIZON
    iterator: str | None = None
    # Last record read (filtered or pending included); ahead of `saved` only while a batch waits.
    read_seq: str | None = None
    # First record read from a LATEST iterator before any checkpoint: where a rewind goes back to.
    first_seq: str | None = None
    pending: list[PipeRecord] = field(default_factory=list)
    pending_since: float | None = None

    def rewind(self) -> None:
        """Forget everything past the checkpoint, so the next pass re-reads it."""
        self.iterator = None
        self.pending.clear()
        self.pending_since = None
        self.read_seq = self.saved.sequence_number if self.saved else None
        self.finished = self.saved.finished if self.saved else False


class PipeRunner:
    """One pipe; `run` in a thread polls like Pipes does (about every `poll_interval` when idle)."""

    def __init__(
        self,
        settings: PipeSettings,
        *,
        streams: DynamoDBStreamsClient,
        sqs: SQSClient,
        dynamodb: DynamoDBClient,
        poll_interval: float = 0.25,
        extra: ExtraEntries | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = PipeMetrics()
        self.failures: deque[PipeFailure] = deque(maxlen=MAX_FAILURES_KEPT)
        self._streams = streams
        self._sqs = sqs
        self._poll_interval = poll_interval
        self._extra = extra
        self._filter = RecordFilter(settings.filter_patterns)
        self._target = SqsTarget.from_settings(
            settings.message_group_id, settings.message_deduplication_id
        )
        self._checkpoints = CheckpointStore(
            dynamodb,
            table_name=settings.checkpoint_table,
            pipe_name=settings.name,
            stream_arn=settings.stream_arn,
        )
        self._lock = threading.Lock()
        self._shards: dict[str, _Shard] = {}
        self._saved: dict[str, Checkpoint] | None = None
        self._discovered_once = False
        self._rediscover_at = 0.0
        self._shard_ended = False
        self._caught_up = False
        self._last_read = 0
        # Set by run(): lets a stop interrupt entry-retry backoff.
        self._stop = threading.Event()

    # ------------------------------------------------------------------ public API

    def ensure_checkpoint_table(self) -> None:
        self._checkpoints.ensure_table()

    def run_once(self) -> int:
        """One pass over every readable shard, parents first; returns records sent to the target."""
        try:
            if self._saved is None:
                self._saved = self._checkpoints.load()
            if self._shard_ended or time.monotonic() >= self._rediscover_at:
                self._shard_ended = False
                self._discover()
                self._rediscover_at = time.monotonic() + SHARD_DISCOVERY_INTERVAL_SECONDS
            read = sent = 0
            for shard in self._ordered():
                if shard.finished or not self._parent_finished(shard):
                    continue
                shard_read, shard_sent = self._poll(shard)
                read += shard_read
                sent += shard_sent
        except Exception:
            self._caught_up = False
            raise
        self.metrics.passes += 1
        self._last_read = read
        self._caught_up = (
            read == 0
            and not self._shard_ended
            and not any(s.pending for s in self._shards.values())
        )
        return sent

    def run(self, stop: threading.Event) -> None:
        """Loop until `stop` is set; a failed pass is logged and retried from the checkpoints."""
        self._stop = stop
        backoff = self._poll_interval
        while not stop.is_set():
            try:
                if self._saved is None:
                    self.ensure_checkpoint_table()
                self.run_once()
            except PipeError as exc:
                self.metrics.errors += 1
                logger.warning(
                    "pipe %s: pass failed, retrying from checkpoints: %s", self.settings.name, exc
                )
                stop.wait(backoff)
                backoff = min(max(backoff, 0.05) * 2, MAX_ERROR_BACKOFF_SECONDS)
                continue
            backoff = self._poll_interval
            if self._last_read == 0:
                stop.wait(self._poll_interval)

    def position(self) -> list[ShardPosition]:
        with self._lock:
            shards = self._ordered()
        return [
            ShardPosition(
                shard_id=s.shard_id,
                parent_shard_id=s.parent_id,
                sequence_number=s.saved.sequence_number if s.saved else None,
                closed=s.closed,
                finished=s.finished,
            )
            for s in shards
        ]

    def is_caught_up(self) -> bool:
        return self._caught_up

    # ------------------------------------------------------------------ shards

    def _discover(self) -> None:
        """Merge DescribeStream's shards into ours; new shards appear on every pass."""
        described = self._describe_shards()
        fresh_pipe = not self._saved and not self._discovered_once
        latest = self.settings.starting_position == StartingPosition.LATEST
        with self._lock:
            for raw in described:
                shard_id = raw["ShardId"]
                closed = "EndingSequenceNumber" in raw.get("SequenceNumberRange", {})
                known = self._shards.get(shard_id)
                if known is not None:
                    known.closed = known.closed or closed
                    continue
                saved = (self._saved or {}).get(shard_id)
                shard = _Shard(shard_id=shard_id, parent_id=raw.get("ParentShardId"), closed=closed)
                if saved is not None:
                    shard.saved = saved
                    shard.read_seq = saved.sequence_number
                    shard.finished = saved.finished
                elif fresh_pipe and latest:
                    # StartingPosition applies once, to the shards a new pipe finds; shards
                    # that appear later are children, read from their start so nothing is lost.
                    if closed:
                        shard.finished = True
                    else:
                        shard.start = StartingPosition.LATEST
                self._shards[shard_id] = shard
                logger.info(
                    "pipe %s: found shard %s (parent %s, closed %s)",
                    self.settings.name,
                    shard_id,
                    shard.parent_id,
                    closed,
                )
        self._discovered_once = True

    def _describe_shards(self) -> list[ShardTypeDef]:
        shards: dict[str, ShardTypeDef] = {}
        start: str | None = None
        try:
            while True:
                if start is None:
                    page = self._streams.describe_stream(StreamArn=self.settings.stream_arn)
                else:
                    page = self._streams.describe_stream(
                        StreamArn=self.settings.stream_arn, ExclusiveStartShardId=start
                    )
                description = page["StreamDescription"]
                for shard in description.get("Shards", []):
                    shards.setdefault(shard["ShardId"], shard)
                last = description.get("LastEvaluatedShardId")
                # The guard on `start` stops a loop on an endpoint that ignores the cursor.
                if not last or last == start:
                    break
                start = last
        except (ClientError, BotoCoreError) as exc:
            raise PipeSourceError(f"cannot describe stream {self.settings.stream_arn}") from exc
        return list(shards.values())

    def _ordered(self) -> list[_Shard]:
        """Parents before children: by depth in the known lineage, then by id."""

        def depth(shard: _Shard) -> int:
            level, parent, seen = 0, shard.parent_id, {shard.shard_id}
            while parent in self._shards and parent not in seen:
                seen.add(parent)
                level += 1
                parent = self._shards[parent].parent_id
            return level

        return sorted(self._shards.values(), key=lambda s: (depth(s), s.shard_id))

    def _parent_finished(self, shard: _Shard) -> bool:
        # A parent DescribeStream no longer lists was trimmed: nothing of it is left to read.
        parent = self._shards.get(shard.parent_id) if shard.parent_id else None
        return parent is None or parent.finished

    # ------------------------------------------------------------------ reading

    def _poll(self, shard: _Shard) -> tuple[int, int]:
        """One GetRecords on one shard; returns (records read, records sent)."""
        try:
            return self._poll_unsafe(shard)
        except Exception:
            shard.rewind()
            raise

    def _poll_unsafe(self, shard: _Shard) -> tuple[int, int]:
        response = self._get_records(shard)
        if response is None:
            return 0, 0
        shard.iterator = response.get("NextShardIterator")
        # No next iterator: the shard is closed and this response reached its end.
        ended = shard.iterator is None
        read = sent = 0
        batch_size = self.settings.batch_size
        for raw in response.get("Records", []):
            record = to_pipe_record(
                raw, stream_arn=self.settings.stream_arn, region=self.settings.region
            )
            seq = sequence_number(record)
            # Compared as integers: sequence numbers vary in length.
            if shard.read_seq is not None and int(seq) <= int(shard.read_seq):
                continue
            read += 1
            self.metrics.records_read += 1
            if shard.read_seq is None and shard.first_seq is None:
                shard.first_seq = seq
            shard.read_seq = seq
            if not self._filter.matches(record):
                # Filtered records are consumed: the checkpoint moves past them.
                self.metrics.filtered_out += 1
                continue
            if not shard.pending:
                shard.pending_since = time.monotonic()
            shard.pending.append(record)
            if len(shard.pending) >= batch_size:
                sent += self._flush(shard)
        if shard.pending and (ended or self._window_elapsed(shard)):
            sent += self._flush(shard)
        if ended:
            shard.closed = True
            shard.finished = True
            self._shard_ended = True
            logger.info("pipe %s: shard %s finished", self.settings.name, shard.shard_id)
        if not shard.pending:
            self._commit(shard)
        return read, sent

    def _window_elapsed(self, shard: _Shard) -> bool:
        window = self.settings.maximum_batching_window_seconds
        if window <= 0 or shard.pending_since is None:
            return True
        return time.monotonic() - shard.pending_since >= window

    def _get_records(self, shard: _Shard) -> GetRecordsOutputTypeDef | None:
        for attempt in range(2):
            if shard.iterator is None:
                shard.iterator = self._open_iterator(shard)
                if shard.iterator is None:
                    return None
            try:
                return self._streams.get_records(
                    ShardIterator=shard.iterator, Limit=GET_RECORDS_LIMIT
                )
            except ClientError as exc:
                code = _error_code(exc)
                shard.iterator = None
                if code == "ExpiredIteratorException" and attempt == 0:
                    # Iterators live 15 minutes; re-open from where we have read to.
                    logger.info(
                        "pipe %s: iterator of shard %s expired", self.settings.name, shard.shard_id
                    )
                    continue
                if code == "TrimmedDataAccessException" and attempt == 0:
                    self._log_trimmed(shard)
                    shard.read_seq = None
                    shard.first_seq = None
                    shard.start = StartingPosition.TRIM_HORIZON
                    continue
                if code == "ResourceNotFoundException":
                    self._finish_gone(shard)
                    return None
                raise PipeSourceError(f"cannot read shard {shard.shard_id}") from exc
            except BotoCoreError as exc:
                shard.iterator = None
                raise PipeSourceError(f"cannot read shard {shard.shard_id}") from exc
        return None

    def _open_iterator(self, shard: _Shard) -> str | None:
        request: GetShardIteratorInputTypeDef = {
            "StreamArn": self.settings.stream_arn,
            "ShardId": shard.shard_id,
            "ShardIteratorType": shard.start.value,
        }
        if shard.read_seq is not None:
            request["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            request["SequenceNumber"] = shard.read_seq
        elif shard.first_seq is not None:
            request["ShardIteratorType"] = "AT_SEQUENCE_NUMBER"
            request["SequenceNumber"] = shard.first_seq
        try:
            try:
                return self._streams.get_shard_iterator(**request)["ShardIterator"]
            except ClientError as exc:
                if _error_code(exc) != "TrimmedDataAccessException":
                    raise
                # The checkpoint is older than the 24 h retention: read what is left.
                self._log_trimmed(shard)
                request = {
                    "StreamArn": self.settings.stream_arn,
                    "ShardId": shard.shard_id,
                    "ShardIteratorType": StartingPosition.TRIM_HORIZON.value,
                }
                return self._streams.get_shard_iterator(**request)["ShardIterator"]
        except ClientError as exc:
            if _error_code(exc) == "ResourceNotFoundException":
                self._finish_gone(shard)
                return None
            raise PipeSourceError(f"cannot get an iterator for shard {shard.shard_id}") from exc
        except BotoCoreError as exc:
            raise PipeSourceError(f"cannot get an iterator for shard {shard.shard_id}") from exc

    def _log_trimmed(self, shard: _Shard) -> None:
        logger.warning(
            "pipe %s: shard %s was trimmed past sequence %s; reading from TRIM_HORIZON, "
            "records in between are lost",
            self.settings.name,
            shard.shard_id,
            shard.read_seq,
        )

    def _finish_gone(self, shard: _Shard) -> None:
        logger.warning(
            "pipe %s: shard %s no longer exists (trimmed); treating it as finished",
            self.settings.name,
            shard.shard_id,
        )
        shard.closed = True
        shard.finished = True
        self._shard_ended = True
        shard.pending.clear()
        self._commit(shard)

    # ------------------------------------------------------------------ sending

    def _flush(self, shard: _Shard) -> int:
        """Send the pending batch; checkpoint only once the target accepted all of it."""
        sent = self._send(shard, shard.pending)
        shard.pending = []
        shard.pending_since = None
        self._commit(shard)
        return sent

    def _commit(self, shard: _Shard) -> None:
        checkpoint = Checkpoint(shard.shard_id, shard.read_seq, shard.finished)
        if checkpoint == shard.saved or (
            checkpoint.sequence_number is None and not checkpoint.finished
        ):
            return
        self._checkpoints.save(checkpoint)
        shard.saved = checkpoint

    def _send(self, shard: _Shard, records: list[PipeRecord]) -> int:
        waiting: dict[str, tuple[SendMessageBatchRequestEntryTypeDef, PipeRecord]] = {}
        for index, record in enumerate(records):
            entry_id = str(index)
            try:
                waiting[entry_id] = (self._target.build_entry(entry_id, record), record)
            except TargetParameterError as exc:
                self._fail(shard, record, str(exc))
        entries = [entry for entry, _ in waiting.values()]
        sent = 0
        attempt = 0
        while waiting:
            try:
                response = self._sqs.send_message_batch(
                    QueueUrl=self.settings.target_queue_url,
                    Entries=[entry for entry, _ in waiting.values()],
                )
            except (ClientError, BotoCoreError) as exc:
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
                    self._fail(shard, record, f"{failed.get('Code')}: {failed.get('Message', '')}")
            if not waiting:
                break
            if attempt >= len(ENTRY_RETRY_DELAYS):
                raise PipeTargetError(
                    f"{len(waiting)} entries still failing after {attempt} retries; "
                    "the batch will be re-sent from the checkpoint"
                )
            self.metrics.send_retries += len(waiting)
            self._stop.wait(ENTRY_RETRY_DELAYS[attempt])
            attempt += 1
        self.metrics.sent += sent
        self.metrics.batches += 1
        if self._extra is not None:
            self._send_extra(self._extra.extra_entries(entries))
        logger.debug(
            "pipe %s: sent %s records of shard %s up to sequence %s",
            self.settings.name,
            sent,
            shard.shard_id,
            shard.read_seq,
        )
        return sent

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

    def _fail(self, shard: _Shard, record: PipeRecord, reason: str) -> None:
        """The pipe's failure log: a warning, `failures`, a counter, and the DLQ if configured."""
        seq = sequence_number(record)
        failure = PipeFailure(shard.shard_id, seq, record["eventID"], reason)
        if self.settings.dead_letter_queue_url:
            self._dead_letter(failure, record)
        self.failures.append(failure)
        self.metrics.failed += 1
        logger.warning(
            "pipe %s: record %s (sequence %s, shard %s) failed and is skipped: %s",
            self.settings.name,
            failure.event_id,
            seq,
            shard.shard_id,
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


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
