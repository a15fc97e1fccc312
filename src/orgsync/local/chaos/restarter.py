"""Restarts of the pipe and the poller at random ticks, as a scale-in or a redeploy would."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from orgsync.local.chaos.faults import Chaos
from orgsync.local.chaos.spec import FaultKind

logger = logging.getLogger(__name__)

RESTART_TICK_SECONDS: Final = 0.1


@dataclass(frozen=True)
class RestartTarget:
    name: str
    restart: Callable[[], None]


class ChaosRestarter:
    """Every tick, restarts each target (a pipe, a poller) with the spec's `restart` rate."""

    def __init__(self, chaos: Chaos, targets: Sequence[RestartTarget]) -> None:
        self._chaos = chaos
        self._targets = tuple(targets)
        self._stop = threading.Event()
        # Held by each restart, and by whoever must not see one (a test's reset).
        self._restarting = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="orgsync-chaos", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @contextmanager
    def held(self) -> Iterator[None]:
        """No restart while inside (one already running finishes first)."""
        with self._restarting:
            yield

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(RESTART_TICK_SECONDS):
            for target in self._targets:
                if self._stop.is_set() or not self._chaos.roll(FaultKind.RESTART):
                    continue
                logger.info("chaos: restarting %s", target.name)
                try:
                    with self._restarting:
                        target.restart()
                except Exception:  # a failed restart must not end the injector
                    logger.exception("chaos: restarting %s failed", target.name)
