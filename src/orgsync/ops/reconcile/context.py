"""What every slice of a run shares: the client, the tables, the readers and the repairer.

Built once per run (or per Lambda container) and shared by the slices' threads: everything in
it is thread-safe (boto3 clients are; the readers and the repairer hold no state).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from orgsync.domain.apply import DEFAULT_MAX_ATTEMPTS, ReplicationPort
from orgsync.ops.reconcile.repairing import Repairer
from orgsync.ops.reconcile.slices import Pass, Tables
from orgsync.store.organizations import OrganizationsReader
from orgsync.store.replication import DynamoReplicationStore
from orgsync.store.retry import Caller
from orgsync.store.users import UsersTable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Items per scan page. A full 1 MB page is a few thousand items, ~30 MB once botocore has parsed
# it: memory would then grow with the table until pages fill (measured: 102 MB at 2,000 users,
# 187 MB at 50,000, four slices). 500 items fill a page at any table size worth the name, and
# are five batches of 100 for the reads by key that follow, so the scan's own round trips
# stay a small share of a slice's requests (reads cost by size, not by page, on AWS).
SCAN_PAGE_ITEMS = 500

# (pass, items scanned since the last call, drifted users found since the last call).
ProgressCallback = Callable[[Pass, int, int], None]


def no_progress(pass_: Pass, items: int, drifted: int) -> None:
    del pass_, items, drifted


class Cancellation(Protocol):
    """A `threading.Event`, or a `multiprocessing` one shared with worker processes."""

    def is_set(self) -> bool: ...
    def set(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SliceContext:
    dynamodb: DynamoDBClient
    tables: Tables
    repair: bool
    caller: Caller
    users: UsersTable
    organizations: OrganizationsReader
    repairer: Repairer
    progress: ProgressCallback
    # Set to stop every slice sharing this context at its next batch (a failed slice, Ctrl-C).
    cancelled: Cancellation = field(default_factory=threading.Event)

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise SliceCancelledError("the run was interrupted")


class SliceCancelledError(Exception):
    """A slice stopped before its end: it has no report, and runs again next time."""


def slice_context(
    dynamodb: DynamoDBClient,
    *,
    tables: Tables,
    repair: bool,
    on_progress: ProgressCallback | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    store: ReplicationPort | None = None,
    cancelled: Cancellation | None = None,
) -> SliceContext:
    caller = Caller()
    users = UsersTable(dynamodb, tables.users)
    return SliceContext(
        dynamodb=dynamodb,
        tables=tables,
        repair=repair,
        caller=caller,
        users=users,
        organizations=OrganizationsReader(dynamodb, tables.organizations, caller),
        repairer=Repairer(
            users=users,
            store=store or DynamoReplicationStore(dynamodb, tables.organizations),
            max_attempts=max_attempts,
        ),
        progress=on_progress or no_progress,
        cancelled=cancelled or threading.Event(),
    )
