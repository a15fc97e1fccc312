"""moto's reset spares the resources the local stack runs on.

`POST /moto-api/reset` (and moto's own `mock_aws` in the server's process) throws every backend
away. Sent to a running local stack by a test suite that resets moto between tests, it would
take the template's tables, streams and queues with it, and the pipe would log `cannot read
shard` until the process ends. So the stack names its resources once (`keep`), and the reset
puts those objects back into the fresh backends, data and stream included: what the stack
created survives, everything else is reset as moto resets it. A server with nothing kept (moto's
own test suite) resets exactly as moto does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_MARK = "__orgsync_keeps_resources__"

REQUIRED = (
    "moto.core.base_backend:BackendDict.reset",
    "moto.dynamodb.models:dynamodb_backends",
    "moto.dynamodbstreams.models:dynamodbstreams_backends",
    "moto.sqs.models:sqs_backends",
)


@dataclass
class _Kept:
    tables: set[str] = field(default_factory=set)
    queues: set[str] = field(default_factory=set)


# (account id, region) → the names to keep there.
_kept: dict[tuple[str, str], _Kept] = {}
_kept_lock = threading.Lock()


def keep(account_id: str, region: str, *, tables: Iterable[str], queues: Iterable[str]) -> None:
    """From now on, resets leave these tables (with their streams) and queues as they are."""
    with _kept_lock:
        kept = _kept.setdefault((account_id, region), _Kept())
        kept.tables.update(tables)
        kept.queues.update(queues)


def apply() -> None:
    """Wrap `BackendDict.reset` once (a second call finds it wrapped)."""
    from moto.core.base_backend import BackendDict  # noqa: PLC0415 - moto only when it serves

    original = vars(BackendDict)["reset"]
    if getattr(original, _MARK, False):
        return
    reset_everything = original.__func__

    def reset_sparing_kept(cls: type[Any]) -> None:
        saved = _take_kept()
        reset_everything(cls)
        _restore(saved)

    setattr(reset_sparing_kept, _MARK, True)
    wrapped = classmethod(reset_sparing_kept)
    setattr(wrapped, _MARK, True)
    BackendDict.reset = wrapped  # type: ignore[method-assign,assignment]


@dataclass
class _Saved:
    tables: dict[str, Any]
    queues: dict[str, Any]
    iterators: dict[str, Any]


def _take_kept() -> dict[tuple[str, str], _Saved]:
    from moto.dynamodb.models import dynamodb_backends  # noqa: PLC0415
    from moto.dynamodbstreams.models import dynamodbstreams_backends  # noqa: PLC0415
    from moto.sqs.models import sqs_backends  # noqa: PLC0415

    with _kept_lock:
        kept = dict(_kept)
    saved: dict[tuple[str, str], _Saved] = {}
    for (account_id, region), names in kept.items():
        tables = {
            name: table
            for name, table in _existing(dynamodb_backends, account_id, region, "tables").items()
            if name in names.tables
        }
        queues = {
            name: queue
            for name, queue in _existing(sqs_backends, account_id, region, "queues").items()
            if name in names.queues
        }
        # Open iterators of the kept streams, so that a reader mid-shard goes on reading.
        iterators = {
            arn: iterator
            for arn, iterator in _existing(
                dynamodbstreams_backends, account_id, region, "shard_iterators"
            ).items()
            if getattr(getattr(iterator.stream_shard, "table", None), "name", None) in tables
        }
        saved[(account_id, region)] = _Saved(tables, queues, iterators)
    return saved


def _existing(backends: Any, account_id: str, region: str, attribute: str) -> dict[str, Any]:
    # Only backends that exist: indexing a BackendDict creates the backend it names, and its
    # `in` answers for every region moto knows, so ask its keys.
    if account_id not in backends or region not in backends[account_id].keys():  # noqa: SIM118
        return {}
    return dict(getattr(backends[account_id][region], attribute))


def _restore(saved: dict[tuple[str, str], _Saved]) -> None:
    from moto.dynamodb.models import dynamodb_backends  # noqa: PLC0415
    from moto.dynamodbstreams.models import dynamodbstreams_backends  # noqa: PLC0415
    from moto.sqs.models import sqs_backends  # noqa: PLC0415

    for (account_id, region), resources in saved.items():
        if resources.tables:
            dynamodb_backends[account_id][region].tables.update(resources.tables)
        if resources.iterators:
            streams = dynamodbstreams_backends[account_id][region]
            for iterator in resources.iterators.values():
                # Each iterator registers its successor with its backend: the new one now.
                iterator.streams_backend = streams
            streams.shard_iterators.update(resources.iterators)
        if resources.queues:
            sqs_backends[account_id][region].queues.update(resources.queues)
