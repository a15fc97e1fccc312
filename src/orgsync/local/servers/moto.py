"""moto's server in a thread of this process: DynamoDB, Streams and SQS in memory.

The only server module that imports moto (its WSGI app, at start); the patches moto needs are
applied through `orgsync.local.moto_patches`, the one door to moto's internals.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from orgsync.local import moto_patches
from orgsync.local.errors import EmulatorStartError
from orgsync.local.servers.ports import HOST, ensure_port_free, wait_until_answering
from orgsync.local.servers.serialized import SerializedApplication, WsgiApplication

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

logger = logging.getLogger(__name__)


class MotoStore:
    """moto's server in a thread of this process: DynamoDB, Streams, SQS (and more) in memory.

    moto keeps no state on disk, so `--state-dir` has no effect with this store. All moto servers
    of one process share one set of backends (moto's state is process-global). Requests are
    applied one at a time (see `SerializedApplication`).
    """

    def __init__(self, *, port: int = 0, host: str = HOST) -> None:
        self._requested_port = port
        self._host = host
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._kept: list[moto_patches.Kept] = []
        self._application: SerializedApplication | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise EmulatorStartError("moto server is not running")
        return int(self._server.server_address[1])

    @property
    def endpoint_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def in_process_application(self, service_name: str) -> WsgiApplication | None:
        """The app the HTTP server runs, for this process's own clients (any service)."""
        del service_name
        return self._application

    def watch_writes(
        self, tables: Iterable[str], callback: Callable[[], None]
    ) -> Callable[[], None]:
        """Call `callback` after each write this store accepts to one of `tables`; the undo."""
        return SerializedApplication.writes.watch(tables, callback)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds moto spent on requests so far, by origin (ORIGIN_HEADER)."""
        return SerializedApplication.cpu_seconds()

    def interrupt_receive(self, queue_url: str) -> None:
        """End the long polls waiting on this queue now (a poller pausing or stopping)."""
        SerializedApplication.interrupt(queue_url)

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 - heavy, only when used
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server  # noqa: PLC0415

        # werkzeug logs every request at INFO: one line per API call would drown the console.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        moto_patches.apply()
        application = SerializedApplication(
            DomainDispatcherApplication(create_backend_app),
            queue_wait_seconds=moto_patches.queue_wait_seconds,
        )
        self._application = application
        ensure_port_free(self._host, self._requested_port)
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
        wait_until_answering(self.port, timeout=10, what="moto server")
        logger.info("moto server listening on %s", self.endpoint_url)

    def keep_on_reset(
        self, *, account_id: str, region: str, tables: Iterable[str], queues: Iterable[str]
    ) -> None:
        """Make `POST /moto-api/reset` spare these resources while this store serves.

        moto's state is this process's, so the names go straight to `moto_patches.reset`.
        """
        self._kept.append(
            moto_patches.keep_on_reset(account_id, region, tables=tables, queues=queues)
        )

    def stop(self) -> None:
        kept, self._kept = self._kept, []
        for names in kept:
            moto_patches.forget_on_reset(names)
        self._application = None
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
