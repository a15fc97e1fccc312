"""The unit suite really has no network: the first socket a test opens fails it, while other
threads of the process (servers of integration tests sharing an xdist worker) keep theirs."""

from __future__ import annotations

import socket
import threading

import pytest
from no_network import SocketBlockedError


def test_opening_a_socket_in_a_unit_test_fails():
    with pytest.raises(SocketBlockedError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(SocketBlockedError):
        socket.getaddrinfo("localhost", 80)


def test_a_background_thread_of_the_process_keeps_its_sockets():
    opened: list[bool] = []

    def open_one() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            opened.append(probe.fileno() >= 0)

    thread = threading.Thread(target=open_one)
    thread.start()
    thread.join(5)
    assert opened == [True]
