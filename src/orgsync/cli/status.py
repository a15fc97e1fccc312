"""`orgsync status`: the three queues with their oldest message, table sizes, pipe position, one
user's record, and what needs an operator with the command to run.

Thin Typer wiring over orgsync.ops.status; must not import other command modules."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from orgsync.cli.clients import CLIENT_CONFIG
from orgsync.cli.render import format_age, new_table, out_console, print_json
from orgsync.cli.root import JsonOption, app, clients_of, settings_of
from orgsync.ops import status
from orgsync.ops.endpoints import is_local_endpoint

if TYPE_CHECKING:
    from orgsync.cli.clients import AwsClients
    from orgsync.cli.settings import CliSettings


@app.command("status")
def status_command(
    ctx: typer.Context,
    user_id: Annotated[
        str | None, typer.Option("--user", help="Also show this user's REPLICATION record.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Queues (depth, oldest message), table sizes, local pipe position, what needs an operator."""
    settings = settings_of(ctx)
    clients = clients_of(ctx)
    snapshot = status.read_status(
        clients.sqs,
        clients.dynamodb,
        main_queue=settings.main_queue,
        dead_letter_queue=settings.dead_letter_queue,
        pipe_dead_letter_queue=settings.pipe_dead_letter_queue,
        tables=(settings.users_table, settings.organizations_table),
        checkpoint_table=settings.pipe_checkpoint_table,
        user_id=user_id,
        organizations_table=settings.organizations_table,
        cloudwatch=_cloudwatch(clients, settings),
    )
    if as_json:
        print_json(dataclasses.asdict(snapshot))
        return
    console = out_console()
    _print_queues(console, snapshot.queues)
    tables = new_table("table", "items (approximate)", title="tables")
    for summary in snapshot.tables:
        count = "?" if summary.item_count is None else str(summary.item_count)
        tables.add_row(summary.name, count if summary.exists else "missing")
    console.print(tables)
    if snapshot.pipe_positions is None:
        console.print("pipe: no local checkpoint table (on AWS, EventBridge Pipes tracks it)")
    else:
        pipe = new_table("pipe", "shard", "sequence number", "finished", title="pipe position")
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
    _print_attention(console, snapshot.attention)


def _cloudwatch(clients: AwsClients, settings: CliSettings) -> status.MetricsReader | None:
    """CloudWatch for the main queue's age, on AWS only: local emulators publish no SQS metrics.

    Built here rather than by `clients_of`, which builds what every command needs.
    """
    if is_local_endpoint(settings.endpoint_url):
        return None
    client: Any = clients.session.client(
        "cloudwatch", endpoint_url=settings.endpoint_url, config=CLIENT_CONFIG
    )
    return cast("status.MetricsReader", client)


def _print_queues(console: Console, queues: tuple[status.QueueStatus, ...]) -> None:
    table = new_table("queue", "visible", "in flight", "delayed", "oldest", title="queues")
    for queue in queues:
        if not queue.exists:
            table.add_row(Text(queue.name), "missing", "-", "-", "-")
            continue
        table.add_row(
            Text(queue.name),
            str(queue.visible),
            str(queue.in_flight),
            str(queue.delayed),
            _oldest(queue),
        )
    console.print(table)


def _oldest(queue: status.QueueStatus) -> str:
    if queue.oldest_age_seconds is None:
        # Unknown: the main queue off AWS (never received from), or an empty sample.
        return "?" if queue.total else "-"
    age = format_age(queue.oldest_age_seconds)
    # A sample of up to 10: the true oldest is at least this old.
    return f">= {age}" if queue.age_source is status.AgeSource.SAMPLED else age


def _print_attention(console: Console, attention: tuple[status.Attention, ...]) -> None:
    if not attention:
        console.print("nothing needs an operator", highlight=False)
        return
    console.print(f"[bold]needs an operator ({len(attention)}):[/bold]", highlight=False)
    for item in attention:
        console.print(
            f"  [bold yellow]![/bold yellow] {escape(item.subject)}: {escape(item.problem)}",
            highlight=False,
        )
        for hint in item.hints:
            console.print(f"    -> {escape(hint)}", highlight=False)


def _print_user_replication(
    console: Console, user_id: str, record: status.UserReplication | None
) -> None:
    if record is None:
        console.print(f"user {escape(user_id)}: no REPLICATION record yet", highlight=False)
        return
    table = new_table(
        "user id", "seq", "orgs", "deleted", "pending seq", "dirty", title="replication"
    )
    table.add_row(
        record.user_id,
        "-" if record.seq is None else str(record.seq),
        ", ".join(record.orgs),
        "yes" if record.deleted else "no",
        "-" if record.pending_seq is None else str(record.pending_seq),
        ", ".join(record.dirty),
    )
    console.print(table)
