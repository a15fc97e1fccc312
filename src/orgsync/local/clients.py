"""boto3 clients of the stack's endpoint: one per service, cached, shared by pipe, poller and tests.

All of them come from one boto3 session: a session's botocore loader reads each service model,
the endpoint rules and the partitions once, where a new session per client read them all again
(six clients from six sessions took 1.03 s, from one 0.18 s). Sessions are not thread-safe while
they build clients, so clients are built under a lock; the clients themselves are thread-safe.

Against the embedded store any key pair works; against an external endpoint (which may be
AWS) the real credential chain is used when there is one.
"""

from __future__ import annotations

import threading
from typing import Any, Final

import boto3
from botocore.config import Config

# Any key pair works against the embedded store, but botocore refuses to sign without one.
_DUMMY_KEY: Final = "orgsynclocal"


class StackClients:
    """Clients for one endpoint and region, from one session built on first use."""

    def __init__(
        self,
        endpoint_url: str,
        *,
        region: str,
        concurrency: int,
        external: bool,
    ) -> None:
        self._endpoint_url = endpoint_url
        self._region = region
        self._external = external
        self._config = Config(
            max_pool_connections=concurrency + 10,
            retries={"mode": "standard", "max_attempts": 5},
        )
        self._lock = threading.Lock()
        self._session: boto3.session.Session | None = None
        self._clients: dict[str, Any] = {}

    def client(self, service_name: str) -> Any:
        """A boto3 client for the endpoint (built on first use, then cached)."""
        client = self._clients.get(service_name)
        if client is not None:
            return client
        with self._lock:
            if service_name not in self._clients:
                session = self._shared_session()
                # A str, not one of the stubs' literal service names: `Any` for every caller.
                self._clients[service_name] = session.client(  # type: ignore[call-overload]
                    service_name, endpoint_url=self._endpoint_url, config=self._config
                )
            return self._clients[service_name]

    def _shared_session(self) -> boto3.session.Session:
        """The one session of these clients (lock held): the credential chain is read once."""
        if self._session is None:
            self._session = _new_session(self._region, external=self._external)
        return self._session


def _new_session(region: str, *, external: bool) -> boto3.session.Session:
    if external:
        session = boto3.session.Session(region_name=region)
        if session.get_credentials() is not None:
            return session  # an external endpoint may be AWS: use the real chain
    return boto3.session.Session(
        aws_access_key_id=_DUMMY_KEY, aws_secret_access_key=_DUMMY_KEY, region_name=region
    )
