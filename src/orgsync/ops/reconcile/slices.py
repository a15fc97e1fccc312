"""The unit of work of a reconcile run: one scan segment of one pass.

A run is pass `users` over every segment of the users table, then pass `organizations` over
every segment of the organizations table (docs/reconcile.md). A slice is named, so a finished
one can be recognised and not redone, and runs the same in a thread, a `--workers` process or
a Lambda invocation of the state machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# DynamoDB allows up to 1,000,000 scan segments; Step Functions' States.ArrayRange, which the
# state machine uses to list them, returns at most 1,000 items.
MAX_TOTAL_SEGMENTS = 1000


class Pass(StrEnum):
    # Scan users; read each one's REPLICATION record and implied memberships by key.
    USERS = "users"
    # Scan the organizations table; read the users its items belong to by key.
    ORGANIZATIONS = "organizations"


@dataclass(frozen=True, slots=True)
class Tables:
    users: str
    organizations: str


@dataclass(frozen=True, slots=True)
class Slice:
    pass_: Pass
    segment: int
    total_segments: int

    def __post_init__(self) -> None:
        if not 1 <= self.total_segments <= MAX_TOTAL_SEGMENTS:
            raise ValueError(f"total segments must be 1 to {MAX_TOTAL_SEGMENTS}")
        if not 0 <= self.segment < self.total_segments:
            raise ValueError(f"segment must be 0 to {self.total_segments - 1}")

    @property
    def name(self) -> str:
        width = len(str(self.total_segments - 1))
        return f"{self.pass_.value}-{self.segment:0{width}d}-of-{self.total_segments}"

    def to_json(self) -> dict[str, Any]:
        return {
            "pass": self.pass_.value,
            "segment": self.segment,
            "total_segments": self.total_segments,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Slice:
        return cls(Pass(data["pass"]), int(data["segment"]), int(data["total_segments"]))


def all_slices(
    total_segments: int, passes: tuple[Pass, ...] = (Pass.USERS, Pass.ORGANIZATIONS)
) -> list[Slice]:
    """Every slice of a run, pass by pass, in the order they should run."""
    return [
        Slice(pass_, segment, total_segments)
        for pass_ in passes
        for segment in range(total_segments)
    ]
