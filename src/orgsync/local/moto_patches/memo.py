"""Two of moto's pure helpers remembered instead of recomputed on every request.

* `camelcase_to_underscores` walks its argument character by character. SQS's `Queue.attributes`
  calls it for every attribute name, and moto builds a queue's attributes several times per
  message (twice per message sent, to read ContentBasedDeduplication; once per receive and per
  GetQueueAttributes): about 30 % of the embedded store's CPU under replication (issue 10's
  profile). Its answer depends on the string alone, so each name is converted once.
* `method_names_from_class` runs `inspect.getmembers` over a response class on every request
  to learn whether the action is one of its methods. moto's response classes do not gain or
  lose methods while it serves, so each class is inspected once.

Both keep moto's answers exactly: the functions are moto's own, called once per argument.
They are replaced where moto's request path looks them up (module globals bound at import).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

_MARK = "__orgsync_memo__"

# (module, global name): every module whose hot path calls the helper by its imported name.
_CAMELCASE_USERS = ("moto.core.utils", "moto.core.responses", "moto.sqs.models")
_METHOD_NAMES_USERS = ("moto.core.utils", "moto.core.responses")

REQUIRED = tuple(f"{module}:camelcase_to_underscores" for module in _CAMELCASE_USERS) + tuple(
    f"{module}:method_names_from_class" for module in _METHOD_NAMES_USERS
)


def apply() -> None:
    """Install the remembered helpers in each module that calls them (a second call keeps them)."""
    utils = importlib.import_module("moto.core.utils")
    camelcase = _remembered(utils.camelcase_to_underscores, functools.lru_cache(maxsize=4096))
    method_names = _remembered(utils.method_names_from_class, _per_class)
    replacements = [(name, "camelcase_to_underscores", camelcase) for name in _CAMELCASE_USERS]
    replacements += [
        (name, "method_names_from_class", method_names) for name in _METHOD_NAMES_USERS
    ]
    for module_name, attribute, remembered in replacements:
        setattr(importlib.import_module(module_name), attribute, remembered)


def _remembered(
    function: Callable[..., Any], remember: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> Callable[..., Any]:
    if getattr(function, _MARK, False):
        return function
    remembered = functools.wraps(function)(remember(function))
    setattr(remembered, _MARK, True)
    return remembered


def _per_class(method_names_from_class: Callable[[object], list[str]]) -> Callable[..., Any]:
    cached = functools.lru_cache(maxsize=1024)(lambda clazz: tuple(method_names_from_class(clazz)))

    def method_names(clazz: object) -> list[str]:
        return list(cached(clazz))  # a fresh list: callers may change it

    return method_names
