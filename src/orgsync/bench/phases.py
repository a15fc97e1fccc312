"""`orgsync bench`: every phase in one run, against baselines taken in the same run.

Order matters: the hot path is timed before any stack thread runs; the ceiling is measured on
a copy of the users table (same keys, same stream) while the pipeline idles, because writes to
the users table itself would become pipeline backlog; then rates climb while the pipeline runs.
Runs on the embedded local stack or, with an endpoint, against a pipeline running elsewhere:
there it writes only users under a marked per-run prefix, and removes them at the end, whether
the run finished, failed or was interrupted.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from orgsync.bench.cleanup import CleanupFigures, WrittenUsers, remove_users
from orgsync.bench.consumer import measure_consumer
from orgsync.bench.costs import PhaseCosts, PipelineNames
from orgsync.bench.hot_path import measure_hot_path
from orgsync.bench.ledger import RequestLedger, driver_calls, mark_origins
from orgsync.bench.load import measure_ceiling, offer_writes
from orgsync.bench.plan import BenchOptions, BenchPlan
from orgsync.bench.probe import VisibilityProbe
from orgsync.bench.reconcile import measure_reconcile
from orgsync.bench.report import BenchReport, StepFigures, load_average, machine_info, step_figures
from orgsync.bench.runtime import measure_runtime
from orgsync.bench.samples import SEED_SHAPED_IDS, UserIds
from orgsync.bench.store_cpu import cpu_delta
from orgsync.bench.tables import copy_table, drop_table
from orgsync.errors import OrgsyncError
from orgsync.local.errors import DrainTimeoutError
from orgsync.local.stack import EmbeddedStack, StackOptions

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


def run_bench(options: BenchOptions, *, on_progress: Progress | None = None) -> BenchReport:
    """Run every phase; returns the figures (the CLI renders and writes them)."""
    progress = on_progress or (lambda _: None)
    plan = options.plan
    started = time.perf_counter()
    report = BenchReport(options=options, machine=machine_info(options))
    # Before any stack thread exists: other threads would be timed along with the code.
    progress("hot path: decode + project + plan vs the Powertools baseline")
    report.hot_path = measure_hot_path(
        records=plan.hot_path_records,
        repeats=plan.hot_path_repeats,
        min_seconds=plan.hot_path_min_seconds,
    )
    external = options.endpoint_url is not None
    stack_options = StackOptions(
        template_path=options.template_path,
        port=0,
        store=options.store,
        endpoint_url=options.endpoint_url,
        # Per-record INFO lines of thousands of records would bury the console.
        parameters={"LogLevel": "WARNING"}
        | ({"NamePrefix": options.name_prefix} if options.name_prefix else {}),
        run_pipeline=not external,
        dynamodb_local_dir=options.dynamodb_local_dir,
    )
    ids = SEED_SHAPED_IDS
    if external:
        ids = UserIds.marked(uuid.uuid4().hex[:8])
        report.requests_counted = False
        report.notes.append(
            "external endpoint: the pipeline runs elsewhere, so its requests are not counted "
            "here; requests per change come from the consumer measured directly"
        )
        report.notes.append(f"external endpoint: users written as {ids.prefix}…, then removed")
    written = WrittenUsers()
    began = time.perf_counter()
    with EmbeddedStack(stack_options) as stack, RequestLedger() as ledger:
        report.startup_seconds = time.perf_counter() - began
        for service in ("dynamodb", "sqs", "dynamodbstreams"):
            mark_origins(stack.client(service))
        try:
            _run_phases(stack, ledger, report, progress, phase_ids=_PhaseIds(ids, written))
        finally:
            if external:
                progress(f"cleanup: removing the users this run wrote ({ids.prefix}…)")
                report.cleanup = _remove_written_users(stack, ids, written, plan)
                progress(report.cleanup.summary())
    report.seconds = time.perf_counter() - started
    report.machine["load_average_end"] = load_average()
    return report


class BenchCleanupError(OrgsyncError):
    """The users a run wrote to an external endpoint could not all be removed."""


def _remove_written_users(
    stack: EmbeddedStack, ids: UserIds, written: WrittenUsers, plan: BenchPlan
) -> CleanupFigures:
    try:
        return remove_users(
            stack.client("dynamodb"),
            users_table=stack.model.table("UsersTable").name,
            organizations_table=stack.model.table("OrganizationsTable").name,
            ids=ids,
            users=written.indices(),
            timeout=plan.drain_timeout,
            workers=plan.writers,
        )
    except (ClientError, BotoCoreError) as exc:
        raise BenchCleanupError(
            f"could not remove this run's users ({exc}); delete the users whose id starts "
            f"with {ids.prefix} yourself"
        ) from exc


@dataclass(frozen=True)
class _PhaseIds:
    """How the phases name the users they write, and where they note which ones they wrote."""

    ids: UserIds
    written: WrittenUsers


def _run_phases(
    stack: EmbeddedStack,
    ledger: RequestLedger,
    report: BenchReport,
    progress: Progress,
    *,
    phase_ids: _PhaseIds,
) -> None:
    external = report.options.endpoint_url is not None
    plan = report.options.plan
    model = stack.model
    dynamodb = stack.client("dynamodb")
    users_table = model.table("UsersTable").name
    organizations_table = model.table("OrganizationsTable").name
    names = PipelineNames(
        organizations_table=organizations_table,
        main_queue=model.queue("UserStreamQueue").name,
        dead_letter_queue=model.queue("UserStreamDeadLetterQueue").name,
        checkpoint_table=_checkpoint_table(stack),
    )
    suffix = datetime.now(UTC).strftime("%H%M%S")
    with driver_calls():
        progress("ceiling: raw user writes on a copy of the users table")
        scratch = copy_table(dynamodb, users_table, f"{users_table}-bench-ceiling-{suffix}")
        cpu_before = stack.store_cpu_seconds()
        try:
            report.ceiling = measure_ceiling(
                dynamodb,
                scratch,
                writers=plan.writers,
                seconds=plan.ceiling_seconds,
                users=plan.users,
                ids=phase_ids.ids,
            )
        finally:
            drop_table(dynamodb, scratch)
        report.store_cpu_ceiling = cpu_delta(stack.store_cpu_seconds(), cpu_before)
        progress("consumer alone: full batches through BatchConsumer")
        scratch = copy_table(dynamodb, organizations_table, f"{organizations_table}-bench-{suffix}")
        try:
            report.consumer = measure_consumer(
                dynamodb,
                stack.client("sqs"),
                organizations_table=scratch,
                dead_letter_queue_url=stack.resources.queue_urls["UserStreamDeadLetterQueue"],
                batches=plan.consumer_batches,
            )
        finally:
            drop_table(dynamodb, scratch)

    probe = VisibilityProbe(dynamodb, organizations_table, ids=phase_ids.ids)
    probe.start()
    try:
        climber = _Climber(
            stack, ledger, probe, names, plan=plan, external=external, phase_ids=phase_ids
        )
        climber.climb(report, progress)
    finally:
        probe.stop()
    report.probe_requests = probe.requests

    if not external:
        progress("runtime: idle CPU, quiet drains, one write at a time (paced, then woken)")
        report.runtime = measure_runtime(
            stack,
            ids=phase_ids.ids,
            startup_seconds=report.startup_seconds,
            idle_seconds=plan.idle_seconds,
            drains=plan.quiet_drains,
            writes=plan.visible_writes,
            first_user=plan.users,
        )

    progress("reconcile vs raw parallel scan")
    with driver_calls():
        report.reconcile = measure_reconcile(
            dynamodb,
            users_table=users_table,
            organizations_table=organizations_table,
            segments=plan.segments,
            repeats=plan.reconcile_repeats,
        )


def _checkpoint_table(stack: EmbeddedStack) -> str:
    pipes = stack.pipes
    return pipes[0].settings.checkpoint_table if pipes else ""


class _Climber:
    """Rate steps through the running pipeline; write tokens keep growing across steps, so a
    user's newer write always carries a larger one."""

    def __init__(
        self,
        stack: EmbeddedStack,
        ledger: RequestLedger,
        probe: VisibilityProbe,
        names: PipelineNames,
        *,
        plan: BenchPlan,
        external: bool,
        phase_ids: _PhaseIds,
    ) -> None:
        self._stack = stack
        self._phase_ids = phase_ids
        self._ledger = ledger
        self._probe = probe
        self._names = names
        self._plan = plan
        self._external = external
        self._next_token = 1

    def climb(self, report: BenchReport, progress: Progress) -> None:
        """Rates climb by fractions of the ceiling until a step no longer keeps up; then one
        step at 90% of the best rate replicated, then one step of bursts of one user."""
        plan = self._plan
        ceiling = report.ceiling.writes_per_second if report.ceiling else 100.0
        for fraction in plan.fractions:
            rate = max(1.0, fraction * ceiling)
            progress(f"replication: offering {rate:.0f} writes/s ({fraction:.0%} of the ceiling)")
            figures = self.step(rate)
            report.steps.append(figures)
            if not figures.kept_up:
                break
        best = max((s.replicated_per_second for s in report.steps), default=0.0)
        kept = [s.achieved_write_per_second for s in report.steps if s.kept_up]
        if report.steps and not report.steps[-1].kept_up and best * 0.9 > max(kept, default=0.0):
            rate = best * 0.9
            progress(f"replication: offering {rate:.0f} writes/s (90% of the best replicated)")
            report.steps.append(self.step(rate))
        sustained = report.sustained
        burst_rate = max(1.0, 0.5 * (sustained.achieved_write_per_second if sustained else 1.0))
        progress(f"bursts: {plan.burst} writes of one user back to back, {burst_rate:.0f} writes/s")
        report.burst_step = self.step(burst_rate, plan.burst)

    def step(self, rate: float, burst: int = 1) -> StepFigures:
        plan, stack = self._plan, self._stack
        before = self._ledger.snapshot()
        cpu_before = stack.store_cpu_seconds()
        slots = max(1, round(rate * plan.step_seconds / burst))
        first_token = self._next_token
        self._next_token += (slots + 1) * burst
        began = time.perf_counter()
        offered = offer_writes(
            stack.client("dynamodb"),
            stack.model.table("UsersTable").name,
            rate=rate,
            seconds=plan.step_seconds,
            writers=plan.writers,
            users=plan.users,
            first_token=first_token,
            on_ack=self._probe.expect,
            burst=burst,
            ids=self._phase_ids.ids,
            on_write=self._phase_ids.written.add,
        )
        self._probe.wait_until_visible(plan.drain_timeout)
        drained = True
        if not self._external:
            with driver_calls():
                try:
                    stack.drain(timeout=plan.drain_timeout)
                except DrainTimeoutError as exc:
                    drained = False
                    logger.warning("step at %.0f/s did not drain: %s", rate, exc)
        seen = self._probe.take_results()
        costs = (
            None
            if self._external
            else PhaseCosts(self._ledger.snapshot() - before, self._names, offered.writes)
        )
        return step_figures(
            rate=rate,
            burst=burst,
            offered=offered,
            seen=seen,
            began=began,
            drained=drained,
            costs=costs,
            store_cpu=cpu_delta(stack.store_cpu_seconds(), cpu_before),
        )
