"""The one door to moto's internals: every patch the embedded store applies, behind a guard.

`apply()` refuses a moto outside the tested range and one whose patched or read attributes
moved (`guard`), then installs, once per process: the transaction undo log (`transactions`),
the instance registry switched off (`registry`), a reset that spares the stack's resources
(`reset`; the stack names them with `keep_on_reset`), moto's service list read once
(`dispatch`), table scans that start at their ExclusiveStartKey instead of sorting and walking
the whole table on every page (`scans`), two pure helpers remembered per argument (`memo`), items
built in linear time (`items`), the serializer's member names looked up once (`serializer`), SQS
counts that read the clock once per call (`queue_clock`).
`queue_wait_seconds` (`queues`) is the one read of moto's state that bypasses its API. Only
`orgsync.local.servers` calls in here.
"""

from __future__ import annotations

import threading

from orgsync.local.moto_patches import (
    dispatch,
    items,
    memo,
    queue_clock,
    queues,
    registry,
    reset,
    scans,
    serializer,
    transactions,
)
from orgsync.local.moto_patches.guard import (
    TESTED_MOTO_RANGE,
    MotoPatchError,
    check_attributes,
    check_moto_version,
    installed_moto_version,
)
from orgsync.local.moto_patches.queues import queue_wait_seconds
from orgsync.local.moto_patches.reset import Kept
from orgsync.local.moto_patches.reset import forget as forget_on_reset
from orgsync.local.moto_patches.reset import keep as keep_on_reset

__all__ = [
    "TESTED_MOTO_RANGE",
    "Kept",
    "MotoPatchError",
    "apply",
    "check",
    "forget_on_reset",
    "keep_on_reset",
    "queue_wait_seconds",
]

_applied = False
_apply_lock = threading.Lock()


def check(moto_version: str | None = None) -> None:
    """Raise MotoPatchError unless the patches can apply to this moto (default: the installed)."""
    check_moto_version(moto_version or installed_moto_version())
    check_attributes(
        (
            *transactions.REQUIRED,
            *registry.REQUIRED,
            *queues.REQUIRED,
            *reset.REQUIRED,
            *dispatch.REQUIRED,
            *scans.REQUIRED,
            *memo.REQUIRED,
            *items.REQUIRED,
            *serializer.REQUIRED,
            *queue_clock.REQUIRED,
        )
    )


def apply() -> None:
    """Check, then install every patch; later calls do nothing."""
    global _applied  # noqa: PLW0603 - a process-wide, install-once switch
    with _apply_lock:
        if _applied:
            return
        check()
        transactions.apply()
        registry.apply()
        reset.apply()
        dispatch.apply()
        scans.apply()
        memo.apply()
        items.apply()
        serializer.apply()
        queue_clock.apply()
        _applied = True
