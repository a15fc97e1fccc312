"""`orgsync reconcile`: compare users with memberships and REPLICATION records; repair.

Thin Typer wiring over orgsync.ops.reconcile; must not import other command modules."""

from __future__ import annotations

import json
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
from orgsync.cli.errors import RefusedInputError
from orgsync.cli.render import new_table, out_console, print_json
from orgsync.cli.root import JsonOption, app, settings_of
from orgsync.ops.reconcile import (
    MAX_TOTAL_SEGMENTS,
    MEMBERSHIP_DRIFT_KINDS,
    Pass,
    ReconcileReport,
    Slice,
    Tables,
)
from orgsync.ops.reconcile.runs import (
    RunDirectory,
    RunDirectoryError,
    RunResult,
    RunSpec,
    run_slices,
)


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
            help="Scan segments of each table: the run's slices per pass.",
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
    as_json: JsonOption = False,
) -> None:
    """Compare every user with its memberships and REPLICATION record; backfill and repair."""
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
    result = run() if as_json else _run_with_progress(run, spec, only_pass, segment)
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
        _print_reconcile(result)
    if fail_on_drift and result.report.unresolved:
        raise typer.Exit(code=1)


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
    started: dict[Pass, float] = {}

    def refresh(pass_: Pass) -> None:
        items, drift = counts[pass_]
        seconds = time.monotonic() - started.setdefault(pass_, time.monotonic())
        rate = items / seconds if seconds > 0 else 0.0
        progress.update(tasks[pass_], items=items, drift=drift, rate=rate)

    def advance(pass_: Pass, items: int, drifted: int) -> None:
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


def _print_reconcile(result: RunResult) -> None:
    report = result.report
    console = out_console()
    console.print(
        f"scanned {report.users_scanned} user(s), {report.memberships_scanned} membership(s), "
        f"{report.replication_records_scanned} REPLICATION record(s) in {report.seconds:.1f} s "
        f"({report.users_per_second:.0f} users/s; {len(report.slices)} slice(s), "
        f"{result.resumed} from the run directory)",
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
        more = report.users_with_drift - len(report.drifted_sample)
        tail = f" and {more} more" if more > 0 else ""
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
