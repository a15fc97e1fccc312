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
from orgsync.bench.samples import email_for, orgs_for, user_id_for, user_item

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


def put_user(dynamodb: DynamoDBClient, table: str, user: int, token: int) -> None:
    """One user write exactly as the replication phases make it (2 orgs, token in the email)."""
    dynamodb.put_item(
        TableName=table,
        Item=user_item(
            user_id_for(user), email=email_for(user, token), organizations=orgs_for(user, token)
        ),
    )


def measure_ceiling(
    dynamodb: DynamoDBClient, table: str, *, writers: int, seconds: float, users: int
) -> CeilingFigures:
    """Closed loop: every writer puts users back to back for `seconds`."""
    counts = [0] * writers
    start = threading.Barrier(writers + 1)
    deadline = [0.0]

    def write(index: int) -> None:
        with driver_calls():
            start.wait()
            token = 0
            while time.perf_counter() < deadline[0]:
                user = (token * writers + index) % users
                put_user(dynamodb, table, user, token)
                counts[index] += 1
                token += 1

    threads = [
        threading.Thread(target=write, args=(i,), name=f"orgsync-bench-ceiling-{i}", daemon=True)
        for i in range(writers)
    ]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
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
) -> OfferFigures:
    """Open loop: write `rate` users per second for `seconds`, whatever the pipeline does.

    Slot i is due at start + i/rate; with `burst` > 1 each slot writes one user `burst` times
    back to back (the coalescing case). Users are spread so that a user always lands on the
    same thread: `users` is rounded up to a multiple of `writers`.
    """
    users = -(-users // writers) * writers
    slots = max(1, round(rate * seconds / burst))
    interval = burst / rate
    behind = [0] * writers
    done = [0] * writers
    last_ack = [0.0] * writers
    start = threading.Barrier(writers + 1)
    began = [0.0]

    def write(index: int) -> None:
        with driver_calls():
            start.wait()
            for slot in range(index, slots, writers):
                due = began[0] + slot * interval
                lateness = time.perf_counter() - due
                if lateness < 0:
                    time.sleep(-lateness)
                elif lateness > 0.05:
                    behind[index] += 1
                user = slot % users
                for repeat in range(burst):
                    token = first_token + slot * burst + repeat
                    put_user(dynamodb, table, user, token)
                    acked = time.perf_counter()
                    on_ack(user, token, acked)
                    done[index] += 1
                    last_ack[index] = acked

    threads = [
        threading.Thread(target=write, args=(i,), name=f"orgsync-bench-writer-{i}", daemon=True)
        for i in range(writers)
    ]
    for thread in threads:
        thread.start()
    began[0] = time.perf_counter() + 0.01
    start.wait()
    for thread in threads:
        thread.join()
    return OfferFigures(
        offered_per_second=rate,
        writes=sum(done),
        seconds=max(max(last_ack) - began[0], 1e-9),
        behind_schedule=sum(behind),
    )
