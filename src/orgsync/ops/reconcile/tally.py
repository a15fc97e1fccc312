"""A slice's running totals, turned into its `ReconcileReport` when the slice ends.

Both passes count into one `SliceTally`, so the two reports share one shape and merge.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from orgsync.ops.reconcile.repairing import RepairTally
from orgsync.ops.reconcile.report import SAMPLE_SIZE, ReconcileReport, SkippedUser


@dataclass(slots=True)
class SliceTally:
    repair: bool
    started: float = field(default_factory=time.monotonic)
    users_scanned: int = 0
    invalid_users: int = 0
    memberships_scanned: int = 0
    replication_records_scanned: int = 0
    drift: Counter[str] = field(default_factory=Counter)
    users_with_drift: int = 0
    repaired: int = 0
    converged: int = 0
    conflicts: int = 0
    users_skipped: int = 0
    skipped: list[SkippedUser] = field(default_factory=list)
    drifted_sample: set[str] = field(default_factory=set)
    invalid_sample: set[str] = field(default_factory=set)

    def invalid(self, user_id: str) -> None:
        self.invalid_users += 1
        _sample(self.invalid_sample, user_id)

    def drifted(self, user_id: str) -> None:
        self.users_with_drift += 1
        _sample(self.drifted_sample, user_id)

    def skip(self, skipped: SkippedUser) -> None:
        self.users_skipped += 1
        if len(self.skipped) < SAMPLE_SIZE:
            self.skipped.append(skipped)

    def add_repairs(self, tally: RepairTally) -> None:
        self.repaired += tally.repaired
        self.converged += tally.converged
        self.conflicts += tally.conflicts
        for skipped in tally.skipped:
            self.skip(skipped)

    def report(self, slice_name: str) -> ReconcileReport:
        seconds = time.monotonic() - self.started
        return ReconcileReport(
            repair=self.repair,
            users_scanned=self.users_scanned,
            invalid_users=self.invalid_users,
            memberships_scanned=self.memberships_scanned,
            replication_records_scanned=self.replication_records_scanned,
            drift=dict(sorted((kind, count) for kind, count in self.drift.items() if count)),
            users_with_drift=self.users_with_drift,
            users_repaired=self.repaired,
            users_already_converged=self.converged,
            users_skipped=self.users_skipped,
            conflicts_retried=self.conflicts,
            skipped=tuple(sorted(self.skipped, key=lambda s: s.user_id)),
            seconds=seconds,
            slice_seconds=seconds,
            drifted_sample=tuple(sorted(self.drifted_sample)),
            invalid_sample=tuple(sorted(self.invalid_sample)),
            slices=(slice_name,),
        )


def _sample(sample: set[str], user_id: str) -> None:
    """Keep the SAMPLE_SIZE smallest ids: the same ids whatever order the pages came in."""
    if len(sample) < SAMPLE_SIZE:
        sample.add(user_id)
    elif user_id < (largest := max(sample)):
        sample.discard(largest)
        sample.add(user_id)
