"""A socket guard for unit tests: the test's own thread may not open a socket or resolve a name.

Blocked for the test's thread only. Under xdist a worker process also hosts integration tests'
moto servers, pipes and pollers, whose background threads must keep their sockets while a unit
test runs; pytest-socket blocks process-wide, which made those threads fail (a pipe thread dies
on the error), so this guard is ours.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest


class SocketBlockedError(RuntimeError):
    """A unit test tried to reach the network."""


def block_sockets_of_this_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until `monkeypatch` undoes it, the calling thread cannot open sockets or resolve names."""
    test_thread = threading.current_thread()
    real_socket, real_getaddrinfo = socket.socket, socket.getaddrinfo

    class ThreadGuardedSocket(real_socket):
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is test_thread:
                raise SocketBlockedError("a unit test tried to open a socket")
            return super().__new__(cls, *args, **kwargs)

    def guarded_getaddrinfo(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is test_thread:
            raise SocketBlockedError("a unit test tried to resolve a host name")
        return real_getaddrinfo(*args, **kwargs)

    monkeypatch.setattr(socket, "socket", ThreadGuardedSocket)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
