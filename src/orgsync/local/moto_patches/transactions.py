"""moto's `TransactWriteItems` rolled back by an undo log instead of whole-table copies.

moto deep-copies every target table once per *action* so it can roll back by swapping the
copies in: ~24 µs per item of the table, so a commit into an organizations table of 3,000 items
took 72 ms (a PutItem: 2.7 ms) and grew with the table. Instead, the items the transaction
targets are saved before it runs and put back if it fails, with any stream records it emitted:
the same all-or-nothing outcome at a cost that does not grow with the table.

Safe only because the embedded server applies one request at a time (`SerializedApplication`):
moto's module-global `copy` is swapped for the duration of one call. Class-level patches
survive `POST /moto-api/reset` (which builds new backends of the same classes).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from orgsync.local.moto_patches import scans

_MARK = "__orgsync_undo_log__"

REQUIRED = (
    "moto.dynamodb.models:copy",
    "moto.dynamodb.models:DynamoDBBackend.transact_write_items",
    "moto.dynamodb.models:DynamoDBBackend.get_table",
    "moto.dynamodb.models:DynamoDBBackend.get_keys_value",
    "moto.dynamodb.models.table:Table",
    "moto.dynamodb.models.table:StreamShard",
)


def apply() -> None:
    """Wrap `DynamoDBBackend.transact_write_items` once (a second call finds it wrapped)."""
    from moto.dynamodb import models as dynamodb_models  # noqa: PLC0415 - moto only here

    backend = dynamodb_models.DynamoDBBackend
    if getattr(backend.transact_write_items, _MARK, False):
        return
    backend.transact_write_items = _rolled_back_by_undo_log(  # type: ignore[method-assign,assignment]
        backend.transact_write_items, dynamodb_models
    )


def _rolled_back_by_undo_log(
    transact_write_items: Callable[[Any, list[dict[str, Any]]], None], module: Any
) -> Callable[[Any, list[dict[str, Any]]], None]:
    from moto.dynamodb.models.table import Table  # noqa: PLC0415

    def no_table_copies(value: Any, memo: dict[int, Any] | None = None) -> Any:
        # moto "backs up" each table with deepcopy and swaps the backup in on failure; handing
        # back the table itself makes that swap a no-op, and the undo log does the rollback.
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def transact_with_undo_log(self: Any, transact_items: list[dict[str, Any]]) -> None:
        undo = [saved for item in transact_items if (saved := _save_target(self, item))]
        module.copy = SimpleNamespace(deepcopy=no_table_copies, copy=copy.copy)
        try:
            transact_write_items(self, transact_items)
        except BaseException:
            for saved in reversed(undo):
                saved.restore()
            raise
        finally:
            module.copy = copy

    setattr(transact_with_undo_log, _MARK, True)
    return transact_with_undo_log


class _SavedItem:
    """One transaction target as it was before the transaction: the item (a copy) or absence."""

    def __init__(self, table: Any, hash_value: Any, range_value: Any) -> None:
        self.table = table
        self.hash_value = hash_value
        self.range_value = range_value
        current = _stored_item(table, hash_value, range_value)
        # UpdateItem changes the stored item in place: keep a copy, not a reference.
        self.item = copy.deepcopy(current) if current is not None else None
        shard = table.stream_shard
        self.stream_length = len(shard.items) if shard is not None else 0

    def restore(self) -> None:
        items = self.table.items
        if self.range_value is not None:
            if self.item is None:
                ranges = items.get(self.hash_value, {})
                ranges.pop(self.range_value, None)
                if not ranges:
                    items.pop(self.hash_value, None)
            else:
                items[self.hash_value][self.range_value] = self.item
        elif self.item is None:
            items.pop(self.hash_value, None)
        else:
            items[self.hash_value] = self.item
        # Written straight into moto's dict, past put_item and delete_item: tell the scan order.
        scans.key_changed(self.table, self.hash_value, self.range_value)
        shard = self.table.stream_shard
        if shard is not None:
            del shard.items[self.stream_length :]  # a failed transaction emitted nothing


def _stored_item(table: Any, hash_value: Any, range_value: Any) -> Any:
    # Not table.get_item: on a hash+range table its lookup leaves an empty entry behind.
    stored = table.items.get(hash_value)
    if range_value is None or stored is None:
        return stored
    return stored.get(range_value)


def _save_target(backend: Any, transact_item: dict[str, Any]) -> _SavedItem | None:
    """The action's target item saved for rollback; None when moto will reject the action
    (unknown table, malformed key or number) and so change nothing for it. An attribute moto
    no longer has propagates: a rollback that silently saves nothing is worse."""
    try:
        (operation, request), *_ = transact_item.items()
        table = backend.get_table(request["TableName"])  # a name or an ARN, as moto takes it
        if operation == "Put":
            attributes = request["Item"]
            names = [table.hash_key_attr, table.range_key_attr]
            key = {name: attributes[name] for name in names if name is not None}
        else:
            key = request["Key"]
        hash_value, range_value = backend.get_keys_value(table, key)
        return _SavedItem(table, hash_value, range_value)
    except AttributeError:
        raise
    except Exception:  # a malformed action changes nothing; moto reports it to the client
        return None
