"""Unit tests run without any network: a socket the test's own thread opens fails the test
(`no_network`: other threads of an xdist worker keep theirs)."""

from __future__ import annotations

import importlib

import pytest
from no_network import block_sockets_of_this_thread

# urllib3 opens (and closes) an IPv6 socket at import to learn whether the host has IPv6;
# imported here, before any test blocks sockets, it does not count as a test's network use.
importlib.import_module("urllib3")


@pytest.fixture(autouse=True)
def _no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    block_sockets_of_this_thread(monkeypatch)
