"""moto's response serializer remembers, per member, where it found the member's value.

For every member of every structure it writes, moto's `AttributePicker` builds six alias
providers and asks each whether the value could be stored under another name (an explicit
alias, the shape's name, a prefix of it, the botocore model's name). That was the largest part
of the serializer, itself a quarter of the embedded store's CPU under replication (issue 10).
The answer depends only on the source object's class, the member's name and its botocore shape
(each provider reads nothing else), so the list of names to try is computed once per such
triple. The names are still tried in moto's order against each object, so what a response
carries is unchanged. Pickers with other alias providers, and objects with their own per-instance
`Meta`, are left to moto.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

_MARK = "__orgsync_remembered_keys__"
# Shapes are botocore's, loaded once per service model: the triples are few (a bound anyway).
_MAX_REMEMBERED = 65536

REQUIRED = (
    "moto.core.serialize:AttributePicker.get_possible_keys",
    "moto.core.serialize:XFormedAttributePicker.get_possible_keys",
    "moto.core.serialize:DEFAULT_ALIAS_PROVIDERS",
    "moto.core.serialize:AttributePickerContext",
)


def apply() -> None:
    """Replace both pickers' `get_possible_keys` (a second call keeps the replacements)."""
    from moto.core import serialize  # noqa: PLC0415 - moto only when it serves

    for picker in (serialize.AttributePicker, serialize.XFormedAttributePicker):
        original = vars(picker)["get_possible_keys"]
        if not getattr(original, _MARK, False):
            remembered = _remembered(picker, original, serialize.DEFAULT_ALIAS_PROVIDERS)
            # The patch itself: a plain function over moto's generator method.
            picker.get_possible_keys = remembered  # type: ignore[method-assign, assignment]


def _remembered(
    picker: type, original: Callable[[Any, Any], Iterator[str]], default_providers: list[Any]
) -> Callable[[Any, Any], Iterator[str]]:
    # (object class, member name, botocore shape) -> the names to try, in moto's order.
    remembered: dict[tuple[type, str, Any], tuple[str, ...]] = {}

    def get_possible_keys(self: Any, context: Any) -> Iterator[str]:
        obj = context.obj
        if (
            self.alias_providers is not default_providers
            or type(self) is not picker
            or "Meta" in getattr(obj, "__dict__", ())
        ):
            return original(self, context)
        triple = (type(obj), context.key, context.shape)
        keys = remembered.get(triple)
        if keys is None:
            keys = tuple(original(self, context))
            if len(remembered) < _MAX_REMEMBERED:
                remembered[triple] = keys
        return iter(keys)

    setattr(get_possible_keys, _MARK, True)
    return get_possible_keys
