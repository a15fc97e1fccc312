"""moto's DynamoDB item built in time proportional to its attributes, not to their square.

`Item.__init__` stores attributes one at a time into a `LimitedSizeDict`, whose `__setitem__`
sums the size of every attribute already stored, to refuse an item past 400 KB: an item of n
attributes costs n² size computations. That was ~1 ms per item written (a PutItem, each item of
a TransactWriteItems), the largest single cost of replication in the embedded store (issue 10).
This builds the same attributes, sums their sizes once, and refuses exactly the items moto
refuses: its check runs on every prefix of the attributes, and sizes only add up, so some
prefix is too large exactly when the whole item is. Later single-attribute writes (update
expressions) still go through moto's own check.
"""

from __future__ import annotations

from typing import Any

_MARK = "__orgsync_linear__"
# moto's own limit in LimitedSizeDict.__setitem__ (between the 409 and 410 KB it measured).
_MOTO_ITEM_SIZE_LIMIT = 405000

REQUIRED = (
    "moto.dynamodb.models.dynamo_type:Item.__init__",
    "moto.dynamodb.models.dynamo_type:LimitedSizeDict.__setitem__",
    "moto.dynamodb.models.dynamo_type:DynamoType.size",
    "moto.dynamodb.models.utilities:bytesize",
    "moto.dynamodb.exceptions:ItemSizeTooLarge",
)


def apply() -> None:
    """Replace `Item.__init__` (a second call keeps the replacement)."""
    from moto.dynamodb import exceptions  # noqa: PLC0415 - moto only when it serves
    from moto.dynamodb.models import dynamo_type, utilities  # noqa: PLC0415

    if getattr(dynamo_type.Item.__init__, _MARK, False):
        return
    dynamo_type_class = dynamo_type.DynamoType
    limited_size_dict = dynamo_type.LimitedSizeDict
    bytesize = utilities.bytesize
    too_large = exceptions.ItemSizeTooLarge

    def __init__(  # noqa: N807 - it replaces moto's __init__
        self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]
    ) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        converted = {key: dynamo_type_class(value) for key, value in attrs.items()}
        size = sum(bytesize(key) + value.size() for key, value in converted.items())
        if size > _MOTO_ITEM_SIZE_LIMIT:
            raise too_large
        stored = limited_size_dict()
        dict.update(stored, converted)  # dict's own update: no per-attribute size check
        self.attrs = stored

    setattr(__init__, _MARK, True)
    dynamo_type.Item.__init__ = __init__  # type: ignore[method-assign]  # the patch itself
