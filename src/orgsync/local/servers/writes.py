"""Which tables a DynamoDB request writes: for waking a pipe the moment its table changes.

Pipes poll a stream about four times a second, and `local up` keeps that pace. A test loop wants
a write visible as soon as possible, so the store tells whoever watches (the stack's pipes)
which tables each accepted write touched. Standard library only; reads the JSON request body.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final

__all__ = ["WriteWatchers", "written_tables"]

_PREFIX: Final = "DynamoDB_20120810."
_SINGLE_ITEM_WRITES: Final = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
_PARTIQL_WRITES: Final = frozenset(
    {"ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"}
)
# A PartiQL request names its table inside a statement: every watcher is told, to be safe.
ANY_TABLE: Final = "*"


def written_tables(target: str, body: bytes) -> frozenset[str]:
    """The tables a request with this X-Amz-Target and body may write (empty: none)."""
    if not target.startswith(_PREFIX):
        return frozenset()
    operation = target[len(_PREFIX) :]
    if operation in _PARTIQL_WRITES:
        return frozenset({ANY_TABLE})
    if operation not in _SINGLE_ITEM_WRITES and operation not in {
        "BatchWriteItem",
        "TransactWriteItems",
    }:
        return frozenset()
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return frozenset()
    if not isinstance(request, dict):
        return frozenset()
    if operation in _SINGLE_ITEM_WRITES:
        return frozenset({str(request.get("TableName", ""))})
    if operation == "BatchWriteItem":
        return frozenset(str(name) for name in (request.get("RequestItems") or {}))
    return frozenset(_transaction_tables(request.get("TransactItems") or []))


def _transaction_tables(items: Iterable[Any]) -> Iterable[str]:
    for item in items:
        if isinstance(item, dict):
            for action in item.values():
                if isinstance(action, dict) and "TableName" in action:
                    yield str(action["TableName"])


class WriteWatchers:
    """Callbacks by table name, told of each accepted write (thread-safe; cheap when empty)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watchers: dict[str, list[Callable[[], None]]] = {}

    def __bool__(self) -> bool:
        return bool(self._watchers)

    def watch(self, tables: Iterable[str], callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` after every write to one of `tables`; returns the undo."""
        names = list(tables)
        with self._lock:
            for name in names:
                self._watchers.setdefault(name, []).append(callback)

        def unwatch() -> None:
            with self._lock:
                for name in names:
                    callbacks = self._watchers.get(name, [])
                    if callback in callbacks:
                        callbacks.remove(callback)
                    if not callbacks:
                        self._watchers.pop(name, None)

        return unwatch

    def written(self, tables: Iterable[str]) -> None:
        with self._lock:
            names = set(tables)
            if ANY_TABLE in names:
                names = set(self._watchers)
            callbacks = {id(c): c for name in names for c in self._watchers.get(name, [])}
        for callback in callbacks.values():
            callback()
