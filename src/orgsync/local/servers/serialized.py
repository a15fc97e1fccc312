"""moto's WSGI app applied one request at a time, SQS long polls included.

moto's backends are not thread-safe: concurrent TransactWriteItems deep-copy a table another
thread is writing ("dictionary changed size during iteration"), a transaction's condition checks
can interleave with other writes, which DynamoDB never allows, and a ReceiveMessage that runs
beside a DeleteMessage can mark a message in flight after it was deleted, which blocks its FIFO
message group for good. moto is CPU-bound under the GIL anyway, so serialising costs little.

A long poll cannot simply hold the lock while it waits: it would block the very send it waits
for. So a ReceiveMessage that may wait is run as short polls (WaitTimeSeconds 0), each under the
lock, and between two of them it waits on a condition of that lock, which every request that
can make a message receivable signals (a send, a delete that frees a FIFO group, a visibility
change, a purge); messages that become visible by the clock alone (a visibility timeout running
out) are looked for every `RECHECK_SECONDS`. What a client sees is SQS's long poll; what moto
sees is one request at a time, and an idle long poll costs a few short polls a second, not 20.
Standard library only: no boto3, no moto import.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from orgsync.local.servers.writes import WriteWatchers, written_tables

__all__ = [
    "QueueWaitSeconds",
    "SerializedApplication",
    "ORIGIN_HEADER",
    "WsgiApplication",
    "call_wsgi",
]

WsgiApplication = Callable[[dict[str, Any], Any], Iterable[bytes]]
# The queue's ReceiveMessageWaitTimeSeconds, by queue URL and region (None: unknown): the wait of
# a receive that names none. moto's queue URLs carry no region; the request's signature does.
QueueWaitSeconds = Callable[[str, str | None], int]

# A request header naming who sent it, for the store's CPU accounts (`cpu_seconds`) only: a
# benchmark's writers and probe apart from the pipeline (requests that name none count as "").
ORIGIN_HEADER: Final = "X-Orgsync-Origin"
_ORIGIN_ENVIRON: Final = "HTTP_X_ORGSYNC_ORIGIN"
# A waiting long poll looks again this often for messages the clock made visible (a visibility
# timeout that ran out): the longest such a message waits for a receiver that is waiting.
RECHECK_SECONDS: Final = 0.25
_MAX_WAIT_SECONDS: Final = 20
_JSON_RECEIVE_TARGET: Final = "AmazonSQS.ReceiveMessage"
_DYNAMODB_TARGET_PREFIX: Final = "DynamoDB_20120810."
# Requests that cannot make a message receivable: they wake no waiting long poll.
_QUIET_TARGET_PREFIXES: Final = (
    "DynamoDB",
    "AmazonSQS.Get",
    "AmazonSQS.List",
    _JSON_RECEIVE_TARGET,
)
_CREDENTIAL_SCOPE: Final = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/")


class SerializedApplication:
    """Runs moto's WSGI app for one request at a time; see the module docstring."""

    # moto's backends are process-global, so one lock serves every moto server of the process.
    _lock: Final = threading.Lock()
    _changed: Final = threading.Condition(_lock)
    # Bumped by `interrupt`: a long poll that began before the bump of its queue answers now.
    _interrupts: Final[dict[str, int]] = {}
    # Told of every accepted DynamoDB write, by table (a pipe woken by its table's writes).
    writes: Final = WriteWatchers()
    # CPU seconds moto spent on requests, by their ORIGIN_HEADER ("" when they name none).
    _cpu_seconds: Final[dict[str, float]] = {}

    def __init__(
        self,
        application: WsgiApplication,
        *,
        queue_wait_seconds: QueueWaitSeconds = lambda queue_url, region: 0,
    ) -> None:
        self._application = application
        self._queue_wait_seconds = queue_wait_seconds

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        receive = _LongPoll.of(environ)
        if receive is None:
            response = self._call_locked(environ)
        else:
            response = self._long_poll(environ, receive)
        start_response(response.status, response.headers)
        return [response.body]

    @classmethod
    def cpu_seconds(cls) -> dict[str, float]:
        """CPU seconds spent inside moto so far, by the requests' origin (ORIGIN_HEADER).

        What `orgsync bench` divides by changes: the store's own cost, without the client's.
        """
        with cls._lock:
            return dict(cls._cpu_seconds)

    @classmethod
    def interrupt(cls, queue_url: str) -> None:
        """End every long poll now waiting on this queue with what it has (often nothing).

        For a poller that must pause or stop now: its receive may be waiting up to 20 s.
        """
        name = _queue_name(queue_url)
        with cls._changed:
            cls._interrupts[name] = cls._interrupts.get(name, 0) + 1
            cls._changed.notify_all()

    def _long_poll(self, environ: dict[str, Any], receive: _LongPoll) -> _Response:
        name = _queue_name(receive.queue_url)
        with self._changed:
            wait = receive.wait_seconds
            if wait is None:
                wait = self._queue_wait_seconds(receive.queue_url, _region_of(environ))
            interrupts = self._interrupts.get(name, 0)
            deadline = time.monotonic() + wait
            while True:
                response = self._call_app(receive.short_poll(environ))
                remaining = deadline - time.monotonic()
                if response.has_messages or not response.ok or remaining <= 0:
                    return response
                if self._interrupts.get(name, 0) != interrupts:
                    return response
                self._changed.wait(min(remaining, RECHECK_SECONDS))

    def _call_locked(self, environ: dict[str, Any]) -> _Response:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        watched = bool(self.writes) and target.startswith(_DYNAMODB_TARGET_PREFIX)
        body = _buffer_body(environ) if watched else b""
        with self._changed:
            response = self._call_app(environ)
            if not target.startswith(_QUIET_TARGET_PREFIXES):
                self._changed.notify_all()
        if watched and response.ok:
            self.writes.written(written_tables(target, body))
        return response

    def _call_app(self, environ: dict[str, Any]) -> _Response:
        """One request through moto; the caller holds the lock."""
        began = time.thread_time()  # this thread's CPU: the lock keeps the others out of moto
        status, headers, body = call_wsgi(self._application, environ)
        origin = str(environ.get(_ORIGIN_ENVIRON, ""))
        self._cpu_seconds[origin] = self._cpu_seconds.get(origin, 0.0) + (
            time.thread_time() - began
        )
        return _Response(status, headers, body)


def call_wsgi(
    application: WsgiApplication, environ: dict[str, Any]
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run a WSGI app to its end: its status, headers and whole body."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    written: list[bytes] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], None]:
        started[:] = [(status, headers)]
        return written.append

    result = application(environ, start_response)
    try:
        written.extend(result)  # the app may produce lazily: finish it here
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started[0]
    return status, headers, b"".join(written)


def _queue_name(queue_url: str) -> str:
    # Queue URLs differ by host and scheme from client to client; the path ends in the name.
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class _Response:
    status: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def ok(self) -> bool:
        return self.status.startswith("200")

    @property
    def has_messages(self) -> bool:
        if self.body.lstrip().startswith(b"{"):
            try:
                return bool(json.loads(self.body).get("Messages"))
            except (ValueError, AttributeError):
                return True  # not ours to judge: hand it to the client as it is
        return b"<Message>" in self.body


@dataclass(frozen=True)
class _LongPoll:
    """A ReceiveMessage that may wait, in either of SQS's protocols (JSON or query)."""

    wait_seconds: int | None  # None: the queue's ReceiveMessageWaitTimeSeconds
    queue_url: str
    json_body: dict[str, Any] | None  # the JSON protocol's request, else the query's parameters
    parameters: list[tuple[str, str]]

    @classmethod
    def of(cls, environ: dict[str, Any]) -> _LongPoll | None:
        """The receive's wait, or None for any request that never waits (run it as it is)."""
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        query = str(environ.get("QUERY_STRING", ""))
        form = "x-www-form-urlencoded" in str(environ.get("CONTENT_TYPE", ""))
        if target == _JSON_RECEIVE_TARGET:
            try:
                request = json.loads(_buffer_body(environ) or b"{}")
            except ValueError:
                return None  # moto answers the error
            if not isinstance(request, dict):
                return None
            wait = _wait_of(request.get("WaitTimeSeconds"))
            if wait == 0:
                return None
            return cls(wait, str(request.get("QueueUrl", "")), request, [])
        if target or ("Action=ReceiveMessage" not in query and not form):
            return None
        body = _buffer_body(environ).decode(errors="replace")
        parameters = urllib.parse.parse_qsl(body, keep_blank_values=True)
        every = dict(urllib.parse.parse_qsl(query, keep_blank_values=True)) | dict(parameters)
        if every.get("Action") != "ReceiveMessage":
            return None
        wait = _wait_of(every.get("WaitTimeSeconds"))
        if wait == 0:
            return None
        queue_url = every.get("QueueUrl") or str(environ.get("PATH_INFO", ""))
        return cls(wait, queue_url, None, parameters)

    def short_poll(self, environ: dict[str, Any]) -> dict[str, Any]:
        """A copy of the request asking moto not to wait."""
        short = dict(environ)
        if self.json_body is not None:
            body = json.dumps(self.json_body | {"WaitTimeSeconds": 0}).encode()
        else:
            no_wait = [("WaitTimeSeconds", "0")]
            query = _without_wait(
                urllib.parse.parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
            )
            parameters = _without_wait(self.parameters)
            if parameters:  # a form POST: the body carries the parameters
                parameters += no_wait
            else:  # a GET: the query string does
                query += no_wait
            body = urllib.parse.urlencode(parameters).encode()
            short["QUERY_STRING"] = urllib.parse.urlencode(query)
        short["wsgi.input"] = io.BytesIO(body)
        short["CONTENT_LENGTH"] = str(len(body))
        return short


def _without_wait(parameters: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in parameters if name != "WaitTimeSeconds"]


def _wait_of(value: object) -> int | None:
    """None when absent (the queue decides); 0 when invalid, so that moto answers the error.

    Read as moto reads it, `int(value)`: a JSON 1.5 or true is a wait of 1 s there, and must be
    one here too, or moto would do the waiting itself, under the lock.
    """
    if value is None:
        return None
    try:
        wait = int(value) if isinstance(value, int | float | str) else 0
    except ValueError:
        return 0
    return wait if 0 <= wait <= _MAX_WAIT_SECONDS else 0


def _region_of(environ: dict[str, Any]) -> str | None:
    """The region of the request's SigV4 credential scope (`Credential=KEY/DATE/REGION/sqs/…`)."""
    match = _CREDENTIAL_SCOPE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    return match.group(1) if match else None


def _buffer_body(environ: dict[str, Any]) -> bytes:
    # Read the request body and put it back, so the application still finds it.
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body: bytes = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body
