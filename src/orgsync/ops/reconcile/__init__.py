"""`orgsync reconcile`: the anti-entropy pass and backfill (docs/reconcile.md), streaming.

Two passes of scan slices with memory bounded by a scan page: `users_pass` (each user against
its REPLICATION record and implied memberships, read by key) and `organizations_pass` (each
organizations-table item against its user, read by key). Repairs go through the consumer's own
apply loop (`repairing`). A slice runs anywhere (`run_slice`) and reports merge (`report`).
"""

from orgsync.ops.reconcile.report import (
    MEMBERSHIP_DRIFT_KINDS,
    SAMPLE_SIZE,
    UNREADABLE_RECORD,
    ReconcileReport,
    SkippedUser,
    merge,
)
from orgsync.ops.reconcile.running import ProgressCallback, run_slice
from orgsync.ops.reconcile.runs import reconcile
from orgsync.ops.reconcile.slices import MAX_TOTAL_SEGMENTS, Pass, Slice, Tables, all_slices

__all__ = [
    "MAX_TOTAL_SEGMENTS",
    "MEMBERSHIP_DRIFT_KINDS",
    "SAMPLE_SIZE",
    "UNREADABLE_RECORD",
    "Pass",
    "ProgressCallback",
    "ReconcileReport",
    "SkippedUser",
    "Slice",
    "Tables",
    "all_slices",
    "merge",
    "reconcile",
    "run_slice",
]
