"""Two fixes to moto's in-memory DynamoDB that the embedded store applies to itself (local only).

1. `TransactWriteItems` deep-copies the target table once per *action* so it can roll back: a
   batch of ten users (~34 actions) copied the organizations table 34 times, which made commits
   take seconds as the table grew. One snapshot per table per transaction rolls back the same.
2. moto registers every model instance it ever creates (`instances_tracked`, for its web
   dashboard), including each item of each of those snapshots, so memory only grows: over 1 GB
   after a two-minute benchmark. orgsync never uses the dashboard, so nothing is tracked.

Both are safe only because the embedded server applies one DynamoDB request at a time
(`SerializedApplication`): the snapshot memo is swapped in for the duration of one call.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

_installed = False
_install_lock = threading.Lock()


class _Untracked(list[Any]):
    """A list that forgets what is appended: moto's instance registry, switched off."""

    def append(self, _instance: Any) -> None:
        return None


def apply_moto_tuning() -> None:
    """Install both fixes once per process; later calls do nothing."""
    global _installed  # noqa: PLW0603 - a process-wide, install-once switch
    with _install_lock:
        if _installed:
            return
        from moto.core.model_instances import model_data  # noqa: PLC0415 - moto only here
        from moto.dynamodb import models as dynamodb_models  # noqa: PLC0415

        for models in model_data.values():
            for model in models.values():
                model.instances_tracked = _Untracked()  # type: ignore[attr-defined]
        backend = dynamodb_models.DynamoDBBackend
        backend.transact_write_items = _snapshot_each_table_once(  # type: ignore[method-assign,assignment]
            backend.transact_write_items, dynamodb_models
        )
        _installed = True


def _snapshot_each_table_once(
    transact_write_items: Callable[[Any, list[dict[str, Any]]], None], module: Any
) -> Callable[[Any, list[dict[str, Any]]], None]:
    from moto.dynamodb.models.table import Table  # noqa: PLC0415

    def transact_once(self: Any, transact_items: list[dict[str, Any]]) -> None:
        snapshots: dict[int, Any] = {}

        def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
            if isinstance(value, Table):
                if id(value) not in snapshots:
                    snapshots[id(value)] = copy.deepcopy(value, memo)
                return snapshots[id(value)]
            return copy.deepcopy(value, memo)

        # moto's method reads the module global `copy`; give it a memoising deepcopy.
        module.copy = SimpleNamespace(deepcopy=deepcopy, copy=copy.copy)
        try:
            transact_write_items(self, transact_items)
        finally:
            module.copy = copy

    return transact_once
