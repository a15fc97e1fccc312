"""Which of this process's requests are the stack's own, and so may skip HTTP to its store.

The pipeline's threads (the pipe's, the poller's workers, which also run the handler) and the
stack's own operations (start, drain, reset, status) reach an embedded store directly
(`servers.serve_in_process`). A client the stack hands out (`EmbeddedStack.client`) keeps HTTP
in a caller's thread, as a user's code or a benchmark's writers do: they are the outside world.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from orgsync.local.lambda_.sqs_poller import THREAD_NAME_PREFIX as POLLER_THREAD_PREFIX
from orgsync.local.pipes.thread import THREAD_NAME_PREFIX as PIPE_THREAD_PREFIX

__all__ = ["is_own_request", "stack_operation"]

_PIPELINE_THREAD_PREFIXES = (PIPE_THREAD_PREFIX, POLLER_THREAD_PREFIX)
_operation = threading.local()


def is_own_request() -> bool:
    """True in a pipeline thread, or inside `stack_operation()` in this thread."""
    if getattr(_operation, "depth", 0):
        return True
    return threading.current_thread().name.startswith(_PIPELINE_THREAD_PREFIXES)


@contextlib.contextmanager
def stack_operation() -> Iterator[None]:
    """This thread's requests are the stack's own meanwhile (nestable)."""
    _operation.depth = getattr(_operation, "depth", 0) + 1
    try:
        yield
    finally:
        _operation.depth -= 1
