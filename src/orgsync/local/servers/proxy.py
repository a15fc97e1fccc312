"""The reverse proxy in front of the embedded servers: routes by X-Amz-Target (DynamoDB Local or
moto) and may answer a request itself (fault injection).
Standard library only: no boto3, no moto import, nothing from orgsync.local.servers.moto.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from orgsync.local.errors import EmulatorStartError

__all__ = ["Interceptor", "ProxyAnswer", "RoutingProxy"]

logger = logging.getLogger(__name__)

_HOST: Final = "127.0.0.1"
# X-Amz-Target prefixes of the JSON APIs DynamoDB Local serves; everything else goes to moto.
_DYNAMODB_TARGETS: Final = ("DynamoDB_20120810.", "DynamoDBStreams_20120810.")
_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


# --------------------------------------------------------------------------- routing proxy


@dataclass(frozen=True)
class ProxyAnswer:
    """A response the proxy sends itself instead of relaying the request (fault injection)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


# Sees each request's X-Amz-Target and body; returns an answer to send instead, or None to relay.
Interceptor = Callable[[str, bytes], ProxyAnswer | None]
# Told of each request relayed upstream, after its answer went back: target, body, status.
Relayed = Callable[[str, bytes, int], None]


class RoutingProxy:
    """One HTTP endpoint in front of two servers: DynamoDB/Streams JSON calls to one, all else
    to the other. Keeps upstream connections alive per proxy thread; relays bodies as they come.
    `intercept` may answer a request itself (orgsync.local.chaos injects AWS errors this way)."""

    def __init__(
        self,
        *,
        port: int,
        dynamodb_port: int,
        default_port: int,
        intercept: Interceptor | None = None,
        on_relayed: Relayed | None = None,
    ) -> None:
        self._requested_port = port
        self._dynamodb_port = dynamodb_port
        self._default_port = default_port
        self._intercept = intercept
        self._on_relayed = on_relayed
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise EmulatorStartError("the routing proxy is not running")
        return int(self._server.server_address[1])

    @property
    def endpoint_url(self) -> str:
        return f"http://{_HOST}:{self.port}"

    def start(self) -> None:
        handler = _make_proxy_handler(
            self._dynamodb_port, self._default_port, self._intercept, self._on_relayed
        )
        try:
            server = _QuietServer((_HOST, self._requested_port), handler)
        except OSError as exc:
            raise EmulatorStartError(f"cannot bind port {self._requested_port}: {exc}") from exc
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="orgsync-proxy"
        )
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class _QuietServer(ThreadingHTTPServer):
    """A client or upstream that hangs up mid-answer is normal here (a store stopping, a client
    timing out): one log line, never socketserver's traceback on stderr."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            logger.debug("proxy: connection from %s ended: %s", client_address, error)
            return
        logger.warning("proxy: request from %s failed: %r", client_address, error)


def _unavailable(dynamodb: bool) -> ProxyAnswer:
    """An error in the AWS JSON protocol's shape, so clients report it as a ClientError."""
    store = "DynamoDB Local" if dynamodb else "the moto store"
    body = json.dumps(
        {
            "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError"
            if dynamodb
            else "InternalFailure",
            "message": f"{store} behind this endpoint is not answering (has it stopped?)",
        }
    ).encode()
    return ProxyAnswer(502, body, (("Content-Type", "application/x-amz-json-1.0"),))


def _make_proxy_handler(
    dynamodb_port: int,
    default_port: int,
    intercept: Interceptor | None = None,
    on_relayed: Relayed | None = None,
) -> type[BaseHTTPRequestHandler]:
    local = threading.local()

    def connection_to(port: int) -> http.client.HTTPConnection:
        connections: dict[int, http.client.HTTPConnection] = local.__dict__.setdefault(
            "connections", {}
        )
        if port not in connections:
            connections[port] = http.client.HTTPConnection(_HOST, port, timeout=120)
        return connections[port]

    def drop_connection(port: int) -> None:
        connections: dict[int, http.client.HTTPConnection] = local.__dict__.get("connections", {})
        connection = connections.pop(port, None)
        if connection is not None:
            connection.close()

    class ProxyHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive with the client
        # Headers and body leave in separate writes: without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK add ~40 ms to every call.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            logger.debug("proxy: " + format, *args)

        def _relay(self) -> None:
            target = self.headers.get("X-Amz-Target", "")
            port = dynamodb_port if target.startswith(_DYNAMODB_TARGETS) else default_port
            body = self._read_body()
            answer = intercept(target, body) if intercept is not None else None
            if answer is not None:
                self._send_answer(answer)
                return
            headers = {
                key: value for key, value in self.headers.items() if key.lower() not in _HOP_BY_HOP
            }
            if port == dynamodb_port and "Authorization" in headers:
                headers["Authorization"] = _plain_access_key(headers["Authorization"])
            headers["Content-Length"] = str(len(body))
            for attempt in (1, 2):
                connection = connection_to(port)
                try:
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    break
                except (http.client.HTTPException, OSError):
                    # A kept-alive upstream connection the server closed: retry once on a new one.
                    drop_connection(port)
                    if attempt == 2:
                        self._send_answer(_unavailable(port == dynamodb_port))
                        return
            self._send_response(response)
            if on_relayed is not None:
                on_relayed(target, body, response.status)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send_answer(self, answer: ProxyAnswer) -> None:
            self.send_response_only(answer.status)
            for key, value in answer.headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def _send_response(self, response: http.client.HTTPResponse) -> None:
            length = response.getheader("Content-Length")
            body: bytes | None = None
            if length is None:
                body = response.read()
                length = str(len(body))
            self.send_response_only(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", length)
            self.end_headers()
            if body is not None:
                self.wfile.write(body)
                return
            remaining = int(length)
            while remaining > 0:
                chunk = response.read(min(remaining, 65536))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)

        do_GET = _relay  # noqa: N815
        do_POST = _relay  # noqa: N815
        do_PUT = _relay  # noqa: N815
        do_DELETE = _relay  # noqa: N815
        do_HEAD = _relay  # noqa: N815

    return ProxyHandler


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


def _plain_access_key(authorization: str) -> str:
    """Give DynamoDB Local an access key id of letters and digits only.

    DynamoDB Local (2.0 and later) rejects other key ids with UnrecognizedClientException, and
    with -sharedDb the key selects nothing, so any client's dummy key (e.g. "orgsync-local")
    can be replaced. It does not verify signatures, so the rewrite breaks none.
    """
    match = _CREDENTIAL.search(authorization)
    if match is None or match.group(1).isalnum():
        return authorization
    plain = "".join(char for char in match.group(1) if char.isalnum()) or "orgsynclocal"
    return authorization[: match.start(1)] + plain + authorization[match.end(1) :]
