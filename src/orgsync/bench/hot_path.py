"""The consumer's hot path (decode + project + plan per stream record) and its obvious baseline.

The baseline reads the same fields the usual way, with Powertools' `DynamoDBRecord` data class
and boto3's `TypeDeserializer`, then plans with the same `decide`: the two differ only in
decoding. No I/O; shared by `orgsync bench` and the pytest-benchmark files in benchmarks/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)
from boto3.dynamodb.types import TypeDeserializer

from orgsync.bench.samples import HotPathSample, hot_path_samples
from orgsync.domain.model import ChangeKind, UserChange, UserState
from orgsync.domain.rule import Decision, decide
from orgsync.errors import OrgsyncError
from orgsync.schema.keys import USER_PREFIX, USER_SORT_KEY
from orgsync.schema.stream import decode_body

_DESERIALIZER = TypeDeserializer()

HotPath = Callable[[HotPathSample], Decision | None]


class HotPathMismatchError(OrgsyncError):
    """The baseline and orgsync decided differently: the comparison would be meaningless."""


def orgsync_path(sample: HotPathSample) -> Decision | None:
    """What the consumer does per message before any I/O: decode the body, then decide."""
    decoded = decode_body(sample.body)
    if not isinstance(decoded, UserChange):
        return None
    return decide(decoded, sample.current)


def baseline_path(sample: HotPathSample) -> Decision | None:
    """The same fields through Powertools' data class and boto3's deserializer, then decide."""
    record = DynamoDBRecord(json.loads(sample.body))
    stream = record.dynamodb
    if stream is None:
        return None
    keys = {name: _DESERIALIZER.deserialize(value) for name, value in stream["Keys"].items()}
    pk, sk = keys.get("pk"), keys.get("sk")
    if not isinstance(pk, str) or not pk.startswith(USER_PREFIX) or sk != USER_SORT_KEY:
        return None
    state: UserState | None = None
    kind = ChangeKind.REMOVE
    if record.event_name is not DynamoDBRecordEventName.REMOVE:
        kind = ChangeKind.UPSERT
        image = {
            name: _DESERIALIZER.deserialize(value) for name, value in stream["NewImage"].items()
        }
        state = UserState(
            email=image.get("email"),
            status=image.get("status"),
            organizations=frozenset(image.get("organizations") or ()),
        )
    change = UserChange(
        user_id=pk[len(USER_PREFIX) :],
        seq=int(stream.sequence_number or 0),
        event_id=record.event_id or "",
        kind=kind,
        state=state,
        created_at=stream.get("ApproximateCreationDateTime"),
    )
    return decide(change, sample.current)


@dataclass(frozen=True)
class HotPathFigures:
    """Microseconds per record (best of the repeats), and how many times faster orgsync is."""

    orgsync_us: float
    baseline_us: float
    records: int
    repeats: int

    @property
    def speedup(self) -> float:
        return self.baseline_us / self.orgsync_us if self.orgsync_us else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "orgsync_us_per_record": round(self.orgsync_us, 3),
            "baseline_us_per_record": round(self.baseline_us, 3),
            "speedup_vs_baseline": round(self.speedup, 2),
            "records": self.records,
            "repeats": self.repeats,
            "baseline": "Powertools DynamoDBRecord + boto3 TypeDeserializer, same decide()",
        }


def check_same_decisions(samples: Sequence[HotPathSample]) -> None:
    """Both paths must reach the same decision, or timing them compares different work."""
    for sample in samples:
        if orgsync_path(sample) != baseline_path(sample):
            raise HotPathMismatchError("orgsync and the baseline planned a sample differently")


def time_per_record(
    path: HotPath, samples: Sequence[HotPathSample], *, repeats: int, min_seconds: float
) -> float:
    """timeit's method: loop until one repeat lasts `min_seconds`, keep the best repeat.

    The best, not the mean: slower repeats measure other threads and the GC, not the code.
    """
    passes = 1
    while True:
        elapsed = _run(path, samples, passes)
        if elapsed >= min_seconds:
            break
        passes *= 2 if elapsed < min_seconds / 4 else 1 + int(min_seconds / max(elapsed, 1e-9))
    best = elapsed
    for _ in range(repeats - 1):
        best = min(best, _run(path, samples, passes))
    return best / (passes * len(samples)) * 1e6


def _run(path: HotPath, samples: Sequence[HotPathSample], passes: int) -> float:
    started = time.perf_counter()
    for _ in range(passes):
        for sample in samples:
            path(sample)
    return time.perf_counter() - started


def measure_hot_path(
    *, records: int = 1000, repeats: int = 5, min_seconds: float = 0.2
) -> HotPathFigures:
    samples = hot_path_samples(records)
    check_same_decisions(samples)
    return HotPathFigures(
        orgsync_us=time_per_record(orgsync_path, samples, repeats=repeats, min_seconds=min_seconds),
        baseline_us=time_per_record(
            baseline_path, samples, repeats=repeats, min_seconds=min_seconds
        ),
        records=records,
        repeats=repeats,
    )
