"""Reconcile throughput against the raw parallel-scan rate of the same users table, same run.

The raw scan is the floor any reconcile must pay (it reads every user); the ratio says what
the audit, the organizations-table scan and the bookkeeping add. Talks to DynamoDB only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orgsync.ops.reconcile import reconcile
from orgsync.store.scan import parallel_scan

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class ReconcileFigures:
    users: int
    organization_items: int
    raw_scan_users_per_second: float
    raw_scan_organizations_items_per_second: float
    # Users per second of scanning the users table, then the organizations table: the reads a
    # reconcile cannot avoid, so a ratio near 1 means the audit itself costs nothing extra.
    raw_scan_both_users_per_second: float
    reconcile_users_per_second: float
    users_with_drift: int
    segments: int
    repeats: int

    @property
    def ratio(self) -> float:
        """Audit ÷ scanning both tables (each in parallel segments, one after the other)."""
        if not self.raw_scan_both_users_per_second:
            return 0.0
        return self.reconcile_users_per_second / self.raw_scan_both_users_per_second

    def as_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "organization_items": self.organization_items,
            "raw_scan_users_per_second": round(self.raw_scan_users_per_second, 1),
            "raw_scan_organization_items_per_second": round(
                self.raw_scan_organizations_items_per_second, 1
            ),
            "raw_scan_both_tables_users_per_second": round(self.raw_scan_both_users_per_second, 1),
            "reconcile_users_per_second": round(self.reconcile_users_per_second, 1),
            "ratio_to_raw_scan_of_users_table": round(
                self.reconcile_users_per_second / self.raw_scan_users_per_second, 3
            )
            if self.raw_scan_users_per_second
            else None,
            "ratio_to_raw_scan_of_both_tables": round(self.ratio, 3),
            "users_with_drift": self.users_with_drift,
            "segments": self.segments,
            "repeats": self.repeats,
        }


def _scan(dynamodb: DynamoDBClient, table: str, segments: int) -> tuple[int, float]:
    """Items read and seconds taken by one parallel scan."""
    started = time.perf_counter()
    items = len(parallel_scan(dynamodb, table, segments=segments))
    return items, max(time.perf_counter() - started, 1e-9)


def measure_reconcile(
    dynamodb: DynamoDBClient,
    *,
    users_table: str,
    organizations_table: str,
    segments: int = 4,
    repeats: int = 1,
) -> ReconcileFigures:
    """Alternate raw scans and audit-only reconcile passes; keep the best rate of each."""
    best_users = best_orgs = best_both = best_reconcile = 0.0
    users = org_items = drift = 0
    for _ in range(repeats):
        users, users_seconds = _scan(dynamodb, users_table, segments)
        org_items, orgs_seconds = _scan(dynamodb, organizations_table, segments)
        report = reconcile(
            dynamodb,
            users_table=users_table,
            organizations_table=organizations_table,
            segments=segments,
        )
        drift = report.users_with_drift
        best_users = max(best_users, users / users_seconds)
        best_orgs = max(best_orgs, org_items / orgs_seconds)
        best_both = max(best_both, users / (users_seconds + orgs_seconds))
        best_reconcile = max(best_reconcile, report.users_per_second)
    return ReconcileFigures(
        users=users,
        organization_items=org_items,
        raw_scan_users_per_second=best_users,
        raw_scan_organizations_items_per_second=best_orgs,
        raw_scan_both_users_per_second=best_both,
        reconcile_users_per_second=best_reconcile,
        users_with_drift=drift,
        segments=segments,
        repeats=repeats,
    )
