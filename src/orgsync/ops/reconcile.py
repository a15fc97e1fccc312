"""`orgsync reconcile`: the anti-entropy pass and backfill (DESIGN §2), scan, audit, repair.

Scans both tables in parallel segments, audits every user with `domain.repair`, and with
`repair=True` commits the fixes through `DynamoReplicationStore` under the consumer's fence.
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

from orgsync.domain.apply import CommitStatus
from orgsync.domain.invariant import DriftKind
from orgsync.domain.model import (
    MEMBERSHIP_PREFIX,
    ORGANIZATION_PREFIX,
    REPLICATION_SORT_KEY,
    USER_PREFIX,
    Membership,
    ReplicationState,
    UserState,
)
from orgsync.domain.repair import audit_user
from orgsync.errors import OrgsyncError
from orgsync.ops.users import user_key
from orgsync.schema.organizations import decode_replication
from orgsync.schema.stream import Rejected, decode_user_image
from orgsync.store.replication import MAX_BATCH_GET_KEYS, DynamoReplicationStore
from orgsync.store.scan import parallel_scan, users_snapshot

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 5
# Users repaired together: one consistent BatchGetItem per table, then packed transactions.
REPAIR_BATCH_SIZE = MAX_BATCH_GET_KEYS
# How many user ids the report names per outcome: enough to act on, bounded for huge tables.
SAMPLE_SIZE = 20
# BatchGetItem leaving keys unprocessed this many times in a row means the table is throttled.
_MAX_UNPROCESSED_ROUNDS = 8
# A REPLICATION record the store cannot decode: counted and skipped, an operator must look.
UNREADABLE_RECORD = "unreadable_record"
# Drift kinds counted in memberships; every other kind is counted in users.
MEMBERSHIP_DRIFT_KINDS = frozenset(kind.value for kind in DriftKind)


class ReconcileError(OrgsyncError):
    """Reconcile could not read what it needs (e.g. the users table kept throttling)."""


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
            dynamodb,
            users_table=users_table,
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


class _Repairer:
    """Re-reads, re-plans and commits drifted users in batches, retrying fence conflicts."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        *,
        users_table: str,
        store: DynamoReplicationStore,
        found: Mapping[str, list[Membership]],
        max_attempts: int,
    ) -> None:
        self._dynamodb = dynamodb
        self._users_table = users_table
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

    def _repair_batch(self, user_ids: Sequence[str]) -> tuple[_RepairTally, int]:
        tally = _RepairTally()
        pending = list(user_ids)
        for attempt in range(1, self._max_attempts + 1):
            if not pending:
                break
            # Order matters: the record first, then the user item. The user item read after the
            # record is at least as new as the change the record reflects, so a repair never
            # writes an older state under a newer seq (which no later event would correct).
            records = self._store.read(pending)
            states = self._read_users(pending)
            plans = []
            for user_id in pending:
                state = states.get(user_id)
                if isinstance(state, Rejected):
                    tally.skipped.append(SkippedUser(user_id, f"invalid user item: {state.reason}"))
                    continue
                plan = audit_user(
                    user_id, state, records.get(user_id), self._found.get(user_id, ())
                ).plan
                if plan is None:
                    # Someone (the consumer) fixed it between our scan and this read.
                    tally.converged += 1
                else:
                    plans.append(plan)
            results = self._store.commit(plans) if plans else {}
            retry: list[str] = []
            for plan in plans:
                result = results.get(plan.user_id)
                if result is None:
                    tally.skipped.append(SkippedUser(plan.user_id, "no commit result"))
                elif result.status is CommitStatus.COMMITTED:
                    tally.repaired += 1
                elif result.status is CommitStatus.CONFLICT:
                    retry.append(plan.user_id)
                else:
                    tally.skipped.append(SkippedUser(plan.user_id, result.error or "failed"))
            if retry and attempt < self._max_attempts:
                tally.conflicts += len(retry)
            pending = retry
        tally.skipped.extend(
            SkippedUser(user_id, f"REPLICATION record kept changing ({self._max_attempts} tries)")
            for user_id in pending
        )
        return tally, len(user_ids)

    def _read_users(self, user_ids: Sequence[str]) -> dict[str, UserState | Rejected | None]:
        """Consistent BatchGetItem of the user items (None where the user does not exist)."""
        states: dict[str, UserState | Rejected | None] = dict.fromkeys(user_ids)
        request: dict[str, Any] = {
            self._users_table: {
                "Keys": [user_key(user_id) for user_id in user_ids],
                "ConsistentRead": True,
            }
        }
        for _ in range(_MAX_UNPROCESSED_ROUNDS):
            response = self._dynamodb.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(self._users_table, []):
                user_id = item["pk"]["S"][len(USER_PREFIX) :]
                states[user_id] = decode_user_image(item)
            request = dict(response.get("UnprocessedKeys") or {})
            if not request:
                return states
            time.sleep(0.05)
        raise ReconcileError(f"BatchGetItem on {self._users_table} kept leaving keys unprocessed")


def _org_table(items: list[dict[str, Any]]) -> _OrgTable:
    """Group membership items by user. Ids come from the keys, which are what queries see."""
    table = _OrgTable()
    for item in items:
        pk, sk = item["pk"].get("S", ""), item["sk"].get("S", "")
        if sk.startswith(MEMBERSHIP_PREFIX) and pk.startswith(ORGANIZATION_PREFIX):
            user_id = sk[len(MEMBERSHIP_PREFIX) :]
            table.memberships[user_id].append(
                Membership(
                    org_id=pk[len(ORGANIZATION_PREFIX) :],
                    user_id=user_id,
                    email=item["email"].get("S") if "email" in item else None,
                    status=item["status"].get("S") if "status" in item else None,
                    source_seq=_int_or_zero(item.get("source_seq")),
                )
            )
            table.membership_count += 1
        elif sk == REPLICATION_SORT_KEY and pk.startswith(USER_PREFIX):
            user_id = pk[len(USER_PREFIX) :]
            try:
                table.records[user_id] = decode_replication(item)
            except (KeyError, ValueError, TypeError) as exc:
                # The store cannot read it either: report it, and leave it to an operator.
                table.unreadable[user_id] = f"unreadable REPLICATION record ({type(exc).__name__})"
    return table


def _int_or_zero(value: Mapping[str, Any] | None) -> int:
    try:
        return int(value["N"]) if value else 0
    except (KeyError, ValueError, TypeError):
        return 0


def _no_progress(phase: Phase, done: int, total: int | None) -> None:
    del phase, done, total
