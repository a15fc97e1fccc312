"""Running one slice: `run_slice`, what a Lambda invocation or `--segment` runs (whole runs of
many slices, in threads or processes: `runs`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orgsync.domain.apply import DEFAULT_MAX_ATTEMPTS, ReplicationPort
from orgsync.ops.reconcile.context import ProgressCallback, SliceContext, slice_context
from orgsync.ops.reconcile.organizations_pass import run_organizations_slice
from orgsync.ops.reconcile.report import ReconcileReport
from orgsync.ops.reconcile.slices import Pass, Slice, Tables
from orgsync.ops.reconcile.users_pass import run_users_slice

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["ProgressCallback", "run_slice", "run_slice_in"]

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
