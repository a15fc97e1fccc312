"""moto's WSGI app applied one request at a time, SQS long polls included.

moto's backends are not thread-safe: concurrent TransactWriteItems deep-copy a table another
thread is writing ("dictionary changed size during iteration"), a transaction's condition checks
can interleave with other writes, which DynamoDB never allows, and a ReceiveMessage that runs
beside a DeleteMessage can mark a message in flight after it was deleted, which blocks its FIFO
message group for good. moto is CPU-bound under the GIL anyway, so serialising costs little.

A long poll cannot simply hold the lock while it waits: it would block the very send it waits
for. So a ReceiveMessage that may wait is run as short polls (WaitTimeSeconds 0), each under the
lock, with pauses outside it, until one returns messages or the wait is over: what a client sees
is SQS's long poll, what moto sees is one request at a time.
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

__all__ = ["QueueWaitSeconds", "SerializedApplication", "WsgiApplication"]

WsgiApplication = Callable[[dict[str, Any], Any], Iterable[bytes]]
# The queue's ReceiveMessageWaitTimeSeconds, by queue URL and region (None: unknown): the wait of
# a receive that names none. moto's queue URLs carry no region; the request's signature does.
QueueWaitSeconds = Callable[[str, str | None], int]

# Between two short polls of one long poll: the delivery delay a waiting receiver can see.
_LONG_POLL_INTERVAL_SECONDS: Final = 0.05
_MAX_WAIT_SECONDS: Final = 20
_JSON_RECEIVE_TARGET: Final = "AmazonSQS.ReceiveMessage"
_CREDENTIAL_SCOPE: Final = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/")


class SerializedApplication:
    """Runs moto's WSGI app for one request at a time; see the module docstring."""

    # moto's backends are process-global, so one lock serves every moto server of the process.
    _lock: Final = threading.Lock()

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

    def _long_poll(self, environ: dict[str, Any], receive: _LongPoll) -> _Response:
        with self._lock:
            wait = receive.wait_seconds
            if wait is None:
                wait = self._queue_wait_seconds(receive.queue_url, _region_of(environ))
        deadline = time.monotonic() + wait
        while True:
            response = self._call_locked(receive.short_poll(environ))
            if response.has_messages or not response.ok or time.monotonic() >= deadline:
                return response
            time.sleep(_LONG_POLL_INTERVAL_SECONDS)

    def _call_locked(self, environ: dict[str, Any]) -> _Response:
        started: list[tuple[str, list[tuple[str, str]]]] = []
        written: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: object = None
        ) -> Callable[[bytes], None]:
            started[:] = [(status, headers)]
            return written.append

        with self._lock:
            result = self._application(environ, start_response)
            try:
                written.extend(result)  # the app may produce lazily: finish inside the lock
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        status, headers = started[0]
        return _Response(status, headers, b"".join(written))


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
