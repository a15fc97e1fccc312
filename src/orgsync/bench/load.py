"""The benchmark's writers: the store's write ceiling, and writes offered at a fixed rate.

Both use the same threads, client and real-shaped user items, so the ceiling is the limit the
paced writers face. Each user is written by one thread only, so its tokens grow in write order
(the visibility probe relies on it). Talks to DynamoDB only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orgsync.bench.ledger import driver_calls
from orgsync.bench.samples import SEED_SHAPED_IDS, UserIds, email_for, orgs_for, user_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

OnAck = Callable[[int, int, float], None]  # (user index, token, acked at perf_counter)


@dataclass(frozen=True)
class CeilingFigures:
    writes: int
    seconds: float
    writers: int
    table: str

    @property
    def writes_per_second(self) -> float:
        return self.writes / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "writes_per_second": round(self.writes_per_second, 1),
            "writes": self.writes,
            "seconds": round(self.seconds, 3),
            "writers": self.writers,
            "table": self.table,
        }


@dataclass(frozen=True)
class OfferFigures:
    offered_per_second: float
    writes: int
    seconds: float  # from the first scheduled write to the last acknowledgement
    behind_schedule: int  # writes that started more than 50 ms after their slot

    @property
    def achieved_per_second(self) -> float:
        return self.writes / self.seconds if self.seconds else 0.0


def put_user(
    dynamodb: DynamoDBClient, table: str, user: int, token: int, ids: UserIds = SEED_SHAPED_IDS
) -> None:
    """One user write exactly as the replication phases make it (2 orgs, token in the email)."""
    dynamodb.put_item(
        TableName=table,
        Item=user_item(
            ids.of(user), email=email_for(user, token), organizations=orgs_for(user, token)
        ),
    )


def measure_ceiling(
    dynamodb: DynamoDBClient,
    table: str,
    *,
    writers: int,
    seconds: float,
    users: int,
    ids: UserIds = SEED_SHAPED_IDS,
) -> CeilingFigures:
    """Closed loop: every writer puts users back to back for `seconds`."""
    counts = [0] * writers
    deadline = [0.0]

    def write(index: int, stopping: threading.Event) -> None:
        token = 0
        while time.perf_counter() < deadline[0] and not stopping.is_set():
            user = (token * writers + index) % users
            put_user(dynamodb, table, user, token, ids)
            counts[index] += 1
            token += 1

    crew = _Writers(writers, write, name="orgsync-bench-ceiling")
    began = time.perf_counter()
    deadline[0] = began + seconds
    crew.run()
    return CeilingFigures(
        writes=sum(counts), seconds=time.perf_counter() - began, writers=writers, table=table
    )


def offer_writes(
    dynamodb: DynamoDBClient,
    table: str,
    *,
    rate: float,
    seconds: float,
    writers: int,
    users: int,
    first_token: int,
    on_ack: OnAck,
    burst: int = 1,
    ids: UserIds = SEED_SHAPED_IDS,
    on_write: Callable[[int], None] | None = None,
) -> OfferFigures:
    """Open loop: write `rate` users per second for `seconds`, whatever the pipeline does.

    Slot i is due at start + i/rate; with `burst` > 1 each slot writes one user `burst` times
    back to back (the coalescing case). Users are spread so that a user always lands on the
    same thread: `users` is rounded up to a multiple of `writers`. `on_write(user)` is called
    before each user's first write (to remember what to remove later).
    """
    users = -(-users // writers) * writers
    slots = max(1, round(rate * seconds / burst))
    interval = burst / rate
    behind = [0] * writers
    done = [0] * writers
    last_ack = [0.0] * writers
    began = [0.0]
    announced: set[int] = set()  # each user is written by one thread only

    def write(index: int, stopping: threading.Event) -> None:
        for slot in range(index, slots, writers):
            due = began[0] + slot * interval
            lateness = time.perf_counter() - due
            if lateness < 0:
                if stopping.wait(-lateness):
                    return
            elif lateness > 0.05:
                behind[index] += 1
            if stopping.is_set():
                return
            user = slot % users
            if on_write is not None and user not in announced:
                announced.add(user)
                on_write(user)
            for repeat in range(burst):
                token = first_token + slot * burst + repeat
                put_user(dynamodb, table, user, token, ids)
                acked = time.perf_counter()
                on_ack(user, token, acked)
                done[index] += 1
                last_ack[index] = acked

    crew = _Writers(writers, write, name="orgsync-bench-writer")
    began[0] = time.perf_counter() + 0.01
    crew.run()
    return OfferFigures(
        offered_per_second=rate,
        writes=sum(done),
        seconds=max(max(last_ack) - began[0], 1e-9),
        behind_schedule=sum(behind),
    )


class _Writers:
    """Writer threads that start together, and that stop before `run` returns or raises: after
    an interrupt (Ctrl-C) no write may land once the caller starts removing what was written.

    Completion is signalled by events, not `Thread.join`: on CPython 3.11 a join interrupted
    by KeyboardInterrupt marks the still-running thread as stopped (the bpo-45274 fix releases
    its lock), so a second join would return while the thread still writes.
    """

    def __init__(
        self, count: int, work: Callable[[int, threading.Event], None], *, name: str
    ) -> None:
        self._start = threading.Barrier(count + 1)
        self._stopping = threading.Event()
        self._finished = [threading.Event() for _ in range(count)]
        self._work = work
        for index in range(count):
            threading.Thread(
                target=self._run_one, args=(index,), name=f"{name}-{index}", daemon=True
            ).start()

    def run(self) -> None:
        """Release every writer at once and wait until all are done."""
        try:
            self._start.wait()
            self._wait_for_all()
        except BaseException:
            self._stopping.set()
            self._start.abort()
            self._wait_for_all()
            raise

    def _wait_for_all(self) -> None:
        for finished in self._finished:
            finished.wait()

    def _run_one(self, index: int) -> None:
        try:
            with driver_calls():
                try:
                    self._start.wait()
                except threading.BrokenBarrierError:  # called off before the start
                    return
                self._work(index, self._stopping)
        finally:
            self._finished[index].set()
