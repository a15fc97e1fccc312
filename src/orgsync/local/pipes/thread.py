"""One pipe runner in a thread of its own: started, stopped, restarted like a pipe's poller.

A restart builds a new runner, which, like a new process, knows only the checkpoints.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from orgsync.local.pipes.errors import PipeError

if TYPE_CHECKING:
    from orgsync.local.pipes.runner import PipeRunner

logger = logging.getLogger(__name__)

# Every pipe thread's name starts so (the stack routes their requests; see `serve_in_process`).
THREAD_NAME_PREFIX = "orgsync-pipe-"


class PipeThread:
    """One PipeRunner.run(stop) in a thread; remembers why it died, if it did."""

    def __init__(self, runner: PipeRunner) -> None:
        self.runner = runner
        self.error: str | None = None
        self._restarting = False
        self._paused = False
        self._restart_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = self._new_thread()

    def _new_thread(self) -> threading.Thread:
        return threading.Thread(
            target=self._run, name=THREAD_NAME_PREFIX + self.runner.settings.name, daemon=True
        )

    def restart(self, make_runner: Callable[[], PipeRunner], timeout: float = 10) -> None:
        """Stop, then run a new runner: like a new process, it knows only the checkpoints.

        Its metrics continue the old ones (drain counts passes across restarts). While paused it
        does nothing: the pauser owns the runner until it resumes."""
        with self._restart_lock:
            if self._paused:
                logger.info("pipe %s: paused, not restarted", self.runner.settings.name)
                return
            self._restarting = True
            try:
                self.stop(timeout)
                runner = make_runner()
                runner.metrics = self.runner.metrics
                self.runner, self.error = runner, None
                self._stop = threading.Event()
                self._thread = self._new_thread()
                self._thread.start()
            finally:
                self._restarting = False

    def _run(self) -> None:
        try:
            self.runner.run(self._stop)
        except Exception as exc:  # the pipe stops; status and drain report why
            self.error = f"{type(exc).__name__}: {exc}"
            logger.exception("pipe %s stopped", self.runner.settings.name)

    @property
    def alive(self) -> bool:
        return self._restarting or self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def pause(self, timeout: float = 10) -> None:
        """Stop the thread, keeping the runner and its position (see `resume`).

        Raises PipeError if the thread does not stop in time: whoever pauses goes on to use the
        runner itself, which must never happen beside a live thread.
        """
        with self._restart_lock:
            self._restarting = self._paused = True
            self.stop(timeout)
            if self._thread.is_alive():
                raise PipeError(f"pipe {self.runner.settings.name} did not stop in {timeout:g}s")

    def resume(self) -> None:
        """Run the same runner again in a new thread, after `pause`."""
        with self._restart_lock:
            self._stop = threading.Event()
            self._thread = self._new_thread()
            self._thread.start()
            self._restarting = self._paused = False

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self.runner.wake()  # out of its idle wait now, not after the poll interval
        if self._thread.is_alive():
            self._thread.join(timeout)
