"""The embedded store's CPU per replicated change, against its CPU per raw PutItem, same run.

The store counts its CPU by the origin each request names (`ledger.mark_origins`): the benchmark's
writers, its probe, and the pipeline (pipe, poller, handler). DynamoDB Local's Java process
cannot tell its callers apart, so its CPU during a step is split by arithmetic: the writes
cost what the ceiling phase measured per PutItem, and the rest is the pipeline's (the probe's
reads included there: they cannot be taken out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orgsync.bench.ledger import DRIVER_ORIGIN, PROBE_ORIGIN
from orgsync.local.servers.dynamodb_local import JAVA_ORIGIN

PIPELINE_ORIGIN = ""

CpuSeconds = Mapping[str, float]


def cpu_delta(after: CpuSeconds, before: CpuSeconds) -> dict[str, float]:
    return {key: after.get(key, 0.0) - before.get(key, 0.0) for key in set(after) | set(before)}


@dataclass(frozen=True)
class StoreCpuFigures:
    put_ms: float  # per raw PutItem (ceiling phase)
    per_change_ms: float  # the pipeline's, per replicated change (the sustained step)
    probe_ms_per_change: float  # the bench probe's reads, apart (moto only)
    java_split: bool  # DynamoDB Local's process CPU split by arithmetic

    @property
    def ratio(self) -> float | None:
        return self.per_change_ms / self.put_ms if self.put_ms > 0 else None

    def as_dict(self) -> dict[str, Any]:
        ratio = self.ratio
        return {
            "ms_per_raw_put_item": round(self.put_ms, 3),
            "ms_per_replicated_change": round(self.per_change_ms, 3),
            "ratio_to_raw_put_item": round(ratio, 3) if ratio is not None else None,
            "probe_ms_per_change": round(self.probe_ms_per_change, 3),
            "dynamodb_local_process_split_by_phase": self.java_split,
        }


def store_cpu_figures(
    *, ceiling: CpuSeconds, ceiling_writes: int, step: CpuSeconds, step_writes: int
) -> StoreCpuFigures | None:
    """From the store CPU (by origin) the ceiling phase and the sustained step spent."""
    if ceiling_writes <= 0 or step_writes <= 0:
        return None
    java_put = ceiling.get(JAVA_ORIGIN, 0.0) / ceiling_writes
    put = ceiling.get(DRIVER_ORIGIN, 0.0) / ceiling_writes + java_put
    java_pipeline = max(0.0, step.get(JAVA_ORIGIN, 0.0) - java_put * step_writes)
    pipeline = step.get(PIPELINE_ORIGIN, 0.0) + java_pipeline
    return StoreCpuFigures(
        put_ms=put * 1000,
        per_change_ms=pipeline / step_writes * 1000,
        probe_ms_per_change=step.get(PROBE_ORIGIN, 0.0) / step_writes * 1000,
        java_split=JAVA_ORIGIN in ceiling,
    )
