"""Emulation of Lambda's SQS event source mapping: poll, invoke the template's handler, delete.

It calls the very handler the template names with the event Lambda builds, and deletes what the
response reports as succeeded; failures are left to the queue's visibility timeout and redrive
policy. Takes its SQS client from the caller; never reaches into the consumer's internals.
"""

from __future__ import annotations

import base64
import importlib
import importlib.util
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, Protocol, TypedDict

from botocore.exceptions import BotoCoreError, ClientError

from orgsync.local.errors import HandlerImportError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueOutputTypeDef, MessageTypeDef

    from orgsync.local.template.model import FunctionModel, SqsEventSourceModel

__all__ = [
    "BatchOutcome",
    "apply_environment",
    "EventSourceConfig",
    "LambdaContext",
    "PollerStats",
    "SqsEventSourcePoller",
    "SqsEventRecord",
    "build_sqs_event",
    "decide_batch_outcome",
    "import_handler",
    "lambda_environment",
    "restore_environment",
]

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]

# Lambda allows at most 10 messages per batch from a FIFO queue (and 10 per ReceiveMessage).
_MAX_RECEIVE: Final = 10
_ERROR_BACKOFF_SECONDS: Final = 0.5


# --------------------------------------------------------------------------- wire shapes


class SqsMessageAttribute(TypedDict, total=False):
    stringValue: str
    binaryValue: str
    stringListValues: list[str]
    binaryListValues: list[str]
    dataType: str


class _SqsEventRecordRequired(TypedDict):
    messageId: str
    receiptHandle: str
    body: str
    attributes: dict[str, str]
    messageAttributes: dict[str, SqsMessageAttribute]
    md5OfBody: str
    eventSource: str
    eventSourceARN: str
    awsRegion: str


class SqsEventRecord(_SqsEventRecordRequired, total=False):
    """One record of the event Lambda sends for SQS (Records[] item)."""

    md5OfMessageAttributes: str


class SqsEvent(TypedDict):
    Records: list[SqsEventRecord]


def _lambda_attribute(value: MessageAttributeValueOutputTypeDef) -> SqsMessageAttribute:
    # Lambda spells SQS's attribute values in camelCase, binaries base64-encoded, and always
    # carries both list fields.
    attribute: SqsMessageAttribute = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [
            base64.b64encode(item).decode() for item in value.get("BinaryListValues", [])
        ],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return attribute


def build_sqs_event(messages: Sequence[MessageTypeDef], *, queue_arn: str, region: str) -> SqsEvent:
    """The event Lambda's SQS poller passes to the function for these received messages."""
    records: list[SqsEventRecord] = []
    for message in messages:
        record: SqsEventRecord = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message.get("Body", ""),
            "attributes": {str(k): str(v) for k, v in message.get("Attributes", {}).items()},
            "messageAttributes": {
                name: _lambda_attribute(value)
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        records.append(record)
    return {"Records": records}


# --------------------------------------------------------------------------- context


class LambdaContext:
    """What Lambda's Python runtime passes as `context`, timed from the template's Timeout."""

    def __init__(
        self,
        *,
        function_name: str,
        invoked_function_arn: str,
        memory_limit_in_mb: int,
        timeout_seconds: float,
        function_version: str = "$LATEST",
    ) -> None:
        self.function_name = function_name
        self.function_version = function_version
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        today = datetime.now(UTC).strftime("%Y/%m/%d")
        self.log_stream_name = f"{today}/[{function_version}]{uuid.uuid4().hex}"
        self.identity: object | None = None
        self.client_context: object | None = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# --------------------------------------------------------------------------- outcome


@dataclass(frozen=True)
class BatchOutcome:
    """Which messages of an invocation are deleted (succeeded) and which stay (failed)."""

    succeeded: tuple[str, ...]
    failed: tuple[str, ...]
    error: str | None = None  # why the whole batch failed, when it did


def decide_batch_outcome(
    message_ids: Sequence[str],
    *,
    response: object,
    error: str | None,
    report_batch_item_failures: bool,
) -> BatchOutcome:
    """Lambda's reading of a handler's result (Lambda developer guide, "partial batch responses").

    An error fails the whole batch. Without ReportBatchItemFailures any return is success. With
    it: no response, an empty object or an empty/null `batchItemFailures` is success; listed ids
    fail; an empty, null or unknown `itemIdentifier`, or a response of another shape, fails all.
    """
    everything = tuple(message_ids)
    if error is not None:
        return BatchOutcome(succeeded=(), failed=everything, error=error)
    if not report_batch_item_failures:
        return BatchOutcome(succeeded=everything, failed=())
    if response is None:
        return BatchOutcome(succeeded=everything, failed=())
    if not isinstance(response, dict):
        return _whole_batch_failed(everything, f"response is not an object: {response!r:.200}")
    failures = response.get("batchItemFailures")
    if failures is None:
        return BatchOutcome(succeeded=everything, failed=())
    if not isinstance(failures, list):
        return _whole_batch_failed(everything, "batchItemFailures is not a list")
    known = set(everything)
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in known:
            return _whole_batch_failed(everything, f"invalid batch item failure {item!r:.200}")
        failed.add(identifier)
    return BatchOutcome(
        succeeded=tuple(i for i in everything if i not in failed),
        failed=tuple(i for i in everything if i in failed),
    )


def _whole_batch_failed(message_ids: tuple[str, ...], reason: str) -> BatchOutcome:
    return BatchOutcome(succeeded=(), failed=message_ids, error=reason)


# --------------------------------------------------------------------------- handler & env


def import_handler(dotted_path: str, *, fresh: bool = False) -> Handler:
    """Import `package.module.function` the way Lambda resolves a Handler setting.

    `fresh` executes the handler's module anew, as a cold start in a new execution environment
    would: whatever it cached at module level (clients bound to an endpoint that an earlier local
    stack of this process used) starts empty. Modules it imports are shared as usual.
    """
    module_name, _, attribute = dotted_path.rpartition(".")
    if not module_name:
        raise HandlerImportError(f"handler {dotted_path!r} is not of the form module.function")
    try:
        module = importlib.import_module(module_name)
        if fresh:
            module = _execute_anew(module_name, module)
    except Exception as exc:  # whatever the module raises while loading is an init error
        raise HandlerImportError(f"cannot import handler module {module_name}: {exc}") from exc
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise HandlerImportError(f"{module_name} has no callable {attribute}")
    result: Handler = handler
    return result


def _execute_anew(module_name: str, previous: ModuleType) -> ModuleType:
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module spec for {module_name}")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as a normal import does (dataclasses look it up there).
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules[module_name] = previous
        raise
    return module


def lambda_environment(
    function: FunctionModel,
    *,
    endpoint_url: str | None,
    region: str,
    emit_metrics: bool = False,
) -> dict[str, str | None]:
    """Variables to put in os.environ for the handler (None: leave whatever is there).

    The function's own variables and the endpoint/region win, as in Lambda. Credentials are only
    defaulted (any value works against the embedded store; real ones are kept for real
    endpoints). Powertools metrics are off unless asked for: EMF lines on stdout would bury the
    console, and nothing collects them locally. Tracing is off: there is no X-Ray daemon.
    """
    environment: dict[str, str | None] = dict(function.environment)
    environment.update(
        {
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        }
    )
    if endpoint_url is not None:
        environment["AWS_ENDPOINT_URL"] = endpoint_url
    defaults = {
        "AWS_ACCESS_KEY_ID": "orgsynclocal",
        "AWS_SECRET_ACCESS_KEY": "orgsynclocal",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "false" if emit_metrics else "true",
    }
    for name, value in defaults.items():
        if name not in os.environ or (name == "POWERTOOLS_METRICS_DISABLED" and emit_metrics):
            environment[name] = value
    return environment


def apply_environment(environment: Mapping[str, str | None]) -> dict[str, str | None]:
    """Set the variables in os.environ; return what they were (None: unset), for restoring.

    Process-global on purpose: the handler reads os.environ, as in Lambda, and a local stack runs
    its function in this process. Two stacks running at once in one process would share these
    variables; one after the other is fine, since stopping a poller restores them.
    """
    previous: dict[str, str | None] = {}
    for name, value in environment.items():
        if value is not None:
            previous[name] = os.environ.get(name)
            os.environ[name] = value
    return previous


def restore_environment(previous: Mapping[str, str | None]) -> None:
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# --------------------------------------------------------------------------- poller


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
    # 0 with the embedded store: moto's long poll spins while a visible message's group is
    # blocked, so short polls with an idle pause cost less. 1 for real endpoints (cheaper there).
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
    ) -> None:
        self.config = config
        self._sqs = sqs
        self._faults = faults
        self._handler = handler
        self._environment = dict(environment or {})
        self._stop = threading.Event()
        self._receive_lock = threading.Lock()
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

    # -- lifecycle

    def start(self) -> None:
        if self._workers:
            return
        self._apply_environment()
        self._stop.clear()
        for index in range(self.config.maximum_concurrency):
            worker = threading.Thread(
                target=self._run_worker, name=f"orgsync-poller-{index}", daemon=True
            )
            worker.start()
            self._workers.append(worker)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling; an invocation already running finishes (and deletes) first."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        alive = [worker.name for worker in self._workers if worker.is_alive()]
        if alive:
            logger.warning("poller workers still running after %.0fs: %s", timeout, alive)
        self._workers = []
        if self._environment_applied:
            restore_environment(self._previous_environment)
            self._environment_applied = False

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
            if self._stop.is_set() and self._workers:
                return 0
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
            try:
                received = self.poll_once()
            except (ClientError, BotoCoreError) as exc:
                self._note_poll_error(f"poll: {exc}")
                if self._stop.is_set():
                    return
                logger.warning("poller: %s; retrying", exc)
                self._stop.wait(_ERROR_BACKOFF_SECONDS)
                continue
            except Exception as exc:  # a bug here must not silently remove a worker
                self._note_poll_error(f"poller: {type(exc).__name__}: {exc}")
                logger.exception("poller worker error; retrying")
                self._stop.wait(_ERROR_BACKOFF_SECONDS)
                continue
            if received == 0 and self.config.receive_wait_seconds == 0:
                # Staggered so that all idle workers together poll about once per idle_wait.
                self._stop.wait(self.config.idle_wait_seconds * len(self._workers or (0,)))
