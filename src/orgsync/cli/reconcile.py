"""`orgsync reconcile`: compare users with memberships and REPLICATION records; repair.

Thin Typer wiring over orgsync.ops.reconcile; must not import other command modules."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from orgsync.cli.render import new_progress, new_table, out_console, print_json
from orgsync.cli.root import JsonOption, app, clients_of, settings_of
from orgsync.ops.reconcile import MEMBERSHIP_DRIFT_KINDS, Phase, ReconcileReport, reconcile


@app.command("reconcile")
def reconcile_command(
    ctx: typer.Context,
    repair: Annotated[
        bool, typer.Option("--repair", help="Commit the fixes (fenced: safe while live).")
    ] = False,
    segments: Annotated[
        int, typer.Option(min=1, max=64, help="Parallel scan segments (and repair workers).")
    ] = 4,
    fail_on_drift: Annotated[
        bool,
        typer.Option("--fail-on-drift", help="Exit 1 when drift remains after this run."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Compare every user with its memberships and REPLICATION record; backfill and repair."""
    settings = settings_of(ctx)
    dynamodb = clients_of(ctx).dynamodb
    options: dict[str, Any] = {
        "users_table": settings.users_table,
        "organizations_table": settings.organizations_table,
        "segments": segments,
        "repair": repair,
    }
    if as_json:
        report = reconcile(dynamodb, **options)
        print_json(report.to_json())
    else:
        with new_progress("{task.description:<20}") as progress:
            tasks = {phase: progress.add_task(phase.value, total=None) for phase in Phase}

            def advance(phase: Phase, done: int, total: int | None) -> None:
                progress.update(tasks[phase], advance=done, total=total)

            report = reconcile(dynamodb, on_progress=advance, **options)
        _print_reconcile(report)
    if fail_on_drift and report.unresolved:
        raise typer.Exit(code=1)


def _print_reconcile(report: ReconcileReport) -> None:
    console = out_console()
    console.print(
        f"scanned {report.users_scanned} user(s), {report.memberships_scanned} membership(s), "
        f"{report.replication_records_scanned} REPLICATION record(s) in {report.seconds:.1f} s "
        f"({report.users_per_second:.0f} users/s)",
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
            f"{len(report.skipped)} skipped",
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
