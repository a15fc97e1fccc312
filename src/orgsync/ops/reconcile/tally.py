"""A slice's running totals, turned into its `ReconcileReport` when the slice ends.

Both passes count into one `SliceTally`, so the two reports share one shape and merge.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field

from orgsync.ops.reconcile.repairing import RepairTally
from orgsync.ops.reconcile.report import (
    MAX_SAMPLE_ID_BYTES,
    SAMPLE_SIZE,
    ReconcileReport,
    SkippedUser,
)

_ELLIPSIS_BYTES = len(json.dumps("…")) - 2


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
        _sample(self.invalid_sample, sample_id(user_id))

    def drifted(self, user_id: str) -> None:
        self.users_with_drift += 1
        _sample(self.drifted_sample, sample_id(user_id))

    def skip(self, skipped: SkippedUser) -> None:
        self.users_skipped += 1
        self.skipped.append(SkippedUser(sample_id(skipped.user_id), skipped.reason))
        if len(self.skipped) > SAMPLE_SIZE:  # keep the smallest ids, as the other samples do
            self.skipped.remove(max(self.skipped, key=lambda s: s.user_id))

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


def sample_id(user_id: str) -> str:
    """The id as a sample names it: cut to MAX_SAMPLE_ID_BYTES of JSON, so that a report stays
    small (Step Functions passes at most 256 KB) whatever ids the tables hold. Counted as JSON
    escapes them (`\u00e9` is 6 bytes), since that is what the payload carries."""
    if len(user_id) * 12 <= MAX_SAMPLE_ID_BYTES:  # 12: the longest escape (a surrogate pair)
        return user_id
    kept: list[str] = []
    size = _ELLIPSIS_BYTES
    for character in user_id:
        size += len(json.dumps(character)) - 2
        if size > MAX_SAMPLE_ID_BYTES:
            return "".join(kept) + "…"
        kept.append(character)
    return user_id


def _sample(sample: set[str], user_id: str) -> None:
    """Keep the SAMPLE_SIZE smallest ids: the same ids whatever order the pages came in."""
    if len(sample) < SAMPLE_SIZE:
        sample.add(user_id)
    elif user_id < (largest := max(sample)):
        sample.discard(largest)
        sample.add(user_id)
