"""The local EventBridge Pipe: every shard of a DynamoDB stream → filter → SQS FIFO, checkpointed.

Talks to AWS only through the boto3 clients it is given; never imports local, cli or consumer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from orgsync.local.pipes.checkpoint import Checkpoint, CheckpointStore
from orgsync.local.pipes.delivery import Batch, ExtraEntries, TargetStage
from orgsync.local.pipes.errors import PipeError, PipeSourceError
from orgsync.local.pipes.filter import RecordFilter
from orgsync.local.pipes.metrics import PipeFailure, PipeMetrics, ShardPosition
from orgsync.local.pipes.record import sequence_number, to_pipe_record
from orgsync.local.pipes.settings import PipeSettings, StartingPosition
from orgsync.local.pipes.shards import Shard, parent_finished, parents_first

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_dynamodbstreams.type_defs import (
        GetRecordsOutputTypeDef,
        GetShardIteratorInputTypeDef,
        ShardTypeDef,
    )
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)

# GetRecords returns at most 1000 records per call (Streams API reference).
GET_RECORDS_LIMIT = 1000
MAX_ERROR_BACKOFF_SECONDS = 5.0
# New shards appear only when a shard ends, which a pass sees through its iterator and answers
# with an immediate DescribeStream; otherwise shards are re-listed this often, not every pass
# (DescribeStream is limited to 10/s per account and cost one request per record batch).
SHARD_DISCOVERY_INTERVAL_SECONDS = 10.0
# Positions the target accepted are written to the checkpoint table at most this often while
# records flow, and at once when the pipe goes idle, a shard ends or the pipe stops: a PutItem
# per batch was a fifth of the pipe's store cost. A pipe killed between two writes re-sends at
# most this long's records; their dedup ids are unchanged, so the FIFO queue drops the copies.
CHECKPOINT_INTERVAL_SECONDS = 1.0


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
        checkpoint_interval: float = CHECKPOINT_INTERVAL_SECONDS,
        extra: ExtraEntries | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = PipeMetrics()
        self._streams = streams
        self._poll_interval = poll_interval
        self._checkpoint_interval = checkpoint_interval
        self._persist_at = 0.0
        # Set to end an idle wait early: a write to the stream's table, or a drain, wants a pass.
        self._wake = threading.Event()
        self._target_stage = TargetStage(settings, sqs=sqs, extra=extra)
        self._filter = RecordFilter(settings.filter_patterns)
        self._checkpoints = CheckpointStore(
            dynamodb,
            table_name=settings.checkpoint_table,
            pipe_name=settings.name,
            stream_arn=settings.stream_arn,
        )
        self._lock = threading.Lock()
        self._shards: dict[str, Shard] = {}
        self._saved: dict[str, Checkpoint] | None = None
        self._discovered_once = False
        self._rediscover_at = 0.0
        self._shard_ended = False
        self._caught_up = False
        self._last_read = 0
        self._skipping = False

    # ------------------------------------------------------------------ public API

    @property
    def failures(self) -> deque[PipeFailure]:
        """The records this pipe gave up on (most recent last, bounded)."""
        return self._target_stage.failures

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
            self._persist_due(idle=read == 0)
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

    def skip_to_end(self, *, max_passes: int = 1000) -> int:
        """Consume every record now in the stream without sending it; returns how many.

        For a clean slate between tests: what the previous test left in the stream, and the
        REMOVE records of emptying its tables, must not reach the queue. Only while the runner's
        thread is stopped; the checkpoints move past what is skipped, as for filtered records.
        """
        self._skipping = True
        skipped = self.metrics.records_read
        try:
            for shard in self._shards.values():
                shard.pending.clear()
                shard.pending_since = None
            for _ in range(max_passes):
                self.run_once()
                if self._last_read == 0:
                    break
            self.persist_checkpoints()
        finally:
            self._skipping = False
        skipped = self.metrics.records_read - skipped
        self.metrics = PipeMetrics()
        self._target_stage.failures.clear()
        return skipped

    def run(self, stop: threading.Event) -> None:
        """Loop until `stop` is set; a failed pass is logged and retried from the checkpoints."""
        # A stop interrupts the target stage's retry backoff too.
        self._target_stage.stop = stop
        backoff = self._poll_interval
        failing = False
        while not stop.is_set():
            try:
                if self._saved is None:
                    self.ensure_checkpoint_table()
                self.run_once()
            except PipeError as exc:
                self.metrics.errors += 1
                # One warning per outage (a store that stays down), not one per retry.
                logger.log(
                    logging.DEBUG if failing else logging.WARNING,
                    "pipe %s: pass failed, retrying from checkpoints: %s",
                    self.settings.name,
                    exc,
                )
                failing = True
                stop.wait(backoff)
                backoff = min(max(backoff, 0.05) * 2, MAX_ERROR_BACKOFF_SECONDS)
                continue
            if failing:
                logger.warning("pipe %s: passes succeed again", self.settings.name)
                failing = False
            backoff = self._poll_interval
            if self._last_read == 0:
                self._wait_idle(stop)
        self._persist_on_stop()

    def wake(self) -> None:
        """Make the next pass now instead of after the idle wait (thread-safe, cheap)."""
        self._wake.set()

    def _wait_idle(self, stop: threading.Event) -> None:
        # Whoever sets `stop` wakes the runner too (PipeThread.stop), so a stop is seen at once.
        if not stop.is_set():
            self._wake.wait(self._poll_interval)
        self._wake.clear()

    def _persist_on_stop(self) -> None:
        try:
            self.persist_checkpoints()
        except PipeError as exc:  # the next runner re-sends from the last checkpoint written
            logger.warning("pipe %s: checkpoint not written at stop: %s", self.settings.name, exc)

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
                shard = Shard(shard_id=shard_id, parent_id=raw.get("ParentShardId"), closed=closed)
                if saved is not None:
                    shard.saved = shard.persisted = saved
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

    def _ordered(self) -> list[Shard]:
        return parents_first(self._shards)

    def _parent_finished(self, shard: Shard) -> bool:
        return parent_finished(self._shards, shard)

    # ------------------------------------------------------------------ reading

    def _poll(self, shard: Shard) -> tuple[int, int]:
        """One GetRecords on one shard; returns (records read, records sent)."""
        try:
            return self._poll_unsafe(shard)
        except Exception:
            shard.rewind()
            raise

    def _poll_unsafe(self, shard: Shard) -> tuple[int, int]:
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
            if self._skipping:
                continue  # consumed unsent, like a filtered record
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

    def _window_elapsed(self, shard: Shard) -> bool:
        window = self.settings.maximum_batching_window_seconds
        if window <= 0 or shard.pending_since is None:
            return True
        return time.monotonic() - shard.pending_since >= window

    def _get_records(self, shard: Shard) -> GetRecordsOutputTypeDef | None:
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

    def _open_iterator(self, shard: Shard) -> str | None:
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

    def _log_trimmed(self, shard: Shard) -> None:
        logger.warning(
            "pipe %s: shard %s was trimmed past sequence %s; reading from TRIM_HORIZON, "
            "records in between are lost",
            self.settings.name,
            shard.shard_id,
            shard.read_seq,
        )

    def _finish_gone(self, shard: Shard) -> None:
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

    def _flush(self, shard: Shard) -> int:
        """Send the pending batch; checkpoint only once the target accepted all of it."""
        sent = self._target_stage.send(
            Batch(shard.shard_id, shard.pending, shard.read_seq), self.metrics
        )
        shard.pending = []
        shard.pending_since = None
        self._commit(shard)
        return sent

    def _commit(self, shard: Shard) -> None:
        """The target has everything read so far: the shard's position moves (in memory)."""
        checkpoint = Checkpoint(shard.shard_id, shard.read_seq, shard.finished)
        if checkpoint == shard.saved or (
            checkpoint.sequence_number is None and not checkpoint.finished
        ):
            return
        shard.saved = checkpoint
        if checkpoint.finished:
            self._persist(shard)  # rare, and a restart must not read an ended shard again
        self._persist_due(idle=False)

    def _persist_due(self, *, idle: bool) -> None:
        if idle or time.monotonic() >= self._persist_at:
            self.persist_checkpoints()

    def persist_checkpoints(self) -> None:
        """Write every position not yet in the checkpoint table (see CHECKPOINT_INTERVAL)."""
        with self._lock:
            shards = list(self._shards.values())
        for shard in shards:
            self._persist(shard)
        self._persist_at = time.monotonic() + self._checkpoint_interval

    def _persist(self, shard: Shard) -> None:
        checkpoint = shard.saved
        if checkpoint is None or checkpoint == shard.persisted:
            return
        self._checkpoints.save(checkpoint)
        shard.persisted = checkpoint


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
