"""A fault-injecting endpoint in front of the store: every client of it sees the injected errors."""

from __future__ import annotations

from urllib.parse import urlsplit

from orgsync.local.chaos.faults import Chaos
from orgsync.local.chaos.spec import ChaosSpecError
from orgsync.local.servers.proxy import RoutingProxy


class ChaosProxy:
    """A fault-injecting endpoint in front of a store on 127.0.0.1: every client of it, in any
    process, sees the injected AWS errors; everything else is relayed unchanged."""

    def __init__(self, chaos: Chaos, *, upstream_url: str, port: int = 0) -> None:
        parts = urlsplit(upstream_url)
        if parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
            raise ChaosSpecError(
                f"store faults need a store on 127.0.0.1 with a port, not {upstream_url}"
            )
        self._proxy = RoutingProxy(
            port=port,
            dynamodb_port=parts.port,
            default_port=parts.port,
            intercept=chaos.intercept,
        )

    @property
    def endpoint_url(self) -> str:
        return self._proxy.endpoint_url

    def start(self) -> None:
        self._proxy.start()

    def stop(self) -> None:
        self._proxy.stop()
