"""Unit tests run without any network: a test that opens a socket fails (pytest-socket).

Switched on per test and off after it, because xdist may run integration tests in the same
worker process afterwards.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket

# urllib3 opens (and closes) an IPv6 socket at import to learn whether the host has IPv6;
# imported here, before any test blocks sockets, it does not count as a test's network use.
importlib.import_module("urllib3")


@pytest.fixture(autouse=True)
def _no_sockets() -> Iterator[None]:
    disable_socket()
    try:
        yield
    finally:
        enable_socket()
