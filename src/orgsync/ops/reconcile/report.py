"""What a reconcile slice found and did, as a report that merges by addition.

Every field is a count, a bounded sample or a flag, so the reports of any set of slices (run in
threads, in `--workers` processes, or as Lambda invocations of the state machine) merge into
the report of the whole run. Samples hold at most SAMPLE_SIZE ids of at most MAX_SAMPLE_ID_BYTES
bytes of JSON each, so a report stays far below Step Functions' 256 KB payload at any table size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from orgsync.domain.invariant import DriftKind

# How many user ids a report names per outcome: enough to act on, bounded for huge tables.
SAMPLE_SIZE = 100
# Longer ids are cut (ending in "…"): pipeline ids are at most 123 characters, but a users table
# may hold longer ones (invalid items), and a slice's report must fit a Step Functions payload.
MAX_SAMPLE_ID_BYTES = 128
# A REPLICATION record the store cannot decode: counted and skipped, an operator must look.
UNREADABLE_RECORD = "unreadable_record"
# Drift kinds counted in memberships; every other kind is counted in users.
MEMBERSHIP_DRIFT_KINDS = frozenset(kind.value for kind in DriftKind)


@dataclass(frozen=True, slots=True)
class SkippedUser:
    user_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What one or more slices found and did.

    `drift` counts memberships for the membership kinds (missing, extra, stale_attributes,
    orphan) and users for the record kinds (unreplicated, record_mismatch, interrupted_commit,
    unreadable_record); each membership and each record is judged by exactly one pass, so the
    counts are exact. `users_with_drift` counts judgements: a user drifted in both passes (or
    whose extra memberships span several scan pages) counts once for each. The repair counts use
    the same unit, so `unresolved` is exact. Invalid user items are counted apart: their
    replica is not judged.
    """

    repair: bool
    users_scanned: int = 0
    invalid_users: int = 0
    memberships_scanned: int = 0
    replication_records_scanned: int = 0
    drift: dict[str, int] = field(default_factory=dict)
    users_with_drift: int = 0
    users_repaired: int = 0
    users_already_converged: int = 0
    users_skipped: int = 0
    conflicts_retried: int = 0
    skipped: tuple[SkippedUser, ...] = ()
    # Wall seconds of the run; for a merge, the caller's wall clock (slices overlap).
    seconds: float = 0.0
    # Seconds the slices took, added up: what a run costs in worker time.
    slice_seconds: float = 0.0
    drifted_sample: tuple[str, ...] = ()
    invalid_sample: tuple[str, ...] = ()
    # Names of the slices merged into this report (`Slice.name`), sorted.
    slices: tuple[str, ...] = ()

    @property
    def users_per_second(self) -> float:
        return self.users_scanned / self.seconds if self.seconds > 0 else 0.0

    @property
    def unresolved(self) -> int:
        """Drift still there after this run (all of it without --repair)."""
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
            "users_skipped": self.users_skipped,
            "conflicts_retried": self.conflicts_retried,
            "unresolved": self.unresolved,
            "skipped": [{"user_id": s.user_id, "reason": s.reason} for s in self.skipped],
            "drifted_sample": list(self.drifted_sample),
            "invalid_sample": list(self.invalid_sample),
            "seconds": round(self.seconds, 3),
            "slice_seconds": round(self.slice_seconds, 3),
            "users_per_second": round(self.users_per_second, 1),
            "slices": list(self.slices),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReconcileReport:
        """The inverse of `to_json` (derived fields are recomputed, not read)."""
        return cls(
            repair=bool(data["repair"]),
            users_scanned=int(data["users_scanned"]),
            invalid_users=int(data["invalid_users"]),
            memberships_scanned=int(data["memberships_scanned"]),
            replication_records_scanned=int(data["replication_records_scanned"]),
            drift={str(kind): int(count) for kind, count in data["drift"].items()},
            users_with_drift=int(data["users_with_drift"]),
            users_repaired=int(data["users_repaired"]),
            users_already_converged=int(data["users_already_converged"]),
            users_skipped=int(data["users_skipped"]),
            conflicts_retried=int(data["conflicts_retried"]),
            skipped=tuple(SkippedUser(s["user_id"], s["reason"]) for s in data["skipped"]),
            seconds=float(data["seconds"]),
            slice_seconds=float(data["slice_seconds"]),
            drifted_sample=tuple(data["drifted_sample"]),
            invalid_sample=tuple(data["invalid_sample"]),
            slices=tuple(data["slices"]),
        )


def merge(reports: Iterable[ReconcileReport], *, repair: bool, seconds: float) -> ReconcileReport:
    """One report for many slices: counts added, samples united and cut to `SAMPLE_SIZE`."""
    drift: Counter[str] = Counter()
    totals = Counter[str]()
    skipped: list[SkippedUser] = []
    drifted: set[str] = set()
    invalid: set[str] = set()
    slices: list[str] = []
    slice_seconds = 0.0
    for report in reports:
        drift.update(report.drift)
        totals.update(
            {
                "users_scanned": report.users_scanned,
                "invalid_users": report.invalid_users,
                "memberships_scanned": report.memberships_scanned,
                "replication_records_scanned": report.replication_records_scanned,
                "users_with_drift": report.users_with_drift,
                "users_repaired": report.users_repaired,
                "users_already_converged": report.users_already_converged,
                "users_skipped": report.users_skipped,
                "conflicts_retried": report.conflicts_retried,
            }
        )
        skipped.extend(report.skipped)
        drifted.update(report.drifted_sample)
        invalid.update(report.invalid_sample)
        slices.extend(report.slices)
        slice_seconds += report.slice_seconds
    return ReconcileReport(
        repair=repair,
        drift=dict(sorted((kind, count) for kind, count in drift.items() if count)),
        skipped=tuple(sorted(set(skipped), key=lambda s: (s.user_id, s.reason))[:SAMPLE_SIZE]),
        seconds=seconds,
        slice_seconds=slice_seconds,
        drifted_sample=tuple(sorted(drifted)[:SAMPLE_SIZE]),
        invalid_sample=tuple(sorted(invalid)[:SAMPLE_SIZE]),
        slices=tuple(sorted(slices)),
        **totals,
    )
