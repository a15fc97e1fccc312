"""moto's request dispatch without a directory listing per request.

Every request asks `moto.backends.list_of_moto_modules()` whether its host names a service:
a `listdir` and an `isdir` per service folder of moto's package (about 180), some 2.5 ms of the
~7 ms a request costs the embedded store. moto's folders do not change while it runs, so the
answer is listed once. (The first of the store's hot spots; see issue 10's profile.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

_MARK = "__orgsync_listed_once__"

REQUIRED = ("moto.backends:list_of_moto_modules",)


def apply() -> None:
    """Replace `list_of_moto_modules` with its answer, listed once (a second call keeps it)."""
    from moto import backends  # noqa: PLC0415 - moto only when it serves

    if getattr(backends.list_of_moto_modules, _MARK, False):
        return
    backends.list_of_moto_modules = _listed_once(backends.list_of_moto_modules)


def _listed_once(list_modules: Callable[[], Iterable[str]]) -> Callable[[], Iterable[str]]:
    listed = functools.cache(lambda: tuple(list_modules()))

    def list_of_moto_modules() -> Iterable[str]:
        return listed()

    setattr(list_of_moto_modules, _MARK, True)
    return list_of_moto_modules
