"""`orgsync status`: queue and DLQ depth, table sizes, pipe position, one user's record.

Thin Typer wiring over orgsync.ops.status; must not import other command modules."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from orgsync.cli.render import new_table, out_console, print_json
from orgsync.cli.root import JsonOption, app, clients_of, settings_of
from orgsync.ops import status


@app.command("status")
def status_command(
    ctx: typer.Context,
    user_id: Annotated[
        str | None, typer.Option("--user", help="Also show this user's REPLICATION record.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Queue and DLQ depth, table sizes, local pipe position per shard."""
    settings = settings_of(ctx)
    clients = clients_of(ctx)
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
        print_json(dataclasses.asdict(snapshot))
        return
    console = out_console()
    queues = new_table("queue", "visible", "in flight", "delayed", title="queues")
    for depth in (snapshot.main_queue, snapshot.dead_letter_queue):
        queues.add_row(depth.name, str(depth.visible), str(depth.in_flight), str(depth.delayed))
    console.print(queues)
    tables = new_table("table", "items (approximate)", title="tables")
    for summary in snapshot.tables:
        tables.add_row(summary.name, "?" if summary.item_count is None else str(summary.item_count))
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
