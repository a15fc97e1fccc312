"""`orgsync dlq …`: peek at and redrive the dead-letter queue.

Thin Typer wiring over orgsync.ops.dlq; must not import other command modules."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape

from orgsync.cli.render import new_progress, new_table, out_console, print_json
from orgsync.cli.root import JsonOption, clients_of, dlq_app, settings_of
from orgsync.ops import dlq, status


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many messages.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Peek at DLQ messages without consuming them (they are visible again right after)."""
    sqs = clients_of(ctx).sqs
    queue_url = sqs.get_queue_url(QueueName=settings_of(ctx).dead_letter_queue)["QueueUrl"]
    messages = dlq.peek_messages(sqs, queue_url, limit=limit)
    now = datetime.now(tz=UTC)
    if as_json:
        print_json(
            [
                {**dataclasses.asdict(message), "age_seconds": message.age_seconds(now)}
                for message in messages
            ]
        )
        return
    table = new_table(
        "reason", "user id", "event", "sequence number", "age", "detail", "message id"
    )
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
    out_console().print(table)
    out_console().print(f"{len(messages)} message(s) shown", highlight=False)


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
    settings = settings_of(ctx)
    sqs = clients_of(ctx).sqs
    dlq_url = sqs.get_queue_url(QueueName=settings.dead_letter_queue)["QueueUrl"]
    main_url = sqs.get_queue_url(QueueName=settings.main_queue)["QueueUrl"]
    waiting = status.read_queue_depth(sqs, settings.dead_letter_queue).visible
    total = waiting if max_messages is None else min(waiting, max_messages)
    with new_progress("redriving") as progress:
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
        out_console().print(
            f"started SQS move task {escape(result.task_handle)} for about {waiting} message(s) "
            f"from {settings.dead_letter_queue} to {settings.main_queue}; "
            "it runs asynchronously (watch `orgsync status`)",
            highlight=False,
        )
        return
    out_console().print(
        f"moved {result.moved} message(s) from {settings.dead_letter_queue} "
        f"to {settings.main_queue} (copy)",
        highlight=False,
    )


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
