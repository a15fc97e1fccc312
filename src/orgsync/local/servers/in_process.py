"""The stack's own threads reach an embedded store's app directly: no socket, no HTTP server.

When the store runs in this process, an HTTP round trip for the pipe's, the poller's and the
handler's calls buys nothing but cost: a TCP connection and a server thread per request
(werkzeug closes every connection), botocore's and werkzeug's HTTP handling, all on the GIL the
store itself needs. So botocore's `before-send` event (the hook moto's own `mock_aws` uses)
hands each signed request to the very WSGI app the HTTP server runs, `SerializedApplication`
included: one request at a time, and SQS long polls as over HTTP. Signing, retries, parsing
and errors stay botocore's own. Only a request to an endpoint served here, of a service served
here (DynamoDB Local's tables are Java's), made by a thread the stack names (its pipes and
pollers, whose threads run the handler) is taken: every other client, in this process or
another, keeps HTTP, as a user's code and the benchmark's writers do.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from orgsync.local.servers.serialized import WsgiApplication, call_wsgi

if TYPE_CHECKING:
    from botocore.awsrequest import AWSPreparedRequest, AWSResponse

__all__ = ["ApplicationFor", "RoutedThread", "serve_in_process"]

# The app serving a service (botocore's service id: "dynamodb", "sqs", "dynamodb-streams"), or
# None when that service is not served in this process.
ApplicationFor = Callable[[str], WsgiApplication | None]
# True when the current thread's requests may skip HTTP.
RoutedThread = Callable[[], bool]

# "host:port" -> the store serving it here, and which threads it serves directly
_routes: dict[str, tuple[ApplicationFor, RoutedThread]] = {}
_install_lock: Final = threading.Lock()
_installed = False


def serve_in_process(
    endpoint_url: str, application_for: ApplicationFor, *, routed_thread: RoutedThread
) -> Callable[[], None]:
    """Route the requests to `endpoint_url` that `routed_thread` allows to the store's app;
    returns the undo.

    Applies to botocore sessions created from now on (each session copies botocore's built-in
    handlers when it is made): the stack's clients and its handler's, made after the store.
    """
    _install()
    netloc = urllib.parse.urlsplit(endpoint_url).netloc
    route = (application_for, routed_thread)
    _routes[netloc] = route

    def stop_serving() -> None:
        if _routes.get(netloc) is route:
            del _routes[netloc]

    return stop_serving


def _install() -> None:
    global _installed  # noqa: PLW0603 - a process-wide, install-once switch
    with _install_lock:
        if _installed:
            return
        from botocore import handlers  # noqa: PLC0415 - only when a store is served here

        handlers.BUILTIN_HANDLERS.append(("before-send", _before_send))
        _installed = True


def _before_send(request: AWSPreparedRequest, event_name: str = "", **_: Any) -> AWSResponse | None:
    route = _routes.get(urllib.parse.urlsplit(request.url).netloc)
    if route is None:
        return None  # not ours: botocore sends it
    application_for, routed_thread = route
    if not routed_thread():
        return None
    service_id = event_name.split(".")[1] if event_name.count(".") >= 1 else ""
    application = application_for(service_id)
    if application is None:
        return None
    from botocore.awsrequest import AWSResponse  # noqa: PLC0415 - botocore is loaded by now
    from botocore.compat import HTTPHeaders  # noqa: PLC0415

    status, headers, body = call_wsgi(application, _environ(request))
    received = HTTPHeaders()
    for name, value in headers:
        received[name] = value  # an HTTPMessage adds: repeated headers stay repeated
    return AWSResponse(request.url, int(status.split(" ", 1)[0]), received, _Body(body))


def _environ(request: AWSPreparedRequest) -> dict[str, Any]:
    # moto's own way from a request's parts to a WSGI environ (its `mock_aws` path uses it).
    from moto.core.request import Request  # noqa: PLC0415 - moto is loaded: the store runs

    body = request.body
    if body is not None and not isinstance(body, str | bytes | bytearray):
        body = body.read()  # a file-like body: botocore streams it, moto wants it whole
    environ: dict[str, Any] = Request.from_primitives(
        request.method, request.url, request.headers, body
    ).environ
    return environ


class _Body:
    """The raw response botocore reads: all of it, in one chunk."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        if self._body:
            yield self._body
