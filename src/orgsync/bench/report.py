"""Every figure of one bench run, the headline summary, the targets met or missed, and the JSON.

Pure arithmetic over what the phases measured (and the machine it ran on); no I/O but reading
the machine's facts.
"""

from __future__ import annotations

import math
import os
import platform
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
    TARGET_LAG_P99_MS,
    TARGET_RATIO,
    TARGET_RECONCILE_RATIO,
    TARGET_REQUESTS_PER_CHANGE,
    BenchOptions,
)
from orgsync.bench.pricing import Prices, Usage, estimate_cost
from orgsync.bench.probe import Seen, lag_summary_ms, percentile
from orgsync.bench.reconcile import ReconcileFigures


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
        return {
            "sustained_replication": check(
                f">= {TARGET_RATIO} x ceiling, lag p99 <= {TARGET_LAG_P99_MS:.0f} ms",
                {"ratio": ratio, "lag_ms_p99": p99},
                None
                if ratio is None or p99 is None
                else ratio >= TARGET_RATIO and p99 <= TARGET_LAG_P99_MS,
            ),
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
    )


def _median_lag(seen: list[Seen]) -> float:
    """Median lag in seconds; a write never seen counts as infinitely late."""
    lags = [math.inf if s.lag is None else s.lag for s in seen]
    return percentile(lags, 0.5) if lags else 0.0


def _milliseconds(seconds: float) -> float | None:
    return round(seconds * 1000, 1) if math.isfinite(seconds) else None
