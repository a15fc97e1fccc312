"""An `EmbeddedStack` in a child process, driven from the parent: the pytest fixture's stack.

In-process, the stack would share everything process-global with the tests that use it: moto's
backends (a test's `mock_aws()` resets them all, the stack's tables included), the function's
environment (AWS_ENDPOINT_URL and dummy credentials in os.environ would send the tests' own
boto3 clients to the stack instead of to their mocks), moto's patches and the log handlers.
In a child process the tests keep their process as they had it, and reach the stack only over
HTTP, at `endpoint_url`, plus the few calls below (drain, reset, status, chaos), made over the
child's stdin and stdout.

The child lives as long as its stdin is open: when the parent ends, however it ends, the pipe
closes and the child stops its stack and exits. Its own output (logs of the pipe, the poller,
the function) goes to `log_path`.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import tempfile
import threading
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from orgsync.local.errors import EmbeddedStackError

if TYPE_CHECKING:
    from orgsync.local.chaos import ChaosSpec
    from orgsync.local.clients import StackClients
    from orgsync.local.options import StackOptions
    from orgsync.local.stack import EmbeddedStack, StackStatus
    from orgsync.local.template.model import StackModel
    from orgsync.local.template.resources import CreatedResources

logger = logging.getLogger(__name__)

# Slowest start: DynamoDB Local's JVM on a busy machine.
_START_TIMEOUT_SECONDS: Final = 120.0
# A call's own timeout (drain's) plus this much for the round trip.
_CALL_MARGIN_SECONDS: Final = 30.0
# SQS (and moto) allow one PurgeQueue a minute per queue; the fixture empties queues before
# every test (`EmbeddedStack.reset`), so its stack's moto lifts the limit.
_STRICT_PURGE_ENV: Final = "MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR"
_CALLS: Final = frozenset({"drain", "reset", "status", "recreate_missing", "chaos_reconfigure"})


def _mapping_proxy(mapping: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(mapping)


def _reduce_mapping_proxy(proxy: MappingProxyType[Any, Any]) -> tuple[Any, tuple[Any, ...]]:
    return _mapping_proxy, (dict(proxy),)


# The model's read-only mappings cross the channel as what they are. Registered with
# multiprocessing's pickler, so it holds for multiprocessing in the whole process (it only
# makes mappingproxy picklable there; the standard pickle module is left as it was).
ForkingPickler.register(MappingProxyType, _reduce_mapping_proxy)


class RemoteChaos:
    """The child's fault injectors, as `Chaos` offers them to tests."""

    def __init__(self, stack: RemoteStack) -> None:
        self._stack = stack

    def reconfigure(self, spec: ChaosSpec) -> None:
        self._stack.call("chaos_reconfigure", spec)

    def counts(self) -> dict[str, int]:
        return dict(self._stack.status().faults)


class RemoteStack:
    """`start()` or `with RemoteStack(options) as stack:`; `stop()` is idempotent."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self._process: subprocess.Popen[bytes] | None = None
        self._requests: Connection | None = None
        self._replies: Connection | None = None
        self._lock = threading.Lock()
        self._started: dict[str, Any] = {}
        self._clients: StackClients | None = None
        descriptor, log = tempfile.mkstemp(prefix="orgsync-stack-", suffix=".log")
        os.close(descriptor)
        self._log = Path(log)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def log_path(self) -> Path:
        """What the child logged: the pipe's, poller's and function's lines."""
        return self._log

    def start(self) -> None:
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=os.environ | {_STRICT_PURGE_ENV: "false"},
            )
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        # The connections own the pipes from here on: closing `_requests` is the stop signal.
        self._requests = Connection(os.dup(self._process.stdin.fileno()), readable=False)
        self._replies = Connection(os.dup(self._process.stdout.fileno()), writable=False)
        self._process.stdin.close()
        self._process.stdout.close()
        # boto3 (0.2-0.3 s) is imported while the child boots on another core, not before it.
        from orgsync.local.clients import StackClients  # noqa: PLC0415

        try:
            self._started = self._exchange(("start", (self.options,)), _START_TIMEOUT_SECONDS)
        except BaseException:
            self.stop()
            raise
        self._clients = StackClients(
            self.endpoint_url,
            region=self.options.region,
            concurrency=10,
            external=bool(self.options.endpoint_url),
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with self._lock:
            requests, replies, self._requests, self._replies = (
                self._requests,
                self._replies,
                None,
                None,
            )
        if requests is not None:
            requests.close()  # the child's signal to stop
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if replies is not None:
            replies.close()
        self._clients = None
        self._started = {}
        if process.returncode == 0:
            self._log.unlink(missing_ok=True)  # a clean run leaves nothing behind

    # ------------------------------------------------------------------ what tests use

    @property
    def endpoint_url(self) -> str:
        return str(self._value("endpoint_url"))

    @property
    def store_endpoint_url(self) -> str:
        return str(self._value("store_endpoint_url"))

    @property
    def model(self) -> StackModel:
        model: StackModel = self._value("model")
        return model

    @property
    def resources(self) -> CreatedResources:
        resources: CreatedResources = self._value("resources")
        return resources

    @property
    def chaos(self) -> RemoteChaos | None:
        return RemoteChaos(self) if self._value("chaos") else None

    def client(self, service_name: str) -> Any:
        """A boto3 client for the endpoint, built in this process (cached)."""
        if self._clients is None:
            raise EmbeddedStackError("the local stack is not running")
        return self._clients.client(service_name)

    def drain(self, timeout: float = 30.0) -> None:
        """See `EmbeddedStack.drain`."""
        self._exchange(("drain", (timeout,)), timeout + _CALL_MARGIN_SECONDS)

    def reset(self) -> None:
        """See `EmbeddedStack.reset`."""
        self.call("reset")

    def status(self) -> StackStatus:
        status: StackStatus = self.call("status")
        return status

    def recreate_missing(self) -> tuple[str, ...]:
        made: tuple[str, ...] = self.call("recreate_missing")
        return made

    def call(self, name: str, *args: Any) -> Any:
        return self._exchange((name, args), _CALL_MARGIN_SECONDS)

    # ------------------------------------------------------------------ the channel

    def _value(self, name: str) -> Any:
        if not self._started:
            raise EmbeddedStackError("the local stack is not running")
        return self._started[name]

    def _exchange(self, request: tuple[str, tuple[Any, ...]], timeout: float) -> Any:
        with self._lock:
            if self._requests is None or self._replies is None:
                raise EmbeddedStackError("the local stack is not running")
            try:
                self._requests.send(request)
                answered = self._replies.poll(timeout)
                if answered:
                    outcome, value = self._replies.recv()
            except (EOFError, OSError) as exc:
                self._abandon()
                raise EmbeddedStackError(
                    f"the stack process ended; its log ({self._log}): {self._log_tail()}"
                ) from exc
            if not answered:
                # Its late answer would be taken for the next call's: the channel is done for.
                self._abandon()
                raise EmbeddedStackError(
                    f"the stack process did not answer {request[0]} in {timeout:g}s and was "
                    f"stopped; its log: {self._log}"
                )
        if outcome == "error":
            raise value
        return value

    def _abandon(self) -> None:
        """Kill the child: after a lost answer, no later answer can be trusted (lock held)."""
        process, self._process = self._process, None
        requests, replies, self._requests, self._replies = (
            self._requests,
            self._replies,
            None,
            None,
        )
        for connection in (requests, replies):
            if connection is not None:
                connection.close()
        if process is not None:
            process.kill()
            process.wait(timeout=10)
        self._started = {}
        self._clients = None

    def _log_tail(self) -> str:
        try:
            return self._log.read_text(errors="replace")[-2000:].strip()
        except OSError:
            return ""


# ---------------------------------------------------------------------- the child


def _serve(requests: Connection, replies: Connection) -> None:
    from orgsync.local.stack import EmbeddedStack  # noqa: PLC0415 - the child's own import

    stack: EmbeddedStack | None = None
    try:
        while True:
            try:
                name, args = requests.recv()
            except EOFError:
                return  # the parent closed the pipe, or died
            try:
                if name == "start":
                    stack = EmbeddedStack(args[0])
                    stack.start()
                    value: Any = _started(stack)
                elif stack is None or name not in _CALLS:
                    raise EmbeddedStackError(f"no such call on the stack process: {name}")
                elif name == "chaos_reconfigure":
                    if stack.chaos is None:
                        raise EmbeddedStackError("the stack runs without chaos")
                    stack.chaos.reconfigure(*args)
                    value = None
                else:
                    value = getattr(stack, name)(*args)
                replies.send(("ok", value))
            except Exception as exc:  # the parent raises it, in the caller's test
                logger.exception("stack process: %s failed", name)  # the traceback, in the log
                replies.send(("error", _transferable(exc)))
    finally:
        if stack is not None:
            stack.stop()


def _started(stack: EmbeddedStack) -> dict[str, Any]:
    return {
        "endpoint_url": stack.endpoint_url,
        "store_endpoint_url": stack.store_endpoint_url,
        "model": stack.model,
        "resources": stack.resources,
        "chaos": stack.chaos is not None,
    }


def _transferable(exc: Exception) -> Exception:
    """The exception itself when it survives pickling, else its message in a stack error."""
    try:
        copy: Exception = pickle.loads(ForkingPickler.dumps(exc))  # noqa: S301 - our own object
    except Exception:
        return EmbeddedStackError(f"{type(exc).__name__}: {exc}")
    return copy


def main() -> None:
    # The channel is the original stdout; everything else printed (the function's JSON logs,
    # warnings) goes where stderr goes, so that it can never corrupt a reply.
    replies = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _serve(Connection(0, writable=False), replies)


if __name__ == "__main__":
    # Run from the imported module, not from `__main__`: what the child pickles then names
    # `orgsync.local.remote`, which the parent can import.
    from orgsync.local import remote  # noqa: PLW0406

    remote.main()
