"""Commits the repairs of drifted users through the consumer's own apply loop (fenced, re-read).

Both passes hand a batch of drifted user ids here with the membership items they saw; the loop
reads each REPLICATION record, then the user item, plans with `domain.repair.audit_user` and
commits fenced on the record's revision, exactly as the consumer commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from orgsync.domain.apply import ApplyStatus, ReplicationPort, apply_decisions
from orgsync.domain.model import Membership, ReplicationState
from orgsync.domain.repair import audit_user
from orgsync.domain.rule import Plan
from orgsync.ops.reconcile.report import SkippedUser
from orgsync.schema.rejection import Rejected
from orgsync.store.errors import UnreadableRecordError
from orgsync.store.users import UsersTable


@dataclass(slots=True)
class RepairTally:
    repaired: int = 0
    converged: int = 0
    conflicts: int = 0
    skipped: list[SkippedUser] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Converged:
    """Nothing to repair any more: someone (the consumer) fixed it since the scan."""


@dataclass(frozen=True, slots=True)
class _Skipped:
    reason: str


_CONVERGED = _Converged()
_Settled = _Converged | _Skipped


class Repairer:
    """Repairs batches of users; holds no state between batches (safe to share by threads)."""

    def __init__(self, *, users: UsersTable, store: ReplicationPort, max_attempts: int) -> None:
        self._users = users
        self._store = store
        self._max_attempts = max_attempts

    def repair(
        self, user_ids: Sequence[str], found: Mapping[str, Sequence[Membership]]
    ) -> RepairTally:
        """Repair `user_ids` (≤ 100: one BatchGetItem each); `found` is what the scan saw.

        A user whose record cannot be decoded is skipped with the reason (the loop raises
        before it commits anything, so the others are simply decided again without it).
        """

        def decide(records: Mapping[str, ReplicationState | None]) -> dict[str, Plan | _Settled]:
            # Order matters: the loop read the records; the user items are read after them, so
            # each is at least as new as the change its record reflects, and a repair never
            # writes an older state under a newer seq (which no later event would correct).
            states = self._users.read_states(list(records))
            decisions: dict[str, Plan | _Settled] = {}
            for user_id, record in records.items():
                state = states.get(user_id)
                if isinstance(state, Rejected):
                    decisions[user_id] = _Skipped(f"invalid user item: {state.reason}")
                    continue
                plan = audit_user(user_id, state, record, found.get(user_id, ())).plan
                decisions[user_id] = _CONVERGED if plan is None else plan
            return decisions

        tally = RepairTally()
        remaining = list(user_ids)
        while True:
            try:
                results = apply_decisions(
                    remaining, self._store, decide, max_attempts=self._max_attempts
                )
                break
            except UnreadableRecordError as exc:
                # Nothing of this user can be committed safely: skip it, repair the others.
                tally.skipped.append(SkippedUser(exc.user_id, exc.reason))
                remaining = [user_id for user_id in remaining if user_id != exc.user_id]
        for user_id, result in results.items():
            tally.conflicts += result.attempts - 1
            if result.status is ApplyStatus.APPLIED:
                tally.repaired += 1
            elif isinstance(result.settled, _Skipped):
                tally.skipped.append(SkippedUser(user_id, result.settled.reason))
            elif result.status is ApplyStatus.SETTLED:
                tally.converged += 1
            else:
                tally.skipped.append(SkippedUser(user_id, result.error or "failed"))
        return tally
