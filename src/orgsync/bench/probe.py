"""Replication lag as a reader sees it: write acknowledged → membership visible (consistent read).

Every benchmark write carries a token in the user's email; the membership of the user's first
org (fixed per user) copies it. A probe thread reads the expected membership items with
consistent BatchGetItem (100 keys per request, so probing costs the store little) and records,
for each write, when a token at least as new was first seen. Talks to DynamoDB only.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orgsync.bench.ledger import probe_calls
from orgsync.bench.samples import SEED_SHAPED_IDS, UserIds, orgs_for, token_of
from orgsync.schema.keys import membership_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_BATCH_GET_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Seen:
    """One write: when it was acknowledged and when its membership became visible (or None)."""

    acked_at: float
    visible_at: float | None

    @property
    def lag(self) -> float | None:
        return None if self.visible_at is None else self.visible_at - self.acked_at


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (the value at rank ceil(q·n)): always an observed lag."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def lag_summary_ms(seen: Sequence[Seen]) -> dict[str, float | int | None]:
    lags = [lag * 1000 for lag in (s.lag for s in seen) if lag is not None]
    if not lags:
        return {"p50": None, "p95": None, "p99": None, "max": None, "count": 0}
    return {
        "p50": round(percentile(lags, 0.50), 1),
        "p95": round(percentile(lags, 0.95), 1),
        "p99": round(percentile(lags, 0.99), 1),
        "max": round(max(lags), 1),
        "count": len(lags),
    }


# The adaptive sweep (VisibilityProbe._sweep_interval): at least this many sweeps per lag.
_SWEEPS_PER_LAG = 20
_MAX_SWEEP_SECONDS = 0.25


class VisibilityProbe:
    """Polls the expected membership items of pending writes until each is visible."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        organizations_table: str,
        *,
        min_sweep_seconds: float = 0.02,
        ids: UserIds = SEED_SHAPED_IDS,
    ) -> None:
        self._dynamodb = dynamodb
        self._ids = ids
        self._table = organizations_table
        self._min_sweep = min_sweep_seconds
        self._lock = threading.Lock()
        # user index → [(token, acked_at)], tokens increasing (one writer thread per user)
        self._pending: dict[int, list[tuple[int, float]]] = {}
        self._done: list[Seen] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.requests = 0
        self.sweeps = 0

    def expect(self, user: int, token: int, acked_at: float) -> None:
        with self._lock:
            self._pending.setdefault(user, []).append((token, acked_at))

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(len(writes) for writes in self._pending.values())

    def take_results(self) -> list[Seen]:
        """What became visible since the last call, plus whatever is still pending (unseen)."""
        with self._lock:
            results = self._done + [
                Seen(acked_at, None) for writes in self._pending.values() for _, acked_at in writes
            ]
            self._done, self._pending = [], {}
        return results

    def wait_until_visible(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.pending:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="orgsync-bench-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        with probe_calls():
            while not self._stop.is_set():
                started = time.monotonic()
                with self._lock:
                    users = list(self._pending)
                    oldest = min((writes[0][1] for writes in self._pending.values()), default=None)
                for offset in range(0, len(users), _BATCH_GET_LIMIT):
                    self._probe(users[offset : offset + _BATCH_GET_LIMIT])
                self.sweeps += 1
                rest = self._sweep_interval(oldest) - (time.monotonic() - started)
                if rest > 0:
                    self._stop.wait(rest)

    def _sweep_interval(self, oldest_acked_at: float | None) -> float:
        """Adaptive: a sweep every `min_sweep` while writes are fresh, and less often the
        longer the oldest write has waited, so that a backlog is not measured by adding to it:
        the lag is overstated by at most ~1/_SWEEPS_PER_LAG of itself (and min_sweep)."""
        if oldest_acked_at is None:
            return self._min_sweep
        waited = time.perf_counter() - oldest_acked_at
        return min(_MAX_SWEEP_SECONDS, max(self._min_sweep, waited / _SWEEPS_PER_LAG))

    def _probe(self, users: list[int]) -> None:
        keys = [membership_key(orgs_for(user, 0)[0], self._ids.of(user)) for user in users]
        by_user_id = {self._ids.of(user): user for user in users}
        response = self._dynamodb.batch_get_item(
            RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
        )
        self.requests += 1
        # Seen when the response arrived: the lag is over- rather than under-stated.
        now = time.perf_counter()
        for item in response.get("Responses", {}).get(self._table, []):
            self._record(by_user_id, item, now)

    def _record(self, by_user_id: dict[str, int], item: dict[str, Any], now: float) -> None:
        user = by_user_id.get(item.get("user_id", {}).get("S", ""))
        token = token_of(item.get("email", {}).get("S", ""))
        if user is None or token is None:
            return
        with self._lock:
            writes = self._pending.get(user)
            if not writes:
                return
            # A newer state visible means every older write of the user is visible too
            # (coalesced or overtaken writes are replicated by the newer one).
            while writes and writes[0][0] <= token:
                _, acked_at = writes.pop(0)
                self._done.append(Seen(acked_at, now))
            if not writes:
                del self._pending[user]
