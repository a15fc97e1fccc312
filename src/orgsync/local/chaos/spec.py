"""What faults to inject and how often: `ChaosSpec`, parsed from `seed=7,duplicate=0.1,…`.

Pure values; docs/chaos.md says what each key models.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from orgsync.local.errors import EmbeddedStackError


class ChaosSpecError(EmbeddedStackError):
    """A chaos spec that cannot be parsed or run (unknown key, rate outside 0..1, …)."""


class FaultKind(StrEnum):
    """One kind of injected fault; each has a rate key of the same name in the spec."""

    DUPLICATE = "duplicate"
    CRASH = "crash"
    THROTTLE = "throttle"
    CONFLICT = "conflict"
    CHUNK = "chunk"
    DELAY = "delay"
    RESTART = "restart"


@dataclass(frozen=True)
class ChaosSpec:
    """Rates (probabilities 0..1) of each fault, and the seed every injector's dice derive from.

    Parsed from `seed=7,duplicate=0.1,crash=0.05,...`; docs/chaos.md says what each key models.
    """

    seed: int = 0
    duplicate: float = 0.0  # per record the pipe sends: also sent again, with a fresh dedup id
    crash: float = 0.0  # per poller batch: handler runs, nothing is deleted (process died)
    throttle: float = 0.0  # per DynamoDB data-plane request: ThrottlingException or PTEE
    conflict: float = 0.0  # per TransactWriteItems: cancelled with a TransactionConflict reason
    chunk: float = 0.0  # per step after a chunked commit's claim: the committer dies there
    delay: float = 0.0  # per poller batch: held past the visibility timeout before invoking
    restart: float = 0.0  # per 100 ms tick, per pipe and per poller: stop and start again

    def __post_init__(self) -> None:
        for kind in FaultKind:
            rate = getattr(self, kind.value)
            if not 0.0 <= rate <= 1.0:
                raise ChaosSpecError(f"chaos rate {kind.value}={rate} is outside 0..1")

    @classmethod
    def parse(cls, text: str) -> ChaosSpec:
        """`key=value` pairs separated by commas; unknown keys and bad values are errors."""
        known = {field.name for field in fields(cls)}
        values: dict[str, Any] = {}
        for part in (piece.strip() for piece in text.split(",")):
            if not part:
                continue
            key, sep, raw = part.partition("=")
            key = key.strip()
            if not sep or key not in known:
                raise ChaosSpecError(
                    f"chaos spec: {part!r} is not key=value with a key of {sorted(known)}"
                )
            try:
                values[key] = int(raw) if key == "seed" else float(raw)
            except ValueError as exc:
                raise ChaosSpecError(f"chaos spec: {key}={raw!r} is not a number") from exc
        return cls(**values)

    def __str__(self) -> str:
        rates = [f"{kind.value}={self.rate(kind):g}" for kind in FaultKind if self.rate(kind)]
        return ",".join([f"seed={self.seed}", *rates])

    def rate(self, kind: FaultKind) -> float:
        rate: float = getattr(self, kind.value)
        return rate

    @property
    def quiet(self) -> bool:
        """No fault at any rate: the injectors pass everything through."""
        return not any(self.rate(kind) for kind in FaultKind)

    def silenced(self) -> ChaosSpec:
        """The same seed with every rate at zero."""
        return ChaosSpec(seed=self.seed)
