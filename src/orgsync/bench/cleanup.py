"""Leaving an endpoint the run did not start as it found it: remove the run's marked users, then
wait for the pipeline running there to remove their memberships.

Only users are deleted here: memberships are the replication's to remove (the REMOVE of each
user goes through the pipe and the consumer like any other change), and the REPLICATION
tombstones the consumer leaves stay until their TTL, as for any deleted user, so that a late
redrive of an old change cannot bring the memberships back. Talks to DynamoDB only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orgsync.bench.ledger import driver_calls
from orgsync.bench.samples import UserIds
from orgsync.store.replication import DynamoReplicationStore
from orgsync.store.users import UsersTable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_POLL_SECONDS = 0.2


class WrittenUsers:
    """The users a run wrote (by index), noted before each user's first write."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: set[int] = set()

    def add(self, user: int) -> None:
        with self._lock:
            self._users.add(user)

    def indices(self) -> list[int]:
        with self._lock:
            return sorted(self._users)


@dataclass(frozen=True)
class CleanupFigures:
    prefix: str
    users_deleted: int
    # Users whose removal the pipeline had not applied by the deadline: their memberships may
    # still exist, and go once it does (or with `orgsync reconcile --repair`).
    still_replicating: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id_prefix": self.prefix,
            "users_deleted": self.users_deleted,
            "still_replicating": self.still_replicating,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        done = f"removed {self.users_deleted} bench users ({self.prefix}…)"
        if not self.still_replicating:
            return f"{done}; the pipeline removed their memberships"
        return (
            f"{done}; the pipeline had not yet removed the memberships of "
            f"{self.still_replicating} of them (it will, or run `orgsync reconcile --repair`)"
        )


def remove_users(
    dynamodb: DynamoDBClient,
    *,
    users_table: str,
    organizations_table: str,
    ids: UserIds,
    users: Collection[int],
    timeout: float,
    workers: int = 4,
) -> CleanupFigures:
    """Delete the run's users, then wait up to `timeout` for their removal to replicate."""
    started = time.monotonic()
    user_ids = [ids.of(user) for user in sorted(users)]
    table = UsersTable(dynamodb, users_table)

    def delete(user_id: str) -> bool:
        with driver_calls():  # per thread: the pool's threads are the driver's too
            return table.delete(user_id)

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="orgsync-bench-cleanup") as pool:
        found = list(pool.map(delete, user_ids))
    existed = [user_id for user_id, was_there in zip(user_ids, found, strict=True) if was_there]
    waiting = _wait_until_removed(dynamodb, organizations_table, existed, timeout=timeout)
    return CleanupFigures(
        prefix=ids.prefix,
        users_deleted=len(existed),
        still_replicating=len(waiting),
        seconds=time.monotonic() - started,
    )


def _wait_until_removed(
    dynamodb: DynamoDBClient, organizations_table: str, user_ids: list[str], *, timeout: float
) -> set[str]:
    """The users whose REPLICATION record is not yet a settled tombstone when time runs out."""
    store = DynamoReplicationStore(dynamodb, organizations_table)
    waiting = set(user_ids)
    deadline = time.monotonic() + timeout
    with driver_calls():
        while waiting:
            states = store.read(waiting)
            waiting = {
                user_id
                for user_id, state in states.items()
                if state is None or not state.deleted or state.pending_seq is not None
            }
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(_POLL_SECONDS)
    return waiting
