"""A chaos-enabled local stack per store for the convergence properties, and their figures.

One stack per store (its own NamePrefix: moto's state is process-global), its faults
reconfigured per history. Long runs rotate to a fresh stack every ROTATE_EVERY histories so
that each history's full-table invariant scan stays small.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dynamodb_local import dynamodb_local_dir

from orgsync.local.chaos import ChaosSpec
from orgsync.local.stack import EmbeddedStack, StackOptions

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
ROTATE_EVERY = 100
# Short, so that unacknowledged messages (crash, delay) come back quickly. Local only.
VISIBILITY_TIMEOUT_SECONDS = 1


@dataclass
class Figures:
    """What a run did: histories, faults injected by kind, divergent users (must stay 0)."""

    histories: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    divergent_users: int = 0
    redrive_rounds: int = 0
    dead_lettered: int = 0

    def summary(self, store: str) -> str:
        faults = ", ".join(f"{kind} {count}" for kind, count in sorted(self.faults.items()))
        return (
            f"convergence[{store}]: {self.histories} histories, faults injected: {faults}; "
            f"{self.dead_lettered} messages redriven from the DLQ in {self.redrive_rounds} "
            f"rounds; divergent users: {self.divergent_users}"
        )


class StackHolder:
    """The current chaos stack of one store; a fresh one every `rotate_every` histories."""

    def __init__(self, store: str, *, rotate_every: int = ROTATE_EVERY) -> None:
        self.store = store
        self.rotate_every = rotate_every
        self.figures = Figures()
        self._stack: EmbeddedStack | None = None
        self._histories_on_stack = 0

    def begin_history(self) -> EmbeddedStack:
        if self._stack is not None and self._histories_on_stack >= self.rotate_every:
            self._stack.stop()
            self._stack = None
        if self._stack is None:
            self._stack = self._start()
            self._histories_on_stack = 0
        self._histories_on_stack += 1
        return self._stack

    def _start(self) -> EmbeddedStack:
        options = StackOptions(
            template_path=TEMPLATE,
            port=0,
            store="dynamodb-local" if self.store == "dynamodb-local" else "moto",
            dynamodb_local_dir=dynamodb_local_dir(),
            parameters={"NamePrefix": f"p{uuid.uuid4().hex[:6]}-", "LogLevel": "ERROR"},
            pipe_poll_interval=0.05,
            chaos=ChaosSpec(),
            visibility_timeout_seconds=VISIBILITY_TIMEOUT_SECONDS,
        )
        stack = EmbeddedStack(options)
        stack.start()
        return stack

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.stop()
            self._stack = None
