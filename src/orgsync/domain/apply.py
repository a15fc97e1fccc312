"""The one apply loop: read REPLICATION records, decide, commit, re-read only what conflicted.

The consumer (a batch of stream records) and reconcile (a batch of drifted users) both commit
through it, so the fence is honoured the same way everywhere. It talks to storage through
`ReplicationPort` (the DynamoDB adapter in `orgsync.store`, a fake in unit tests). A cancelled
commit is never retried blindly: the user's record is read again and the decision made again
(docs/design.md §2 rule 5). Pure: standard library and the domain only.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

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
    APPLIED = "applied"  # a plan was committed
    SETTLED = "settled"  # decided without writing: stale (consumer), converged/skipped (reconcile)
    FAILED = "failed"


S = TypeVar("S")

# Given the records just read (user id → record), a decision per user: a plan to commit, or
# a settled outcome of the caller's own type. Called once per attempt, for the users still open.
Decide = Callable[[Mapping[str, ReplicationState | None]], Mapping[str, Plan | S]]


@dataclass(frozen=True, slots=True)
class ApplyResult(Generic[S]):
    """The outcome for one user: the committed plan, the settled outcome, or the error."""

    status: ApplyStatus
    plan: Plan | None = None
    settled: S | None = None
    error: str | None = None
    attempts: int = 1


def apply_decisions(
    user_ids: Collection[str],
    port: ReplicationPort,
    decide_all: Decide[S],
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> dict[str, ApplyResult[S]]:
    """Read → decide → commit for each user, re-reading and re-deciding the fenced-out ones.

    Transient storage errors on read (and whatever `decide_all` raises) propagate: nothing was
    written for the users still open. Per-user commit failures come back as FAILED results, so
    that one user's trouble does not fail the others.
    """
    results: dict[str, ApplyResult[S]] = {}
    pending = list(dict.fromkeys(user_ids))
    for attempt in range(1, max_attempts + 1):
        if not pending:
            break
        read = port.read(pending)
        decisions = decide_all({user_id: read.get(user_id) for user_id in pending})
        plans: list[Plan] = []
        for user_id in pending:
            decision = decisions.get(user_id)
            if isinstance(decision, Plan):
                plans.append(decision)
            elif decision is None:
                results[user_id] = ApplyResult(
                    ApplyStatus.FAILED, error="no decision", attempts=attempt
                )
            else:
                results[user_id] = ApplyResult(
                    ApplyStatus.SETTLED, settled=decision, attempts=attempt
                )
        committed = port.commit(plans) if plans else {}
        retry: list[str] = []
        for plan in plans:
            outcome = committed.get(plan.user_id, CommitResult(CommitStatus.FAILED, "no result"))
            if outcome.status is CommitStatus.COMMITTED:
                results[plan.user_id] = ApplyResult(
                    ApplyStatus.APPLIED, plan=plan, attempts=attempt
                )
            elif outcome.status is CommitStatus.CONFLICT:
                retry.append(plan.user_id)
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


def apply_changes(
    changes: Mapping[str, UserChange],
    port: ReplicationPort,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> dict[str, ApplyResult[Stale]]:
    """The consumer's use of the loop: the newest change of each user (keyed by user id)."""

    def decide_changes(records: Mapping[str, ReplicationState | None]) -> dict[str, Plan | Stale]:
        return {user_id: decide(changes[user_id], records.get(user_id)) for user_id in records}

    return apply_decisions(changes.keys(), port, decide_changes, max_attempts=max_attempts)
