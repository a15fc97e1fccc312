"""moto's instance registry switched off: every model instance it creates is no longer kept.

moto appends each model instance (each item of each table, and each copy of them) to a class
list for its web dashboard, so memory only grows: over 1 GB after a two-minute benchmark.
orgsync never uses the dashboard. The patch is on `BaseModel.__new__`, where instances are
registered, not on the lists: `POST /moto-api/reset` replaces the lists, and would undo it.
"""

from __future__ import annotations

from typing import Any

# BaseModel must define `__new__` itself (guard: attributes must be the module's or class's own).
REQUIRED = ("moto.core.common_models:BaseModel.__new__", "moto.core.model_instances:model_data")


def apply() -> None:
    from moto.core.common_models import BaseModel  # noqa: PLC0415 - moto only when it serves

    def untracked_new(cls: type[Any], *args: Any, **kwargs: Any) -> Any:
        del args, kwargs  # as moto's own __new__: arguments go to __init__
        return super(BaseModel, cls).__new__(cls)

    BaseModel.__new__ = staticmethod(untracked_new)  # type: ignore[method-assign]
    for tracked in _tracked_lists():
        tracked.clear()


def _tracked_lists() -> list[list[Any]]:
    from moto.core.model_instances import model_data  # noqa: PLC0415

    return [
        tracked
        for models in model_data.values()
        for model in models.values()
        if isinstance(tracked := getattr(model, "instances_tracked", None), list)
    ]
