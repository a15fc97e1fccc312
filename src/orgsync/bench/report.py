"""Every figure of one bench run, the headline summary, the targets met or missed, and the JSON.

Pure arithmetic over what the phases measured (and the machine it ran on); no I/O but reading
the machine's facts.
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

from orgsync.bench.cleanup import CleanupFigures
from orgsync.bench.consumer import ConsumerFigures
from orgsync.bench.costs import PhaseCosts
from orgsync.bench.hot_path import HotPathFigures
from orgsync.bench.ledger import RequestCounts
from orgsync.bench.load import CeilingFigures, OfferFigures
from orgsync.bench.plan import (
    ACHIEVED_SHARE,
    BACKLOG_MARGIN_SECONDS,
    TARGET_HOT_PATH_US,
    TARGET_IDLE_CPU_PERCENT,
    TARGET_LAG_P99_MS,
    TARGET_QUIET_DRAIN_MS,
    TARGET_RATIO,
    TARGET_RATIO_BY_STORE,
    TARGET_RECONCILE_RATIO,
    TARGET_REQUESTS_PER_CHANGE,
    TARGET_STORE_CPU_RATIO,
    TARGET_WOKEN_VISIBLE_MS,
    BenchOptions,
)
from orgsync.bench.pricing import Prices, Usage, estimate_cost
from orgsync.bench.probe import Seen, lag_summary_ms, percentile
from orgsync.bench.reconcile import ReconcileFigures
from orgsync.bench.runtime import RuntimeFigures
from orgsync.bench.store_cpu import StoreCpuFigures, store_cpu_figures


@dataclass(frozen=True)
class StepFigures:
    """One offered rate through the running pipeline."""

    offered_per_second: float
    burst: int
    writes: int
    achieved_write_per_second: float
    behind_schedule: int
    replicated: int
    replicated_per_second: float
    seconds_to_last_visible: float
    lag_ms: dict[str, float | int | None]
    early_lag_p50: float  # seconds, first quarter of the writes (by acknowledgement)
    late_lag_p50: float  # seconds, last quarter
    drained: bool
    costs: PhaseCosts | None
    store_cpu: dict[str, float] = field(default_factory=dict)  # seconds, by origin

    @property
    def kept_up(self) -> bool:
        return (
            self.achieved_write_per_second >= ACHIEVED_SHARE * self.offered_per_second
            and self.replicated == self.writes
            and self.late_lag_p50 <= self.early_lag_p50 + BACKLOG_MARGIN_SECONDS
        )

    def as_dict(self, lambda_seconds: float) -> dict[str, Any]:
        return {
            "offered_per_second": round(self.offered_per_second, 1),
            "burst": self.burst,
            "writes": self.writes,
            "achieved_write_per_second": round(self.achieved_write_per_second, 1),
            "behind_schedule": self.behind_schedule,
            "replicated": self.replicated,
            "replicated_per_second": round(self.replicated_per_second, 1),
            "seconds_to_last_visible": round(self.seconds_to_last_visible, 3),
            "kept_up": self.kept_up,
            "lag_p50_ms_first_quarter": _milliseconds(self.early_lag_p50),
            "lag_p50_ms_last_quarter": _milliseconds(self.late_lag_p50),
            "drained": self.drained,
            "lag_ms": self.lag_ms,
            "costs": self.costs.as_dict(lambda_seconds) if self.costs else None,
            "store_cpu_seconds": {
                origin or "pipeline": round(seconds, 4)
                for origin, seconds in sorted(self.store_cpu.items())
            },
        }


@dataclass
class BenchReport:
    """Every figure of one run; `as_json()` is what `--json` writes."""

    options: BenchOptions
    machine: dict[str, Any]
    hot_path: HotPathFigures | None = None
    ceiling: CeilingFigures | None = None
    consumer: ConsumerFigures | None = None
    steps: list[StepFigures] = field(default_factory=list)
    burst_step: StepFigures | None = None
    reconcile: ReconcileFigures | None = None
    # On an endpoint the run did not start: what it removed of what it wrote (None otherwise).
    cleanup: CleanupFigures | None = None
    requests_counted: bool = True
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    startup_seconds: float = 0.0
    # The embedded store's CPU by origin during the ceiling phase (raw PutItems).
    store_cpu_ceiling: dict[str, float] = field(default_factory=dict)
    probe_requests: int = 0
    runtime: RuntimeFigures | None = None

    # -- headline figures

    @property
    def sustained(self) -> StepFigures | None:
        """The fastest step that kept up; the first step when none did."""
        kept = [step for step in self.steps if step.kept_up]
        if kept:
            return max(kept, key=lambda step: step.replicated_per_second)
        return self.steps[0] if self.steps else None

    @property
    def peak_replicated_per_second(self) -> float:
        return max((step.replicated_per_second for step in self.steps), default=0.0)

    @property
    def lambda_seconds(self) -> float:
        return self.consumer.handler_seconds_per_full_batch if self.consumer else 0.0

    def pipeline_costs(self) -> PhaseCosts | None:
        """All rate steps together (no bursts): the pipeline's cost per change."""
        costed = [step.costs for step in self.steps if step.costs is not None]
        if not costed:
            return None
        counts = RequestCounts()
        for costs in costed:
            counts = RequestCounts(
                {
                    key: counts.counts.get(key, 0) + costs.counts.counts.get(key, 0)
                    for key in set(counts.counts) | set(costs.counts.counts)
                }
            )
        return PhaseCosts(counts, costed[0].names, sum(c.user_changes for c in costed))

    def store_cpu(self) -> StoreCpuFigures | None:
        """At the sustained step: the store's CPU per replicated change vs per raw PutItem."""
        sustained = self.sustained
        if sustained is None or self.ceiling is None or not self.store_cpu_ceiling:
            return None
        return store_cpu_figures(
            ceiling=self.store_cpu_ceiling,
            ceiling_writes=self.ceiling.writes,
            step=sustained.store_cpu,
            step_writes=sustained.writes,
        )

    def target_ratio(self) -> float:
        store = self.machine.get("store", "")
        return TARGET_RATIO_BY_STORE.get(store, TARGET_RATIO)

    def summary(self) -> dict[str, Any]:
        sustained = self.sustained
        ceiling = self.ceiling.writes_per_second if self.ceiling else None
        rate = sustained.replicated_per_second if sustained else None
        costs = self.pipeline_costs()
        direct = (
            self.consumer.scenario("distinct users, org move").as_dict() if self.consumer else {}
        )
        return {
            "ceiling_writes_per_second": round(ceiling, 1) if ceiling else None,
            "replication_changes_per_second": round(rate, 1) if rate is not None else None,
            "replication_ratio_to_ceiling": round(rate / ceiling, 3) if rate and ceiling else None,
            "replication_peak_changes_per_second": round(self.peak_replicated_per_second, 1),
            "lag_ms_p50": sustained.lag_ms["p50"] if sustained else None,
            "lag_ms_p95": sustained.lag_ms["p95"] if sustained else None,
            "lag_ms_p99": sustained.lag_ms["p99"] if sustained else None,
            "lag_ms_max": sustained.lag_ms["max"] if sustained else None,
            "requests_per_change": (
                costs.as_dict(self.lambda_seconds)["per_user_change"] if costs else None
            ),
            "consumer_dynamodb_requests_per_applied_change": direct.get(
                "dynamodb_requests_per_applied_change"
            ),
            "hot_path_us_per_record": round(self.hot_path.orgsync_us, 2) if self.hot_path else None,
            "hot_path_speedup_vs_baseline": round(self.hot_path.speedup, 2)
            if self.hot_path
            else None,
            "reconcile_ratio_to_raw_scan_of_both_tables": round(self.reconcile.ratio, 3)
            if self.reconcile
            else None,
            "price_usd_per_million_user_changes": self._price(),
            **self._runtime_summary(),
        }

    def _runtime_summary(self) -> dict[str, Any]:
        cpu = self.store_cpu()
        runtime = self.runtime.as_dict() if self.runtime else {}
        return {
            "store_cpu_ms_per_replicated_change": round(cpu.per_change_ms, 3) if cpu else None,
            "store_cpu_ms_per_raw_put_item": round(cpu.put_ms, 3) if cpu else None,
            "store_cpu_ratio_to_raw_put_item": (
                round(cpu.ratio, 3) if cpu and cpu.ratio is not None else None
            ),
            "startup_seconds": round(self.startup_seconds, 3),
            "idle_cpu_percent_of_a_core": runtime.get("idle_cpu_percent_of_a_core"),
            "quiet_drain_ms_p50": runtime.get("quiet_drain_ms_p50"),
            "write_visible_ms_p50_paced": runtime.get("write_visible_ms_p50_paced"),
            "write_visible_ms_p50_woken": runtime.get("write_visible_ms_p50_woken"),
            "probe_requests": self.probe_requests,
        }

    def _price(self) -> float | None:
        costs = self.pipeline_costs()
        if costs is not None:
            return round(estimate_cost(costs.usage(self.lambda_seconds)).total, 4)
        if self.consumer is None:
            return None
        # No pipeline counted (external endpoint): price the consumer's part alone.
        scenario = self.consumer.scenario("distinct users, org move")
        usage = Usage(
            user_changes=scenario.records,
            transactional_item_writes=scenario.memberships_written + scenario.applied,
            standard_item_writes=0,
            consistent_item_reads=scenario.records,
            sqs_requests=0,
            lambda_invocations=scenario.batches,
            lambda_seconds_per_invocation=self.lambda_seconds,
            pipes_requests=0,
        )
        return round(estimate_cost(usage).total, 4)

    def targets(self) -> dict[str, dict[str, Any]]:
        summary = self.summary()
        hot = self.hot_path

        def check(target: str, measured: Any, met: bool | None) -> dict[str, Any]:
            return {"target": target, "measured": measured, "met": met}

        ratio, p99 = summary["replication_ratio_to_ceiling"], summary["lag_ms_p99"]
        per_change = summary["consumer_dynamodb_requests_per_applied_change"]
        reconcile_ratio = summary["reconcile_ratio_to_raw_scan_of_both_tables"]
        target_ratio = self.target_ratio()
        return {
            "sustained_replication": check(
                f">= {target_ratio} x ceiling, lag p99 <= {TARGET_LAG_P99_MS:.0f} ms",
                {"ratio": ratio, "lag_ms_p99": p99},
                None
                if ratio is None or p99 is None
                else ratio >= target_ratio and p99 <= TARGET_LAG_P99_MS,
            ),
            **self._runtime_targets(summary, check),
            "dynamodb_requests_per_applied_change": check(
                f"<= {TARGET_REQUESTS_PER_CHANGE} (full batches of distinct users)",
                per_change,
                None if per_change is None else per_change <= TARGET_REQUESTS_PER_CHANGE,
            ),
            "hot_path": check(
                f"<= {TARGET_HOT_PATH_US:.0f} us per record and faster than the baseline",
                summary["hot_path_us_per_record"],
                None if hot is None else hot.orgsync_us <= TARGET_HOT_PATH_US and hot.speedup > 1,
            ),
            "reconcile": check(
                f">= {TARGET_RECONCILE_RATIO} x raw parallel scan of both tables",
                reconcile_ratio,
                None if reconcile_ratio is None else reconcile_ratio >= TARGET_RECONCILE_RATIO,
            ),
        }

    def _runtime_targets(
        self, summary: dict[str, Any], check: Callable[[str, Any, bool | None], dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        def at_most(key: str, limit: float) -> bool | None:
            value = summary[key]
            return None if value is None else value <= limit

        return {
            "store_cpu_per_change": check(
                f"<= {TARGET_STORE_CPU_RATIO} x the store CPU of a raw PutItem",
                summary["store_cpu_ratio_to_raw_put_item"],
                at_most("store_cpu_ratio_to_raw_put_item", TARGET_STORE_CPU_RATIO),
            ),
            "idle_cpu": check(
                f"<= {TARGET_IDLE_CPU_PERCENT:g} % of a core",
                summary["idle_cpu_percent_of_a_core"],
                at_most("idle_cpu_percent_of_a_core", TARGET_IDLE_CPU_PERCENT),
            ),
            "quiet_drain": check(
                f"<= {TARGET_QUIET_DRAIN_MS:.0f} ms",
                summary["quiet_drain_ms_p50"],
                at_most("quiet_drain_ms_p50", TARGET_QUIET_DRAIN_MS),
            ),
            "write_visible_woken": check(
                f"p50 <= {TARGET_WOKEN_VISIBLE_MS:.0f} ms (pipe woken by writes, as the fixture)",
                summary["write_visible_ms_p50_woken"],
                at_most("write_visible_ms_p50_woken", TARGET_WOKEN_VISIBLE_MS),
            ),
        }

    def as_json(self) -> dict[str, Any]:
        lambda_seconds = self.lambda_seconds
        costs = self.pipeline_costs()
        return {
            "summary": self.summary(),
            "targets": self.targets(),
            "machine": self.machine,
            "plan": vars(self.options.plan) | {"fractions": list(self.options.plan.fractions)},
            "seconds": round(self.seconds, 1),
            "ceiling": self.ceiling.as_dict() if self.ceiling else None,
            "replication": {
                "steps": [step.as_dict(lambda_seconds) for step in self.steps],
                "sustained_step": self.steps.index(self.sustained) if self.sustained else None,
                "kept_up": f"writers achieved >= {ACHIEVED_SHARE} x the offered rate, every "
                "write seen, and the last quarter's median lag <= the first quarter's "
                f"+ {BACKLOG_MARGIN_SECONDS} s",
                "lag_definition": "write acknowledged -> membership seen by a consistent read",
            },
            "cost": {
                "requests_counted": self.requests_counted,
                "pipeline": costs.as_dict(lambda_seconds) if costs else None,
                "pipeline_bursts": self.burst_step.as_dict(lambda_seconds)
                if self.burst_step
                else None,
                "consumer_direct": self.consumer.as_dict() if self.consumer else None,
                "lambda_seconds_per_invocation": round(lambda_seconds, 4),
                "prices": vars(Prices()),
            },
            "hot_path": self.hot_path.as_dict() if self.hot_path else None,
            "reconcile": self.reconcile.as_dict() if self.reconcile else None,
            "runtime": self.runtime.as_dict() if self.runtime else None,
            "store_cpu": (cpu.as_dict() if (cpu := self.store_cpu()) else None),
            "cleanup": self.cleanup.as_dict() if self.cleanup else None,
            "notes": self.notes,
        }


def machine_info(options: BenchOptions) -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "store": "external" if options.endpoint_url else options.store,
        "endpoint_url": options.endpoint_url,
        "versions": {name: version(name) for name in ("boto3", "moto", "aws-lambda-powertools")},
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        # Other processes on the machine share its cores with every phase: read the figures
        # against this (1, 5, 15 minute load averages at the start and the end of the run).
        "load_average_start": load_average(),
        "command": options.command,
    }


def load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def step_figures(
    *,
    rate: float,
    burst: int,
    offered: OfferFigures,
    seen: list[Seen],
    began: float,
    drained: bool,
    costs: PhaseCosts | None,
    store_cpu: dict[str, float] | None = None,
) -> StepFigures:
    visible = sorted(s.visible_at for s in seen if s.visible_at is not None)
    # Output rate from the first to the last write seen, plus one write interval: a constant
    # lag does not lower it, a growing backlog does (then it is the pipeline's capacity).
    interval = 1 / offered.achieved_per_second if offered.achieved_per_second else 0.0
    span = visible[-1] - visible[0] + interval if visible else 0.0
    by_ack = sorted(seen, key=lambda s: s.acked_at)
    quarter = max(1, len(by_ack) // 4)
    return StepFigures(
        offered_per_second=rate,
        burst=burst,
        writes=offered.writes,
        achieved_write_per_second=offered.achieved_per_second,
        behind_schedule=offered.behind_schedule,
        replicated=len(visible),
        replicated_per_second=len(visible) / span if span > 0 else 0.0,
        seconds_to_last_visible=(visible[-1] - began) if visible else 0.0,
        early_lag_p50=_median_lag(by_ack[:quarter]),
        late_lag_p50=_median_lag(by_ack[-quarter:]),
        lag_ms=lag_summary_ms(seen),
        drained=drained,
        costs=costs,
        store_cpu=store_cpu or {},
    )


def _median_lag(seen: list[Seen]) -> float:
    """Median lag in seconds; a write never seen counts as infinitely late."""
    lags = [math.inf if s.lag is None else s.lag for s in seen]
    return percentile(lags, 0.5) if lags else 0.0


def _milliseconds(seconds: float) -> float | None:
    return round(seconds * 1000, 1) if math.isfinite(seconds) else None
