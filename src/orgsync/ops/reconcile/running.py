"""Running slices: one (`run_slice`, what a Lambda invocation or `--segment` runs) or a whole run
in this process (`reconcile`: the users pass's slices in threads, then the organizations pass's).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from orgsync.domain.apply import DEFAULT_MAX_ATTEMPTS, ReplicationPort
from orgsync.ops.reconcile.context import ProgressCallback, SliceContext, slice_context
from orgsync.ops.reconcile.organizations_pass import run_organizations_slice
from orgsync.ops.reconcile.report import ReconcileReport, merge
from orgsync.ops.reconcile.slices import Pass, Slice, Tables, all_slices
from orgsync.ops.reconcile.users_pass import run_users_slice

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["ProgressCallback", "reconcile", "run_slice", "run_slice_in"]

logger = logging.getLogger(__name__)

# Slices running at once in one process: enough to keep a table's partitions busy, and the
# client's connection pool (16 in the CLI's client config) not oversubscribed.
MAX_THREADS = 16


def run_slice_in(context: SliceContext, slice_: Slice) -> ReconcileReport:
    if slice_.pass_ is Pass.USERS:
        return run_users_slice(context, slice_)
    return run_organizations_slice(context, slice_)


def run_slice(
    dynamodb: DynamoDBClient,
    slice_: Slice,
    *,
    tables: Tables,
    repair: bool,
    on_progress: ProgressCallback | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    store: ReplicationPort | None = None,
) -> ReconcileReport:
    """Audit (and with `repair`, fix) one slice; safe while the pipeline runs (fenced repairs)."""
    context = slice_context(
        dynamodb,
        tables=tables,
        repair=repair,
        on_progress=on_progress,
        max_attempts=max_attempts,
        store=store,
    )
    return run_slice_in(context, slice_)


def reconcile(
    dynamodb: DynamoDBClient,
    *,
    users_table: str,
    organizations_table: str,
    segments: int = 4,
    repair: bool = False,
    on_progress: ProgressCallback | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    store: ReplicationPort | None = None,
) -> ReconcileReport:
    """Every slice of both passes, `segments` at a time in threads, pass after pass; merged.

    The organizations pass starts when the users pass is done, so with `repair` it judges the
    table the users pass left, and a repair of one pass is not counted again by the other.
    """
    started = time.monotonic()
    context = slice_context(
        dynamodb,
        tables=Tables(users_table, organizations_table),
        repair=repair,
        on_progress=on_progress,
        max_attempts=max_attempts,
        store=store,
    )
    reports: list[ReconcileReport] = []
    with ThreadPoolExecutor(max_workers=min(segments, MAX_THREADS)) as pool:
        for pass_ in Pass:
            slices = all_slices(segments, (pass_,))
            reports.extend(pool.map(lambda slice_: run_slice_in(context, slice_), slices))
    report = merge(reports, repair=repair, seconds=time.monotonic() - started)
    logger.info(
        "reconcile: %s users, %s memberships, %s drifted, %s repaired, %s conflicts, %.1fs",
        report.users_scanned,
        report.memberships_scanned,
        report.users_with_drift,
        report.users_repaired,
        report.conflicts_retried,
        report.seconds,
    )
    return report
