"""The embedded AWS-API-compatible store behind one local endpoint: moto, or DynamoDB Local + moto.

`moto` serves DynamoDB, Streams and SQS from a thread of this process (state in memory only).
`dynamodb-local` runs Amazon's DynamoDB Local (Java) for DynamoDB and Streams and moto for SQS,
behind a reverse proxy that routes by X-Amz-Target. Only this package (and `moto_patches`)
starts or touches moto. No boto3 here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from orgsync.local.errors import DynamoDBLocalNotFoundError, EmbeddedStackError
from orgsync.local.servers.dynamodb_local import (
    DynamoDBLocalDistribution,
    DynamoDBLocalStore,
    default_dynamodb_local_cache_dir,
    install_dynamodb_local,
    locate_dynamodb_local,
)
from orgsync.local.servers.in_process import serve_in_process
from orgsync.local.servers.moto import MotoStore
from orgsync.local.servers.ports import find_free_port
from orgsync.local.servers.serialized import ORIGIN_HEADER, SerializedApplication, WsgiApplication

__all__ = [
    "DynamoDBLocalDistribution",
    "DynamoDBLocalStore",
    "EmbeddedStore",
    "MotoStore",
    "ORIGIN_HEADER",
    "SerializedApplication",
    "StoreKind",
    "WsgiApplication",
    "default_dynamodb_local_cache_dir",
    "find_free_port",
    "install_dynamodb_local",
    "locate_dynamodb_local",
    "serve_in_process",
    "start_store",
]


class StoreKind(StrEnum):
    MOTO = "moto"
    DYNAMODB_LOCAL = "dynamodb-local"


class EmbeddedStore(Protocol):
    """A running local endpoint; `stop` releases its port and any child process."""

    @property
    def endpoint_url(self) -> str: ...

    def start(self) -> None: ...

    def keep_on_reset(
        self, *, account_id: str, region: str, tables: Iterable[str], queues: Iterable[str]
    ) -> None:
        """Make a moto reset (`POST /moto-api/reset`) spare these resources."""
        ...

    def watch_writes(
        self, tables: Iterable[str], callback: Callable[[], None]
    ) -> Callable[[], None]:
        """Call `callback` after each write the store accepts to one of `tables`; the undo."""
        ...

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds the store spent on requests so far, by origin (ORIGIN_HEADER)."""
        ...

    def interrupt_receive(self, queue_url: str) -> None:
        """End the SQS long polls now waiting on this queue (they answer what they have)."""
        ...

    def in_process_application(self, service_name: str) -> WsgiApplication | None:
        """The WSGI app serving this service in this process, if one does (`serve_in_process`)."""
        ...

    def stop(self) -> None: ...


def start_store(
    kind: StoreKind | str,
    *,
    port: int = 0,
    state_dir: Path | None = None,
    dynamodb_local_dir: Path | None = None,
) -> EmbeddedStore:
    """Start the chosen store on 127.0.0.1:`port` (0: any free port) and return it running."""
    store: EmbeddedStore
    match StoreKind(kind):
        case StoreKind.MOTO:
            if state_dir is not None:
                raise EmbeddedStackError(
                    "the moto store keeps its state in memory only, so a state directory has "
                    "no effect: use --store dynamodb-local to keep tables between runs"
                )
            store = MotoStore(port=port)
        case StoreKind.DYNAMODB_LOCAL:
            distribution = locate_dynamodb_local(dynamodb_local_dir)
            if distribution is None:
                raise DynamoDBLocalNotFoundError(
                    "DynamoDB Local not found: run `orgsync local install-dynamodb-local` "
                    "or set ORGSYNC_DYNAMODB_LOCAL_DIR"
                )
            store = DynamoDBLocalStore(distribution, port=port, state_dir=state_dir)
    store.start()
    return store
