"""`orgsync reconcile`: the anti-entropy pass and backfill (docs/design.md §2): scan, audit, repair.

Scans both tables in parallel segments, audits every user with `domain.repair`, and with
`repair=True` commits the fixes through the consumer's own apply loop (`domain.apply`), so
repairs are fenced, re-read and re-decided exactly as the consumer's commits are.
Talks to DynamoDB through an injected client; must not depend on the CLI or the local stack.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from orgsync.domain.apply import DEFAULT_MAX_ATTEMPTS, ApplyStatus, ReplicationPort, apply_decisions
from orgsync.domain.invariant import DriftKind
from orgsync.domain.model import Membership, ReplicationState
from orgsync.domain.repair import audit_user
from orgsync.domain.rule import Plan
from orgsync.schema.organizations import (
    decode_membership,
    decode_replication,
    replication_user_id,
)
from orgsync.schema.rejection import Rejected
from orgsync.store.replication import DynamoReplicationStore
from orgsync.store.retry import MAX_BATCH_GET_KEYS
from orgsync.store.scan import parallel_scan, users_snapshot
from orgsync.store.users import UsersTable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

# Users repaired together: one consistent BatchGetItem per table, then packed transactions.
REPAIR_BATCH_SIZE = MAX_BATCH_GET_KEYS
# How many user ids the report names per outcome: enough to act on, bounded for huge tables.
SAMPLE_SIZE = 20
# A REPLICATION record the store cannot decode: counted and skipped, an operator must look.
UNREADABLE_RECORD = "unreadable_record"
# Drift kinds counted in memberships; every other kind is counted in users.
MEMBERSHIP_DRIFT_KINDS = frozenset(kind.value for kind in DriftKind)


class Phase(StrEnum):
    SCAN_USERS = "scan users"
    SCAN_ORGANIZATIONS = "scan organizations"
    REPAIR = "repair"


# (phase, items done since the last call, total when known).
ProgressCallback = Callable[[Phase, int, int | None], None]


@dataclass(frozen=True, slots=True)
class SkippedUser:
    user_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What one pass found and did.

    `drift` counts memberships for the membership kinds (missing, extra, stale_attributes,
    orphan) and users for the record kinds (unreplicated, record_mismatch, interrupted_commit,
    unreadable_record). Invalid user items are counted apart: their replica is not judged.
    """

    repair: bool
    users_scanned: int
    invalid_users: int
    memberships_scanned: int
    replication_records_scanned: int
    drift: dict[str, int]
    users_with_drift: int
    users_repaired: int
    users_already_converged: int
    conflicts_retried: int
    skipped: tuple[SkippedUser, ...]
    seconds: float
    scan_seconds: float
    drifted_sample: tuple[str, ...] = ()
    invalid_sample: tuple[str, ...] = ()

    @property
    def users_per_second(self) -> float:
        return self.users_scanned / self.seconds if self.seconds > 0 else 0.0

    @property
    def unresolved(self) -> int:
        """Users whose drift is still there after this pass (all of them without --repair)."""
        if not self.repair:
            return self.users_with_drift
        return self.users_with_drift - self.users_repaired - self.users_already_converged

    def to_json(self) -> dict[str, Any]:
        return {
            "repair": self.repair,
            "users_scanned": self.users_scanned,
            "invalid_users": self.invalid_users,
            "memberships_scanned": self.memberships_scanned,
            "replication_records_scanned": self.replication_records_scanned,
            "drift": dict(self.drift),
            "users_with_drift": self.users_with_drift,
            "users_repaired": self.users_repaired,
            "users_already_converged": self.users_already_converged,
            "conflicts_retried": self.conflicts_retried,
            "unresolved": self.unresolved,
            "skipped": [{"user_id": s.user_id, "reason": s.reason} for s in self.skipped],
            "drifted_sample": list(self.drifted_sample),
            "invalid_sample": list(self.invalid_sample),
            "seconds": round(self.seconds, 3),
            "scan_seconds": round(self.scan_seconds, 3),
            "users_per_second": round(self.users_per_second, 1),
        }


@dataclass(slots=True)
class _OrgTable:
    """The organizations table grouped by user: the whole table is held in memory (see docs)."""

    memberships: defaultdict[str, list[Membership]] = field(
        default_factory=lambda: defaultdict(list)
    )
    records: dict[str, ReplicationState] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    membership_count: int = 0


@dataclass(slots=True)
class _RepairTally:
    repaired: int = 0
    converged: int = 0
    conflicts: int = 0
    skipped: list[SkippedUser] = field(default_factory=list)


def reconcile(
    dynamodb: DynamoDBClient,
    *,
    users_table: str,
    organizations_table: str,
    segments: int = 4,
    repair: bool = False,
    on_progress: ProgressCallback | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    store: DynamoReplicationStore | None = None,
) -> ReconcileReport:
    """Audit every user (and every user the org table mentions); repair the drift if asked.

    Safe while the pipeline runs: repairs are fenced on the REPLICATION record's revision like
    the consumer's commits and keep its `seq`, so a change not yet applied still wins later.
    """
    started = time.monotonic()
    progress = on_progress or _no_progress
    with ThreadPoolExecutor(max_workers=2) as pool:
        users_future = pool.submit(
            parallel_scan,
            dynamodb,
            users_table,
            segments=segments,
            on_page=lambda count: progress(Phase.SCAN_USERS, count, None),
        )
        orgs_future = pool.submit(
            parallel_scan,
            dynamodb,
            organizations_table,
            segments=segments,
            on_page=lambda count: progress(Phase.SCAN_ORGANIZATIONS, count, None),
        )
        users = users_snapshot(users_future.result())
        orgs = _org_table(orgs_future.result())
    scan_seconds = time.monotonic() - started

    drift: Counter[str] = Counter()
    drifted: list[str] = []
    skipped: list[SkippedUser] = []
    candidates = (
        users.states.keys() | orgs.memberships.keys() | orgs.records.keys() | orgs.unreadable.keys()
    )
    for user_id in sorted(candidates - users.invalid.keys()):
        if user_id in orgs.unreadable:
            drift[UNREADABLE_RECORD] += 1
            skipped.append(SkippedUser(user_id, orgs.unreadable[user_id]))
            continue
        audit = audit_user(
            user_id,
            users.states.get(user_id),
            orgs.records.get(user_id),
            orgs.memberships.get(user_id, ()),
        )
        if audit.plan is None:
            continue
        drifted.append(user_id)
        drift.update(item.kind.value for item in audit.memberships)
        if audit.record is not None:
            drift[audit.record.value] += 1

    tally = _RepairTally()
    if repair and drifted:
        repairer = _Repairer(
            users=UsersTable(dynamodb, users_table),
            store=store or DynamoReplicationStore(dynamodb, organizations_table),
            found=orgs.memberships,
            max_attempts=max_attempts,
        )
        tally = repairer.run(drifted, workers=segments, progress=progress)
    seconds = time.monotonic() - started
    report = ReconcileReport(
        repair=repair,
        users_scanned=len(users.states) + len(users.invalid),
        invalid_users=len(users.invalid),
        memberships_scanned=orgs.membership_count,
        replication_records_scanned=len(orgs.records) + len(orgs.unreadable),
        drift=dict(sorted(drift.items())),
        users_with_drift=len(drifted) + len(skipped),
        users_repaired=tally.repaired,
        users_already_converged=tally.converged,
        conflicts_retried=tally.conflicts,
        skipped=tuple(sorted([*skipped, *tally.skipped], key=lambda s: s.user_id)),
        seconds=seconds,
        scan_seconds=scan_seconds,
        drifted_sample=tuple(sorted([*drifted, *(s.user_id for s in skipped)])[:SAMPLE_SIZE]),
        invalid_sample=tuple(sorted(users.invalid)[:SAMPLE_SIZE]),
    )
    logger.info(
        "reconcile: %s users, %s memberships, %s drifted, %s repaired, %s conflicts, %.1fs",
        report.users_scanned,
        report.memberships_scanned,
        report.users_with_drift,
        report.users_repaired,
        report.conflicts_retried,
        seconds,
    )
    return report


@dataclass(frozen=True, slots=True)
class _Converged:
    """Nothing to repair any more: someone (the consumer) fixed it since the scan."""


@dataclass(frozen=True, slots=True)
class _Skipped:
    reason: str


_CONVERGED = _Converged()
_Settled = _Converged | _Skipped


class _Repairer:
    """Commits repairs of drifted users in batches through the apply loop (fenced, re-read)."""

    def __init__(
        self,
        *,
        users: UsersTable,
        store: ReplicationPort,
        found: Mapping[str, list[Membership]],
        max_attempts: int,
    ) -> None:
        self._users = users
        self._store = store
        self._found = found
        self._max_attempts = max_attempts

    def run(
        self, user_ids: Sequence[str], *, workers: int, progress: ProgressCallback
    ) -> _RepairTally:
        batches = [
            user_ids[start : start + REPAIR_BATCH_SIZE]
            for start in range(0, len(user_ids), REPAIR_BATCH_SIZE)
        ]
        total = _RepairTally()
        progress(Phase.REPAIR, 0, len(user_ids))
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for tally, size in pool.map(self._repair_batch, batches):
                total.repaired += tally.repaired
                total.converged += tally.converged
                total.conflicts += tally.conflicts
                total.skipped.extend(tally.skipped)
                progress(Phase.REPAIR, size, len(user_ids))
        return total

    def _decide(self, records: Mapping[str, ReplicationState | None]) -> dict[str, Plan | _Settled]:
        # Order matters: the loop read the records; the user items are read after them, so each
        # is at least as new as the change its record reflects, and a repair never writes an
        # older state under a newer seq (which no later event would correct).
        states = self._users.read_states(list(records))
        decisions: dict[str, Plan | _Settled] = {}
        for user_id, record in records.items():
            state = states.get(user_id)
            if isinstance(state, Rejected):
                decisions[user_id] = _Skipped(f"invalid user item: {state.reason}")
                continue
            plan = audit_user(user_id, state, record, self._found.get(user_id, ())).plan
            decisions[user_id] = _CONVERGED if plan is None else plan
        return decisions

    def _repair_batch(self, user_ids: Sequence[str]) -> tuple[_RepairTally, int]:
        results = apply_decisions(
            user_ids, self._store, self._decide, max_attempts=self._max_attempts
        )
        tally = _RepairTally()
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
        return tally, len(user_ids)


def _org_table(items: list[dict[str, Any]]) -> _OrgTable:
    """Group membership items by user (ids from the keys, which are what queries see)."""
    table = _OrgTable()
    for item in items:
        member = decode_membership(item)
        if member is not None:
            table.memberships[member.user_id].append(member)
            table.membership_count += 1
            continue
        user_id = replication_user_id(item)
        if user_id is None:
            continue
        try:
            table.records[user_id] = decode_replication(item)
        except (KeyError, ValueError, TypeError) as exc:
            # The store cannot read it either: report it, and leave it to an operator.
            table.unreadable[user_id] = f"unreadable REPLICATION record ({type(exc).__name__})"
    return table


def _no_progress(phase: Phase, done: int, total: int | None) -> None:
    del phase, done, total
