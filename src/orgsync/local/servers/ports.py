"""Ports on 127.0.0.1 for the embedded servers: finding a free one, checking one, waiting for
a server to answer on one. Standard library only.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from typing import Final

from orgsync.local.errors import EmulatorStartError

HOST: Final = "127.0.0.1"


def find_free_port() -> int:
    """A port free on 127.0.0.1 right now (another process may still take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_answering(
    port: int, *, timeout: float, alive: threading.Event | None = None, what: str
) -> None:
    """Poll with a real HTTP request until the server answers (any status), or give up."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if alive is not None and not alive.is_set():
            raise EmulatorStartError(f"{what} exited while starting")
        connection = http.client.HTTPConnection(HOST, port, timeout=2)
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


def ensure_port_free(host: str, port: int) -> None:
    # A clear error up front (werkzeug prints its own and exits when it cannot bind).
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise EmulatorStartError(f"port {port} on {host} is already in use") from exc
