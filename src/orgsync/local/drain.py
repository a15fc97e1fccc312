"""Waiting until the local pipeline is quiet: every write made before the call has gone through.

Quiet means: each pipe finished a full pass that began after the previous check and read
nothing, the consumed queues hold no visible, in-flight or delayed message, and no invocation
is running; checked twice in a row. The passes it waits for are asked for (`PipeRunner.wake`)
rather than waited out: a drain of a quiet stack takes a few passes' time, not three poll
intervals.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from orgsync.local.errors import DrainTimeoutError
from orgsync.local.status import QueueDepth

if TYPE_CHECKING:
    from orgsync.local.lambda_.sqs_poller import SqsEventSourcePoller
    from orgsync.local.pipes.thread import PipeThread

_DRAIN_POLL_SECONDS: Final = 0.02
# While a pass it asked for runs: a pass of a quiet pipe is one GetRecords per shard.
_PASS_POLL_SECONDS: Final = 0.002

DepthReader = Callable[[str], QueueDepth]


def drain_pipeline(
    pipes: Sequence[PipeThread],
    pollers: Sequence[SqsEventSourcePoller],
    depth: DepthReader,
    *,
    timeout: float,
) -> None:
    """Return once quiet (see the module docstring); DrainTimeoutError names what is pending."""
    deadline = time.monotonic() + timeout
    # Two passes: the pass running now may have started before the caller's last write.
    marks = [thread.runner.metrics.passes + 2 for thread in pipes]
    confirmed = 0
    while True:
        waiting = _pipes_waited_for(pipes, marks)
        if waiting:
            pending = waiting
        else:
            pending = _pending(pipes, pollers, depth)
            if pending:
                confirmed = 0
            else:
                confirmed += 1
                if confirmed == 2:
                    return
                # The second check wants the pipe caught up again after the first one.
                marks = [thread.runner.metrics.passes + 1 for thread in pipes]
                continue
        if time.monotonic() >= deadline:
            raise DrainTimeoutError(
                f"pipeline not quiet after {timeout:g}s: " + "; ".join(pending), tuple(pending)
            )
        if waiting:
            for thread in pipes:
                thread.runner.wake()
        time.sleep(_PASS_POLL_SECONDS if waiting else _DRAIN_POLL_SECONDS)


def _pipes_waited_for(pipes: Sequence[PipeThread], marks: list[int]) -> list[str]:
    waiting: list[str] = []
    for thread, mark in zip(pipes, marks, strict=True):
        name = thread.runner.settings.name
        if not thread.alive:
            reason = f"pipe {name} stopped: {thread.error}"
            raise DrainTimeoutError(f"pipeline cannot drain: {reason}", (reason,))
        if thread.runner.metrics.passes < mark:
            waiting.append(f"pipe {name} has not finished a pass over the stream yet")
    return waiting


def _pending(
    pipes: Sequence[PipeThread], pollers: Sequence[SqsEventSourcePoller], depth: DepthReader
) -> list[str]:
    pending = [
        f"pipe {thread.runner.settings.name} is still reading or sending records"
        for thread in pipes
        if not thread.runner.is_caught_up()
    ]
    for poller in pollers:
        current = depth(poller.config.queue_url)
        if current.visible or current.in_flight or current.delayed:
            pending.append(
                f"queue {current.name}: {current.visible} visible, {current.in_flight} in flight"
                + (f", {current.delayed} delayed" if current.delayed else "")
            )
        running = poller.active_invocations
        if running:
            pending.append(f"{poller.config.function_name}: {running} invocations running")
    return pending
