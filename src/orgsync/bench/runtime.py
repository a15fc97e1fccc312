"""What the local runtime costs a user between changes: start-up, idle CPU, a quiet drain, and
how soon one write is visible, at Pipes' pace (`local up`) and woken by the write (the fixture).

Runs on the embedded stack only, once the rate steps are over and the stack is quiet; every
request it makes counts as the probe's, apart from the pipeline's (`probe_calls`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orgsync.bench.ledger import probe_calls
from orgsync.bench.load import put_user
from orgsync.bench.probe import percentile
from orgsync.bench.samples import UserIds, orgs_for, token_of
from orgsync.local.servers.dynamodb_local import JAVA_ORIGIN
from orgsync.schema.keys import membership_key

if TYPE_CHECKING:
    from orgsync.local.stack import EmbeddedStack

# Between two reads of the membership a write should produce: fine enough for a p50 of tens of
# milliseconds, coarse enough not to load the store it measures.
_VISIBLE_POLL_SECONDS = 0.005
_VISIBLE_TIMEOUT_SECONDS = 10.0
# Between two probe writes: the pipeline is idle again before the next one.
_WRITE_SPACING_SECONDS = 0.2


@dataclass(frozen=True)
class RuntimeFigures:
    startup_seconds: float
    idle_seconds: float
    idle_cpu_percent_of_a_core: float
    quiet_drain_ms: list[float]
    visible_ms_paced: list[float]  # Pipes' pace: the pipe polls about 4 times a second
    visible_ms_woken: list[float]  # the pipe woken by the write (fixture, `local up --fast`)

    def as_dict(self) -> dict[str, Any]:
        return {
            "startup_seconds": round(self.startup_seconds, 3),
            "idle_seconds": self.idle_seconds,
            "idle_cpu_percent_of_a_core": round(self.idle_cpu_percent_of_a_core, 2),
            "quiet_drain_ms_p50": _p50(self.quiet_drain_ms),
            "quiet_drain_ms": [round(ms, 1) for ms in self.quiet_drain_ms],
            "write_visible_ms_p50_paced": _p50(self.visible_ms_paced),
            "write_visible_ms_p50_woken": _p50(self.visible_ms_woken),
            "write_visible_ms_paced": [round(ms, 1) for ms in self.visible_ms_paced],
            "write_visible_ms_woken": [round(ms, 1) for ms in self.visible_ms_woken],
        }


def measure_runtime(
    stack: EmbeddedStack,
    *,
    ids: UserIds,
    startup_seconds: float,
    idle_seconds: float,
    drains: int,
    writes: int,
    first_user: int,
) -> RuntimeFigures:
    """Measure on a quiet stack (after `drain`); writes users first_user.. with token 1..."""
    stack.drain()
    idle_cpu = _idle_cpu_percent(stack, idle_seconds)
    quiet = [_timed_ms(stack.drain) for _ in range(drains)]
    writer = _VisibleWriter(stack, ids, first_user)
    paced = writer.measure(writes, nullcontext)
    woken = writer.measure(writes, stack.pipes_woken_by_writes)
    return RuntimeFigures(
        startup_seconds=startup_seconds,
        idle_seconds=idle_seconds,
        idle_cpu_percent_of_a_core=idle_cpu,
        quiet_drain_ms=quiet,
        visible_ms_paced=paced,
        visible_ms_woken=woken,
    )


def _idle_cpu_percent(stack: EmbeddedStack, seconds: float) -> float:
    """This process's CPU (store, pipe, poller) and DynamoDB Local's, over `seconds` of quiet."""
    java_before = stack.store_cpu_seconds().get(JAVA_ORIGIN, 0.0)
    cpu_before, began = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    cpu = time.process_time() - cpu_before
    cpu += stack.store_cpu_seconds().get(JAVA_ORIGIN, 0.0) - java_before
    return 100 * cpu / (time.perf_counter() - began)


def _timed_ms(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return (time.perf_counter() - began) * 1000


class _VisibleWriter:
    """One user write at a time, each timed until its membership is readable."""

    def __init__(self, stack: EmbeddedStack, ids: UserIds, first_user: int) -> None:
        self._stack = stack
        self._dynamodb = stack.client("dynamodb")
        self._users_table = stack.model.table("UsersTable").name
        self._organizations_table = stack.model.table("OrganizationsTable").name
        self._ids = ids
        self._next_user = first_user

    def measure(self, writes: int, pace: Callable[[], AbstractContextManager[None]]) -> list[float]:
        found: list[float] = []
        with pace(), probe_calls():
            for _ in range(writes):
                user, self._next_user = self._next_user, self._next_user + 1
                time.sleep(_WRITE_SPACING_SECONDS)
                began = time.perf_counter()
                put_user(self._dynamodb, self._users_table, user, token=1, ids=self._ids)
                if self._wait_visible(user):
                    found.append((time.perf_counter() - began) * 1000)
        return found

    def _wait_visible(self, user: int) -> bool:
        key = membership_key(orgs_for(user, 1)[0], self._ids.of(user))
        for _ in _until(_VISIBLE_TIMEOUT_SECONDS):
            item = self._dynamodb.get_item(
                TableName=self._organizations_table, Key=key, ConsistentRead=True
            ).get("Item")
            if item is not None and token_of(item.get("email", {}).get("S", "")) == 1:
                return True
            time.sleep(_VISIBLE_POLL_SECONDS)
        return False


def _until(seconds: float) -> Iterator[None]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        yield


def _p50(values: list[float]) -> float | None:
    return round(percentile(values, 0.5), 1) if values else None
