"""The apply loop: read REPLICATION records, decide, commit, and re-read only what conflicted.

Talks to storage through `ReplicationPort`, so the loop is tested with a fake; the DynamoDB
adapter in `orgsync.store` implements the port. A cancelled commit is never retried blindly:
the user's record is read again and the change decided again (DESIGN §2 rule 5).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from orgsync.domain.model import ReplicationState, UserChange
from orgsync.domain.rule import Plan, Stale, decide

DEFAULT_MAX_ATTEMPTS = 5


class CommitStatus(StrEnum):
    COMMITTED = "committed"
    CONFLICT = "conflict"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What happened to one user's plan: committed, fenced out by a concurrent writer, or failed."""

    status: CommitStatus
    error: str | None = None


COMMITTED = CommitResult(CommitStatus.COMMITTED)
CONFLICT = CommitResult(CommitStatus.CONFLICT)


class ReplicationPort(Protocol):
    """Storage of REPLICATION records and memberships, as the apply loop needs it."""

    def read(self, user_ids: Collection[str]) -> dict[str, ReplicationState | None]:
        """Strongly consistent read of the users' REPLICATION records (None where absent)."""
        ...

    def commit(self, plans: Sequence[Plan]) -> dict[str, CommitResult]:
        """Commit each plan fenced on its `expected` record; one result per user id."""
        ...


class ApplyStatus(StrEnum):
    APPLIED = "applied"
    STALE = "stale"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The outcome for one user's newest change in a batch."""

    status: ApplyStatus
    plan: Plan | None = None
    stale: Stale | None = None
    error: str | None = None
    attempts: int = 1


def apply_changes(
    changes: Mapping[str, UserChange],
    port: ReplicationPort,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> dict[str, ApplyResult]:
    """Apply the newest change of each user (keyed by user id); one result per user.

    Transient storage errors on read propagate (nothing was written); per-user commit failures
    come back as FAILED results so that one user's trouble does not fail the others.
    """
    results: dict[str, ApplyResult] = {}
    pending = dict(changes)
    for attempt in range(1, max_attempts + 1):
        if not pending:
            break
        states = port.read(pending.keys())
        plans: list[Plan] = []
        for user_id, change in pending.items():
            decision = decide(change, states.get(user_id))
            if isinstance(decision, Stale):
                results[user_id] = ApplyResult(ApplyStatus.STALE, stale=decision, attempts=attempt)
            else:
                plans.append(decision)
        committed = port.commit(plans) if plans else {}
        retry: dict[str, UserChange] = {}
        for plan in plans:
            outcome = committed.get(plan.user_id, CommitResult(CommitStatus.FAILED, "no result"))
            if outcome.status is CommitStatus.COMMITTED:
                results[plan.user_id] = ApplyResult(
                    ApplyStatus.APPLIED, plan=plan, attempts=attempt
                )
            elif outcome.status is CommitStatus.CONFLICT:
                retry[plan.user_id] = pending[plan.user_id]
            else:
                results[plan.user_id] = ApplyResult(
                    ApplyStatus.FAILED, plan=plan, error=outcome.error, attempts=attempt
                )
        pending = retry
    for user_id in pending:
        results[user_id] = ApplyResult(
            ApplyStatus.FAILED,
            error=f"REPLICATION record kept changing ({max_attempts} attempts)",
            attempts=max_attempts,
        )
    return results
