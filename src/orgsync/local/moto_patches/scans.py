"""moto's table Scan at a cost in proportion to the page, not to the table.

On every page, moto's `Table.scan` sorts every item of the table (`all_items`), then tests each
item before the `ExclusiveStartKey` to skip it, and only then reads the page: at 250,000 items a
page of 100 items took 11.7 s (0.09 s here) and a 1 MB page 15 s (4.5 s here, nearly all of it
moto's response serializer), and four parallel segments queued behind the store's one request
lock ran past a client's read timeout (issue 11). Instead, each table
keeps its item keys in the order `all_items` sorts them (`ScanOrder`: sorted once, at the first
scan, then kept in order as items are put and deleted), the page's first item is found by
bisection, and moto's own `Table.scan` runs over the items from there: moto's code does the
walking, the segment test, the filters, the Limit, the 1 MB cut, the projection and the
LastEvaluatedKey, over moto's items in moto's order, so a page is what moto returns.

Scans of an index (`IndexName`) are left to moto (orgsync's tables have none). A scan whose
start key is not the table's key with the key's types is walked from the first item, so moto
skips (or rejects) as it does. The order's sort keys are the keys' Python values, which order
as moto's `DynamoType` keys do because `put_item` gives every key the table's key types; a table
that somehow holds another type is scanned by moto as it is.

Safe only because the embedded server applies one request at a time (`SerializedApplication`):
the table's `all_items` is shadowed for the duration of one scan. The keys change only through
`Table.put_item` and `Table.delete_item`, wrapped here, and the transaction undo log, which tells
`key_changed`; an order built from another `items` dict than the table's (a restored table) is
built again.
"""

from __future__ import annotations

import bisect
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from orgsync.local.moto_patches.guard import MotoPatchError

_MARK = "__orgsync_scan_from_start_key__"
# Where a table keeps its ScanOrder: an attribute of the table, so that it goes wherever moto
# takes the table (a backup's deep copy, a reset that spares it) and dies with it.
_ORDER = "_orgsync_scan_order"

REQUIRED = (
    "moto.dynamodb.models.table:Table.scan",
    "moto.dynamodb.models.table:Table.all_items",
    "moto.dynamodb.models.table:Table.put_item",
    "moto.dynamodb.models.table:Table.delete_item",
)
# The parameters of moto's Table.scan this patch reads.
_SCAN_PARAMETERS = ("exclusive_start_key", "index_name")

Key = tuple[Any, Any]  # (hash DynamoType, range DynamoType or None)


def apply() -> None:
    """Wrap `Table.scan`, `put_item` and `delete_item` once (a second call finds them wrapped)."""
    from moto.dynamodb.models.table import Table  # noqa: PLC0415 - moto only when it serves

    if getattr(Table.scan, _MARK, False):
        return
    signature = inspect.signature(Table.scan)
    missing = [name for name in _SCAN_PARAMETERS if name not in signature.parameters]
    if missing:
        raise MotoPatchError(
            "moto's Table.scan lacks the parameters orgsync's scan patch reads: "
            + ", ".join(missing)
        )
    Table.scan = _scanning_from_start_key(Table.scan, signature)  # type: ignore[method-assign]
    Table.put_item = _keeping_order_on_put(Table.put_item)  # type: ignore[method-assign]
    Table.delete_item = _keeping_order_on_delete(Table.delete_item)  # type: ignore[method-assign]


def key_changed(table: Any, hash_value: Any, range_value: Any) -> None:
    """The item of this key was put or removed behind moto's back: bring the order up to date."""
    order: ScanOrder | None = vars(table).get(_ORDER)
    if order is not None and not order.sync(hash_value, range_value):
        del vars(table)[_ORDER]  # built again at the next scan


class ScanOrder:
    """A table's item keys in the order moto's `Table.all_items` sorts its items.

    Two parallel lists: the keys as moto's dict holds them (to look the items up) and their
    Python values (`cast_value`), which sort and bisect at C speed.
    """

    def __init__(self, table: Any, keys: list[Key], sort_keys: list[tuple[Any, ...]]) -> None:
        self.items = table.items  # the dict the order describes
        self._hash_attribute: str = table.hash_key_attr
        self._hash_type: str = table.hash_key_type
        self._range_attribute: str | None = table.range_key_attr
        self._range_type: str | None = table.range_key_type if table.has_range_key else None
        self._keys = keys
        self._sort_keys = sort_keys

    @classmethod
    def of(cls, table: Any) -> ScanOrder | None:
        """The table's order, sorted now; None when its keys are not all of the key's types."""
        order = cls(table, [], [])
        keys: list[Key] = []
        for hash_value, stored in table.items.items():
            if order._range_type is None:
                keys.append((hash_value, None))
            else:
                keys.extend((hash_value, range_value) for range_value in stored)
        entries: list[tuple[tuple[Any, ...], Key]] = []
        for key in keys:
            sort_key = order._sort_key(*key)
            if sort_key is None:
                return None
            entries.append((sort_key, key))
        try:
            entries.sort(key=lambda entry: entry[0])
        except TypeError:  # values Python cannot order: let moto sort them as it does
            return None
        order._sort_keys = [sort_key for sort_key, _ in entries]
        order._keys = [key for _, key in entries]
        return order

    def start_of(self, exclusive_start_key: Any) -> int:
        """Where the page after this key starts (0 for a key that is not the table's key, which
        moto then skips to, or refuses, on its own)."""
        if exclusive_start_key is None:
            return 0
        from moto.dynamodb.models.dynamo_type import DynamoType  # noqa: PLC0415

        try:
            hash_value = DynamoType(exclusive_start_key[self._hash_attribute])
            range_value = (
                DynamoType(exclusive_start_key[self._range_attribute])
                if self._range_attribute is not None
                else None
            )
            sort_key = self._sort_key(hash_value, range_value)
        except Exception:  # malformed: moto answers it
            return 0
        if sort_key is None:
            return 0
        # moto skips every item at or before the start key: the first one after it.
        return bisect.bisect_right(self._sort_keys, sort_key)

    def walk(self, start: int) -> Iterator[Any]:
        """The items from `start` on, read as moto's scan reads them: one at a time."""
        keys = self._keys
        for index in range(start, len(keys)):
            item = self._stored(*keys[index])
            if item is not None:
                yield item

    def sync(self, hash_value: Any, range_value: Any) -> bool:
        """Make the key's place match the table (present or not); False if the order cannot."""
        if self._range_type is not None and range_value is None:
            return False  # a whole hash key's items, gone at once
        sort_key = self._sort_key(hash_value, range_value)
        if sort_key is None:
            return False
        index = bisect.bisect_left(self._sort_keys, sort_key)
        listed = index < len(self._sort_keys) and self._sort_keys[index] == sort_key
        present = self._stored(hash_value, range_value) is not None
        if present and not listed:
            self._sort_keys.insert(index, sort_key)
            self._keys.insert(index, (hash_value, range_value))
        elif listed and not present:
            del self._sort_keys[index]
            del self._keys[index]
        return True

    def __len__(self) -> int:
        return len(self._keys)

    def _sort_key(self, hash_value: Any, range_value: Any) -> tuple[Any, ...] | None:
        if hash_value.type != self._hash_type:
            return None
        if self._range_type is None:
            return (hash_value.cast_value,)
        if range_value is None or range_value.type != self._range_type:
            return None
        return (hash_value.cast_value, range_value.cast_value)

    def _stored(self, hash_value: Any, range_value: Any) -> Any:
        # `.get`, not indexing: moto's `items` is a defaultdict, and a lookup must not add keys.
        stored = self.items.get(hash_value)
        if self._range_type is None or stored is None:
            return stored
        return stored.get(range_value)


def _order_of(table: Any) -> ScanOrder | None:
    order: ScanOrder | None = vars(table).get(_ORDER)
    if order is None or order.items is not table.items:
        order = ScanOrder.of(table)
        if order is None:
            vars(table).pop(_ORDER, None)
            return None
        vars(table)[_ORDER] = order
    return order


def _scanning_from_start_key(
    scan: Callable[..., Any], signature: inspect.Signature
) -> Callable[..., Any]:
    @functools.wraps(scan)
    def scan_from_start_key(self: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, *args, **kwargs).arguments
        if arguments.get("index_name"):
            return scan(self, *args, **kwargs)
        order = _order_of(self)
        if order is None:
            return scan(self, *args, **kwargs)
        start = order.start_of(arguments.get("exclusive_start_key"))
        # moto's scan reads `self.all_items()`: the table's items in order, from `start` on.
        vars(self)["all_items"] = functools.partial(order.walk, start)
        try:
            return scan(self, *args, **kwargs)
        finally:
            del vars(self)["all_items"]

    setattr(scan_from_start_key, _MARK, True)
    return scan_from_start_key


def _keeping_order_on_put(put_item: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(put_item)
    def put_item_in_order(self: Any, *args: Any, **kwargs: Any) -> Any:
        item = put_item(self, *args, **kwargs)
        key_changed(self, item.hash_key, item.range_key)
        return item

    return put_item_in_order


def _keeping_order_on_delete(delete_item: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(delete_item)
    def delete_item_in_order(self: Any, hash_key: Any, range_key: Any) -> Any:
        item = delete_item(self, hash_key, range_key)
        if item is not None:
            key_changed(self, hash_key, range_key)
        return item

    return delete_item_in_order
