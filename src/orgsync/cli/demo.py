"""`orgsync demo`: a story of users through an embedded stack, the invariant checked at the end.

Thin Typer wiring over orgsync.local and orgsync.ops.demo; must not import other command modules."""

from __future__ import annotations

import statistics

import typer
from rich.console import Console

from orgsync.cli.embedded import (
    StoreOption,
    TemplateOption,
    dynamodb_local_dir,
    prefix_parameters,
    store_kind,
    template_path,
)
from orgsync.cli.render import new_table, out_console
from orgsync.cli.root import app, settings_of
from orgsync.errors import OrgsyncError
from orgsync.local.stack import EmbeddedStack, StackOptions
from orgsync.ops.demo import StepResult, run_story


@app.command("demo")
def demo_command(
    ctx: typer.Context,
    store: StoreOption = "moto",
    template: TemplateOption = None,
) -> None:
    """Start an embedded stack on a free port, play a story of users, check the invariant."""
    console = out_console()
    options = StackOptions(
        template_path=template_path(template),
        port=0,
        store=store_kind(store),
        # The story is the output: the consumer's per-record INFO lines would drown it.
        parameters={**prefix_parameters(settings_of(ctx)), "LogLevel": "WARNING"},
        dynamodb_local_dir=dynamodb_local_dir(),
    )
    with EmbeddedStack(options) as stack:
        console.print(
            f"orgsync demo on an embedded stack at {stack.endpoint_url} ({options.store})"
        )
        result = run_story(
            stack.client("dynamodb"),
            users_table=stack.model.table("UsersTable").name,
            organizations_table=stack.model.table("OrganizationsTable").name,
            drain=stack.drain,
            on_step=lambda step: _print_demo_step(console, step),
        )
    lags = sorted(result.lags)
    console.print(
        f"replication lag per step: median {statistics.median(lags) * 1000:.0f} ms, "
        f"worst {lags[-1] * 1000:.0f} ms; {result.seconds:.1f} s in all"
    )
    if not result.invariant.holds:
        for drift in result.invariant.drift[:20]:
            console.print(f"[red]drift[/red] {drift.kind}: {drift.user_id} in {drift.org_id}")
        raise OrgsyncError(f"invariant broken: {len(result.invariant.drift)} memberships drift")
    console.print(
        f"[bold green]invariant holds[/bold green]: {result.invariant.users} users, "
        f"{result.invariant.memberships} memberships, exactly as the users table implies"
    )


def _print_demo_step(console: Console, step: StepResult) -> None:
    table = new_table("org", "user", "email", "status", title=step.title)
    for org_id, members in step.members.items():
        for member in members or []:
            table.add_row(org_id, member.user_id, member.email or "", member.status or "")
        if not members:
            table.add_row(org_id, "[dim]no members[/dim]", "", "")
    console.print(table)
    console.print(f"  replicated in {step.lag_seconds * 1000:.0f} ms")
