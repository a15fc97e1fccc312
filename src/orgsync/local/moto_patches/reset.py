"""moto's reset spares the resources the local stack runs on.

`POST /moto-api/reset` (and moto's own `mock_aws` in the server's process) throws every backend
away. Sent to a running local stack by a test suite that resets moto between tests, it would
take the template's tables, streams and queues with it, and the pipe would log `cannot read
shard` until the process ends. So a running stack names its resources (`keep`, undone by
`forget` when its store stops), and the reset puts those objects back into the fresh backends,
data and stream included: what the stack created survives, everything else is reset as moto
resets it. With nothing kept (no stack running: moto's own test suite) it resets as moto does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_MARK = "__orgsync_keeps_resources__"

REQUIRED = (
    "moto.core.base_backend:BackendDict.reset",
    "moto.dynamodb.models:dynamodb_backends",
    "moto.dynamodbstreams.models:dynamodbstreams_backends",
    "moto.sqs.models:sqs_backends",
)


@dataclass(frozen=True)
class Kept:
    """What one running stack asked a reset to spare; `forget` it when the stack stops."""

    account_id: str
    region: str
    tables: frozenset[str]
    queues: frozenset[str]


# Every stack of the process that is running now (several stacks may share one moto).
_kept: list[Kept] = []
_kept_lock = threading.Lock()


def keep(account_id: str, region: str, *, tables: Iterable[str], queues: Iterable[str]) -> Kept:
    """From now on until `forget`, resets leave these tables (with streams) and queues alone."""
    kept = Kept(account_id, region, frozenset(tables), frozenset(queues))
    with _kept_lock:
        _kept.append(kept)
    return kept


def forget(kept: Kept) -> None:
    """The stack stopped: resets no longer spare what it kept (a `keep`'s result, once)."""
    with _kept_lock:
        if kept in _kept:
            _kept.remove(kept)


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

    by_place: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
    with _kept_lock:
        for kept in _kept:
            names = by_place.setdefault((kept.account_id, kept.region), (set(), set()))
            names[0].update(kept.tables)
            names[1].update(kept.queues)
    saved: dict[tuple[str, str], _Saved] = {}
    for (account_id, region), (table_names, queue_names) in by_place.items():
        tables = {
            name: table
            for name, table in _existing(dynamodb_backends, account_id, region, "tables").items()
            if name in table_names
        }
        queues = {
            name: queue
            for name, queue in _existing(sqs_backends, account_id, region, "queues").items()
            if name in queue_names
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
