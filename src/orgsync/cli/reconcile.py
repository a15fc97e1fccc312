"""`orgsync reconcile`: compare users with memberships and REPLICATION records; repair.

Thin Typer wiring over orgsync.ops.reconcile; must not import other command modules."""

from __future__ import annotations

import json
import threading
import time
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from orgsync.cli.clients import dynamodb_client
from orgsync.cli.reconcile_on_aws import (
    OnAwsRequest,
    follow_on_aws,
    print_on_aws,
    refuse_on_aws,
    start_on_aws,
)
from orgsync.cli.render import err_console, new_table, out_console, print_json
from orgsync.cli.root import JsonOption, RefusedInputError, app, settings_of
from orgsync.ops.reconcile import (
    MAX_TOTAL_SEGMENTS,
    MEMBERSHIP_DRIFT_KINDS,
    SAMPLE_SIZE,
    Pass,
    ReconcileReport,
    Slice,
    Tables,
)
from orgsync.ops.reconcile.on_aws import DEFAULT_MAX_CONCURRENCY, MAX_CONCURRENCY, RunInput
from orgsync.ops.reconcile.runs import (
    RunDirectory,
    RunDirectoryError,
    RunResult,
    RunSpec,
    run_slices,
)

# --segments with --on-aws when not given: the state machine's own default (template.yaml).
ON_AWS_SEGMENTS = 16


@app.command("reconcile")
def reconcile_command(
    ctx: typer.Context,
    *,
    repair: Annotated[
        bool, typer.Option("--repair", help="Commit the fixes (fenced: safe while live).")
    ] = False,
    segments: Annotated[
        int,
        typer.Option(
            "--segments",
            "--total-segments",
            min=1,
            max=MAX_TOTAL_SEGMENTS,
            help=f"Scan segments of each table: the run's slices per pass ({ON_AWS_SEGMENTS} "
            "with --on-aws unless given).",
        ),
    ] = 4,
    segment: Annotated[
        int | None,
        typer.Option(
            "--segment",
            min=0,
            help="Run only this segment's slices (0-based); merge them later with --run-dir.",
        ),
    ] = None,
    only_pass: Annotated[
        Pass | None,
        typer.Option("--pass", help="Run only this pass (default: users, then organizations)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, max=256, help="Run the slices in this many local processes."
        ),
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run-dir",
            file_okay=False,
            help="Keep each finished slice's report here; a rerun skips them and merges all.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", dir_okay=False, help="Also write the JSON report to this file."),
    ] = None,
    fail_on_drift: Annotated[
        bool,
        typer.Option("--fail-on-drift", help="Exit 1 when drift remains after this run."),
    ] = False,
    on_aws: Annotated[
        bool,
        typer.Option(
            "--on-aws",
            help="Run the slices in the stack's state machine (Lambda, one per slice) and "
            "follow it here; Ctrl-C leaves it running.",
        ),
    ] = False,
    max_concurrency: Annotated[
        int | None,
        typer.Option(
            "--max-concurrency",
            min=1,
            max=MAX_CONCURRENCY,
            help=f"With --on-aws: slices in flight per pass (default {DEFAULT_MAX_CONCURRENCY}).",
        ),
    ] = None,
    follow_arn: Annotated[
        str | None,
        typer.Option(
            "--follow",
            metavar="EXECUTION_ARN",
            help="Follow a run of the state machine already started (implies --on-aws).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Compare every user with its memberships and REPLICATION record; backfill and repair."""
    if on_aws or follow_arn is not None:
        _reconcile_on_aws(
            ctx,
            follow_arn=follow_arn,
            request=OnAwsRequest(
                repair=repair,
                segments=segments if _given(ctx, "segments") else None,
                max_concurrency=max_concurrency,
                local_only={
                    "--segment": segment,
                    "--pass": only_pass,
                    "--workers": workers,
                    "--run-dir": run_dir,
                },
            ),
            output=output,
            fail_on_drift=fail_on_drift,
            as_json=as_json,
        )
        return
    if max_concurrency is not None:
        raise RefusedInputError(
            "--max-concurrency is for --on-aws (slices in flight per pass); "
            "a run on this machine takes --workers"
        )
    if segment is not None and segment >= segments:
        raise RefusedInputError(f"--segment {segment} is not below --total-segments {segments}")
    settings = settings_of(ctx)
    spec = RunSpec(
        tables=Tables(settings.users_table, settings.organizations_table),
        total_segments=segments,
        repair=repair,
    )
    try:
        directory = None if run_dir is None else RunDirectory(run_dir, spec)
    except RunDirectoryError as exc:
        raise RefusedInputError(str(exc)) from None
    run = partial(
        run_slices,
        partial(dynamodb_client, settings),
        spec,
        passes=tuple(Pass) if only_pass is None else (only_pass,),
        segments=None if segment is None else (segment,),
        workers=workers,
        directory=directory,
    )
    kept = (
        f"finished slices are kept in {run_dir}: run the same command to resume"
        if run_dir is not None
        else "nothing was kept (without --run-dir a rerun starts over)"
    )
    try:
        result = run() if as_json else _run_with_progress(run, spec, only_pass, segment)
    except KeyboardInterrupt:
        err_console().print(f"interrupted; {escape(kept)}", highlight=False)
        raise typer.Exit(code=130) from None
    except Exception:
        # The error boundary prints what failed; say what survived it first.
        err_console().print(f"reconcile stopped; {escape(kept)}", highlight=False)
        raise
    document = {
        **result.report.to_json(),
        "slices_resumed": result.resumed,
        "slices_ran": result.ran,
    }
    if output is not None:
        output.write_text(json.dumps(document, indent=1) + "\n")
    if as_json:
        print_json(document)
    else:
        _print_reconcile(result.report, resumed=result.resumed)
    if fail_on_drift and result.report.unresolved:
        raise typer.Exit(code=1)


def _reconcile_on_aws(
    ctx: typer.Context,
    *,
    follow_arn: str | None,
    request: OnAwsRequest,
    output: Path | None,
    fail_on_drift: bool,
    as_json: bool,
) -> None:
    """Start (or `--follow`) a run of the state machine; print its report as a local run's."""
    settings = settings_of(ctx)
    refuse_on_aws(settings, follow_arn=follow_arn, request=request)
    if follow_arn is None:
        run = RunInput(
            total_segments=request.segments or ON_AWS_SEGMENTS,
            repair=request.repair,
            max_concurrency=request.max_concurrency or DEFAULT_MAX_CONCURRENCY,
        )
        result = start_on_aws(settings, run, show_progress=not as_json)
    else:
        result = follow_on_aws(settings, follow_arn, show_progress=not as_json)
    outcome = result.outcome
    document = {
        **outcome.output,
        "execution_arn": outcome.execution_arn,
        "report_uri": result.report_uri,
    }
    if output is not None:
        output.write_text(json.dumps(document, indent=1) + "\n")
    if as_json:
        print_json(document)
    else:
        _print_reconcile(outcome.report, resumed=None)
        print_on_aws(result)
    # A report with a hole (a slice that did not report) cannot say there is no drift.
    if fail_on_drift and (outcome.report.unresolved or not outcome.complete):
        raise typer.Exit(code=1)


def _given(ctx: typer.Context, parameter: str) -> bool:
    # Typer's vendored click keeps ParameterSource private; its members' names are stable.
    return getattr(ctx.get_parameter_source(parameter), "name", None) != "DEFAULT"


def _run_with_progress(
    run: partial[RunResult], spec: RunSpec, only_pass: Pass | None, segment: int | None
) -> RunResult:
    """One bar per pass: slices done, items scanned and per second, drifted users so far."""
    passes = tuple(Pass) if only_pass is None else (only_pass,)
    per_pass = spec.total_segments if segment is None else 1
    progress = Progress(
        TextColumn("{task.description:<19}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("slices · {task.fields[items]:>9,} items · {task.fields[rate]:>7,.0f}/s"),
        TextColumn("· drift {task.fields[drift]:,}"),
        TimeElapsedColumn(),
        console=out_console(),
        transient=True,
    )
    tasks: dict[Pass, TaskID] = {}
    counts = {pass_: [0, 0] for pass_ in passes}
    counting = threading.Lock()
    started: dict[Pass, float] = {}

    def refresh(pass_: Pass) -> None:
        items, drift = counts[pass_]
        seconds = time.monotonic() - started.setdefault(pass_, time.monotonic())
        rate = items / seconds if seconds > 0 else 0.0
        progress.update(tasks[pass_], items=items, drift=drift, rate=rate)

    def advance(pass_: Pass, items: int, drifted: int) -> None:
        with counting:  # slices report from several threads
            counts[pass_][0] += items
            counts[pass_][1] += drifted
        refresh(pass_)

    def slice_done(slice_: Slice, report: ReconcileReport) -> None:
        progress.advance(tasks[slice_.pass_])

    with progress:
        for pass_ in passes:
            tasks[pass_] = progress.add_task(
                f"{pass_.value} pass", total=per_pass, items=0, drift=0, rate=0.0
            )
        return run(on_progress=advance, on_slice_done=slice_done)


def _print_reconcile(report: ReconcileReport, *, resumed: int | None) -> None:
    """`resumed`: slices read from the run directory; None for a run that has none (on AWS)."""
    console = out_console()
    kept = "" if resumed is None else f", {resumed} from the run directory"
    console.print(
        f"scanned {report.users_scanned} user(s), {report.memberships_scanned} membership(s), "
        f"{report.replication_records_scanned} REPLICATION record(s) in {report.seconds:.1f} s "
        f"({report.users_per_second:.0f} users/s; {len(report.slices)} slice(s){kept})",
        highlight=False,
    )
    if report.drift:
        table = new_table("drift", "count", "counts", title="drift found")
        for kind, count in report.drift.items():
            unit = "memberships" if kind in MEMBERSHIP_DRIFT_KINDS else "users"
            table.add_row(kind, str(count), unit)
        console.print(table)
    else:
        console.print("no drift", highlight=False)
    if report.drifted_sample:
        # A full sample may have left ids out; users_with_drift counts judgements, not ids.
        full = len(report.drifted_sample) >= SAMPLE_SIZE
        tail = f" (the first {SAMPLE_SIZE} ids; {report.users_with_drift} in all)" if full else ""
        console.print(
            f"drifted users: {escape(', '.join(report.drifted_sample))}{tail}", highlight=False
        )
    if report.invalid_users:
        console.print(
            f"{report.invalid_users} invalid user item(s) not judged "
            f"(e.g. {escape(', '.join(report.invalid_sample[:5]))})",
            highlight=False,
        )
    if report.repair:
        console.print(
            f"repaired {report.users_repaired} user(s); "
            f"{report.users_already_converged} converged meanwhile; "
            f"{report.conflicts_retried} fence conflict(s) re-read and retried; "
            f"{report.users_skipped} skipped",
            highlight=False,
        )
    elif report.users_with_drift:
        console.print(
            f"{report.users_with_drift} user(s) drifted; run with --repair to fix them",
            highlight=False,
        )
    for skipped in report.skipped[:20]:
        console.print(
            f"skipped {escape(skipped.user_id)}: {escape(skipped.reason)}", highlight=False
        )
