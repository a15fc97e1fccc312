"""Emulation of Lambda's SQS event source mapping: poll, invoke the template's handler, delete.

It calls the very handler the template names with the event Lambda builds (`event`, `context`),
and deletes what the response reports as succeeded (`response`); failures are left to the
queue's visibility timeout and redrive policy. Takes its SQS client from the caller; never
reaches into the consumer's internals.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from orgsync.local.errors import EmbeddedStackError
from orgsync.local.lambda_.context import LambdaContext
from orgsync.local.lambda_.event import build_sqs_event
from orgsync.local.lambda_.response import BatchOutcome, decide_batch_outcome
from orgsync.local.lambda_.runtime import Handler, apply_environment, restore_environment

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

    from orgsync.local.template.model import FunctionModel, SqsEventSourceModel

logger = logging.getLogger(__name__)

# Lambda allows at most 10 messages per batch from a FIFO queue (and 10 per ReceiveMessage).
_MAX_RECEIVE: Final = 10
_ERROR_BACKOFF_SECONDS: Final = 0.5
# While a pause or a stop waits for the receive in progress, it ends that receive's wait this
# often: a receive may reach the store just after one interruption, not after two.
_INTERRUPT_EVERY_SECONDS: Final = 0.01

# Every poller worker's name starts so: its handler's requests are made in that thread.
THREAD_NAME_PREFIX = "orgsync-poller-"

# Ends the long polls now waiting on a queue (by URL): the embedded store offers it.
InterruptReceive = Callable[[str], None]


class BatchFaults(Protocol):
    """Faults a poller lets happen to a batch (orgsync.local.chaos); absent in normal runs."""

    def hold_seconds(self, message_ids: Sequence[str]) -> float:
        """Wait this long before invoking: past the visibility timeout, another worker gets it."""
        ...

    def crashes(self, message_ids: Sequence[str]) -> bool:
        """True: the handler ran, then the process 'died' before deleting anything."""
        ...


@dataclass(frozen=True)
class EventSourceConfig:
    """One event source mapping as the poller runs it (from the template, or built by a test)."""

    queue_url: str
    queue_arn: str
    function_name: str
    function_arn: str
    region: str = "us-east-1"
    batch_size: int = 10
    report_batch_item_failures: bool = True
    maximum_concurrency: int = 2
    timeout_seconds: float = 30.0
    memory_size_mb: int = 128
    # Lambda's pollers long-poll. 20 with the embedded store, whose waits a pause or a stop can
    # end at once (`interrupt_receive`); 1 for other endpoints, so that a pause waits 1 s at most.
    receive_wait_seconds: int = 0
    idle_wait_seconds: float = 0.05
    # Lambda stops an invocation at its Timeout and fails the batch; threads cannot be stopped,
    # so the result of an invocation that overran is discarded instead (batch failed).
    enforce_timeout: bool = True

    @classmethod
    def for_function(
        cls,
        function: FunctionModel,
        source: SqsEventSourceModel,
        *,
        region: str,
        queue_url: str | None = None,
        queue_arn: str | None = None,
        maximum_concurrency: int | None = None,
        receive_wait_seconds: int = 0,
    ) -> EventSourceConfig:
        concurrency = maximum_concurrency or source.maximum_concurrency or 2
        return cls(
            queue_url=queue_url or source.queue_url,
            queue_arn=queue_arn or source.queue_arn,
            function_name=function.name,
            function_arn=function.arn,
            region=region,
            batch_size=min(source.batch_size, _MAX_RECEIVE),
            report_batch_item_failures=source.report_batch_item_failures,
            maximum_concurrency=max(1, concurrency),
            timeout_seconds=float(function.timeout_seconds),
            memory_size_mb=function.memory_size_mb,
            receive_wait_seconds=receive_wait_seconds,
        )


@dataclass(frozen=True)
class PollerStats:
    invocations: int
    messages_received: int
    messages_succeeded: int
    messages_failed: int
    batches_failed: int
    active_invocations: int
    last_error: str | None
    last_error_at: datetime | None


class SqsEventSourcePoller:
    """N workers, each receive → invoke → delete, like an event source mapping's concurrency.

    FIFO keeps one message group out of two in-flight batches, so workers never reorder a group.
    Receives are serialised (moto's ReceiveMessage is not atomic across threads); invocations
    run concurrently, so the handler must be safe to call from several threads at once.
    """

    def __init__(
        self,
        config: EventSourceConfig,
        *,
        sqs: SQSClient,
        handler: Handler,
        environment: Mapping[str, str | None] | None = None,
        faults: BatchFaults | None = None,
        interrupt_receive: InterruptReceive | None = None,
    ) -> None:
        self.config = config
        self._sqs = sqs
        self._interrupt_receive = interrupt_receive
        self._faults = faults
        self._handler = handler
        self._environment = dict(environment or {})
        self._stop = threading.Event()
        self._receive_lock = threading.Lock()
        # Pauses waiting for the receive lock: workers keep off it meanwhile. Python's locks are
        # not fair, and a worker whose long poll a pause just ended would take it straight back.
        self._pauses_waiting = 0
        self._counter_lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._environment_applied = False
        self._previous_environment: dict[str, str | None] = {}
        self._invocations = 0
        self._received = 0
        self._succeeded = 0
        self._failed = 0
        self._batches_failed = 0
        self._active = 0
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._failing = False

    # -- lifecycle

    def start(self) -> None:
        if self._workers:
            return
        self._apply_environment()
        self._stop.clear()
        for index in range(self.config.maximum_concurrency):
            worker = threading.Thread(
                target=self._run_worker, name=f"{THREAD_NAME_PREFIX}{index}", daemon=True
            )
            worker.start()
            self._workers.append(worker)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling; an invocation already running finishes (and deletes) first."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            while worker.is_alive() and time.monotonic() < deadline:
                self._end_waiting_receive()
                worker.join(min(_INTERRUPT_EVERY_SECONDS, max(0.0, deadline - time.monotonic())))
        alive = [worker.name for worker in self._workers if worker.is_alive()]
        if alive:
            logger.warning("poller workers still running after %.0fs: %s", timeout, alive)
        self._workers = []
        if self._environment_applied:
            restore_environment(self._previous_environment)
            self._environment_applied = False

    @contextmanager
    def paused(self, timeout: float | None = None) -> Iterator[None]:
        """No receive while inside; running invocations finish (and delete) before it enters.

        Receives are serialised by one lock, so holding it pauses every worker at once, without
        stopping threads that would then have to start again (a test's reset, every test). An
        invocation may run for the function's Timeout (default), then EmbeddedStackError.
        """
        with self._receive_lock_now():
            deadline = time.monotonic() + (
                self.config.timeout_seconds + 1 if timeout is None else timeout
            )
            while self.active_invocations:
                if time.monotonic() >= deadline:
                    raise EmbeddedStackError(
                        f"{self.config.function_name}: {self.active_invocations} invocation(s) "
                        f"still running after {timeout:g}s"
                    )
                time.sleep(0.001)
            yield

    @contextmanager
    def _receive_lock_now(self) -> Iterator[None]:
        """The receive lock, taken without waiting out a long poll that holds it."""
        with self._counter_lock:
            self._pauses_waiting += 1
        try:
            while not self._receive_lock.acquire(timeout=_INTERRUPT_EVERY_SECONDS):
                self._end_waiting_receive()
        finally:
            with self._counter_lock:
                self._pauses_waiting -= 1
        try:
            yield
        finally:
            self._receive_lock.release()

    def _pause_waiting(self) -> bool:
        with self._counter_lock:
            return self._pauses_waiting > 0

    def _end_waiting_receive(self) -> None:
        if self._interrupt_receive is not None:
            self._interrupt_receive(self.config.queue_url)

    def reset_counters(self) -> None:
        """Zero the counters (a test's clean slate)."""
        with self._counter_lock:
            self._invocations = self._received = self._succeeded = self._failed = 0
            self._batches_failed = 0
            self._last_error = None
            self._last_error_at = None

    @property
    def active_invocations(self) -> int:
        with self._counter_lock:
            return self._active

    def stats(self) -> PollerStats:
        with self._counter_lock:
            return PollerStats(
                invocations=self._invocations,
                messages_received=self._received,
                messages_succeeded=self._succeeded,
                messages_failed=self._failed,
                batches_failed=self._batches_failed,
                active_invocations=self._active,
                last_error=self._last_error,
                last_error_at=self._last_error_at,
            )

    # -- one cycle

    def poll_once(self) -> int:
        """Receive one batch, invoke, delete the successes; return how many messages it got."""
        self._apply_environment()
        with self._receive_lock:
            if (self._stop.is_set() and self._workers) or self._pause_waiting():
                return 0  # workers that queued for the lock before a pause step aside
            messages = self._receive()
            if messages:
                # Counted before the lock is released so `drain` never sees a batch that is
                # neither in the queue's in-flight count's past nor in `active`.
                with self._counter_lock:
                    self._active += 1
                    self._received += len(messages)
        if not messages:
            return 0
        try:
            self._invoke_and_delete(messages)
        finally:
            with self._counter_lock:
                self._active -= 1
        return len(messages)

    def _apply_environment(self) -> None:
        if not self._environment_applied:
            self._previous_environment = apply_environment(self._environment)
            self._environment_applied = True

    def _receive(self) -> list[MessageTypeDef]:
        response = self._sqs.receive_message(
            QueueUrl=self.config.queue_url,
            MaxNumberOfMessages=min(self.config.batch_size, _MAX_RECEIVE),
            WaitTimeSeconds=self.config.receive_wait_seconds,
            # Both spellings: AttributeNames is deprecated but older emulators know only it.
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _invoke_and_delete(self, messages: Sequence[MessageTypeDef]) -> None:
        config = self.config
        event = build_sqs_event(messages, queue_arn=config.queue_arn, region=config.region)
        context = LambdaContext(
            function_name=config.function_name,
            invoked_function_arn=config.function_arn,
            memory_limit_in_mb=config.memory_size_mb,
            timeout_seconds=config.timeout_seconds,
        )
        message_ids = [message["MessageId"] for message in messages]
        if self._faults is not None:
            hold = self._faults.hold_seconds(message_ids)
            if hold > 0:
                logger.warning("chaos: holding a batch of %d for %.1fs", len(messages), hold)
                self._stop.wait(hold)
        started = time.monotonic()
        response: object = None
        error: str | None = None
        try:
            # Lambda serialises the response to JSON: what cannot be serialised is an error.
            response = json.loads(json.dumps(self._handler(dict(event), context)))
        except Exception as exc:  # the handler's failure is the whole batch's failure
            error = f"{type(exc).__name__}: {exc}"
            logger.warning(
                "%s failed its batch of %d: %s", config.function_name, len(messages), error
            )
        elapsed = time.monotonic() - started
        if error is None and config.enforce_timeout and elapsed > config.timeout_seconds:
            error = f"Task timed out after {elapsed:.2f} seconds"
            logger.warning("%s: %s", config.function_name, error)
        outcome = decide_batch_outcome(
            message_ids,
            response=response,
            error=error,
            report_batch_item_failures=config.report_batch_item_failures,
        )
        if outcome.error is not None and error is None:
            logger.warning("%s: whole batch failed: %s", config.function_name, outcome.error)
        if self._faults is not None and self._faults.crashes(message_ids):
            # As if the process died here: the handler's writes stand, nothing is acknowledged.
            logger.warning("chaos: batch of %d not deleted (crash)", len(messages))
            return
        self._delete(messages, outcome)
        with self._counter_lock:
            self._invocations += 1
            self._succeeded += len(outcome.succeeded)
            self._failed += len(outcome.failed)
            if outcome.error is not None:
                self._batches_failed += 1
                self._last_error = outcome.error
                self._last_error_at = datetime.now(UTC)

    def _delete(self, messages: Sequence[MessageTypeDef], outcome: BatchOutcome) -> None:
        succeeded = set(outcome.succeeded)
        entries = [
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
            for index, message in enumerate(messages)
            if message["MessageId"] in succeeded
        ]
        for start in range(0, len(entries), _MAX_RECEIVE):
            chunk = entries[start : start + _MAX_RECEIVE]
            result = self._sqs.delete_message_batch(
                QueueUrl=self.config.queue_url,
                Entries=chunk,  # type: ignore[arg-type]
            )
            for failure in result.get("Failed", []):
                # The message comes back after its visibility timeout: a duplicate, which the
                # consumer must (and does) tolerate, as with Lambda's own failed deletes.
                logger.warning("delete failed for entry %s: %s", failure["Id"], failure["Code"])

    def _note_poll_error(self, error: str) -> None:
        with self._counter_lock:
            self._last_error = error
            self._last_error_at = datetime.now(UTC)

    def _run_worker(self) -> None:
        while not self._stop.is_set():
            if self._pause_waiting():
                self._stop.wait(_INTERRUPT_EVERY_SECONDS)  # let the pause take the lock
                continue
            try:
                received = self.poll_once()
            except (ClientError, BotoCoreError) as exc:
                self._note_poll_error(f"poll: {exc}")
                if self._stop.is_set():
                    return
                # One warning per outage for all workers (a queue deleted, a store down).
                with self._counter_lock:
                    first, self._failing = not self._failing, True
                logger.log(logging.WARNING if first else logging.DEBUG, "poller: %s; retrying", exc)
                self._stop.wait(_ERROR_BACKOFF_SECONDS)
                continue
            except Exception as exc:  # a bug here must not silently remove a worker
                self._note_poll_error(f"poller: {type(exc).__name__}: {exc}")
                logger.exception("poller worker error; retrying")
                self._stop.wait(_ERROR_BACKOFF_SECONDS)
                continue
            if self._failing:
                with self._counter_lock:
                    recovered, self._failing = self._failing, False
                if recovered:
                    logger.warning("poller of %s: polling again", self.config.queue_url)
            if received == 0 and self.config.receive_wait_seconds == 0:
                # Staggered so that all idle workers together poll about once per idle_wait.
                self._stop.wait(self.config.idle_wait_seconds * len(self._workers or (0,)))
