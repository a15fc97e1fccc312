"""boto3 clients of the stack's endpoint: one per service, cached, shared by pipe, poller and tests.

Against the embedded store any key pair works; against an external endpoint (which may be
AWS) the real credential chain is used when there is one.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import boto3
from botocore.config import Config

_DUMMY_CREDENTIALS: Final[Mapping[str, str]] = MappingProxyType(
    {"aws_access_key_id": "orgsynclocal", "aws_secret_access_key": "orgsynclocal"}
)


class StackClients:
    """Clients for one endpoint and region (boto3 clients are thread-safe once built)."""

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
        self._concurrency = concurrency
        self._external = external
        self._clients: dict[str, Any] = {}

    def client(self, service_name: str) -> Any:
        """A boto3 client for the endpoint (built on first use, then cached)."""
        if service_name not in self._clients:
            credentials: Mapping[str, str] = _DUMMY_CREDENTIALS
            if self._external and boto3.session.Session().get_credentials():
                credentials = {}  # an external endpoint may be AWS: use the real chain
            self._clients[service_name] = boto3.session.Session().client(
                service_name,  # type: ignore[call-overload]
                endpoint_url=self._endpoint_url,
                region_name=self._region,
                config=Config(
                    max_pool_connections=self._concurrency + 10,
                    retries={"mode": "standard", "max_attempts": 5},
                ),
                **credentials,
            )
        return self._clients[service_name]
