"""`orgsync dlq …`: peek at, redrive, discard stale messages of, and purge the dead-letter queue.

Thin Typer wiring over orgsync.ops.dlq; must not import other command modules."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.cells import cell_len
from rich.markup import escape
from rich.text import Text

from orgsync.cli.render import format_age, new_progress, new_table, out_console, print_json
from orgsync.cli.root import JsonOption, clients_of, dlq_app, settings_of
from orgsync.ops import dlq, status

WideOption = Annotated[
    bool,
    typer.Option("--wide", help="Every column, values never cut (rows may fold over lines)."),
]


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many messages.")] = 50,
    wide: WideOption = False,
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
    rows = [
        {
            "reason": message.reason,
            "user id": message.user_id or "?",
            "event": message.event_name or "?",
            "seq": message.sequence_number or "?",
            "age": format_age(message.age_seconds(now)),
            "detail": message.detail or "",
            "message id": message.message_id,
        }
        for message in messages
    ]
    columns = [
        _Column("reason", fixed=True),
        _Column("user id"),
        *([_Column("event", fixed=True)] if wide else []),
        _Column("seq", keep_tail=True),
        _Column("age", fixed=True),
        _Column("detail"),
        *([_Column("message id")] if wide else []),
    ]
    _print_table(columns, [[row[c.header] for c in columns] for row in rows], wide=wide)
    out_console().print(f"{len(messages)} message(s) shown", highlight=False)


@dlq_app.command("redrive")
def dlq_redrive(
    ctx: typer.Context,
    max_messages: Annotated[
        int | None, typer.Option("--max", min=1, help="Move at most N messages (always copies).")
    ] = None,
    method: Annotated[
        dlq.RedriveMethod,
        typer.Option(
            help="auto: SQS move task on AWS; copy on a local endpoint or one without it."
        ),
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


@dlq_app.command("discard")
def dlq_discard(
    ctx: typer.Context,
    stale: Annotated[
        bool,
        typer.Option(
            "--stale",
            help="Delete the messages whose user has applied a change at least as new (required).",
        ),
    ] = False,
    wide: WideOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete DLQ messages that no longer matter; everything else stays in the DLQ."""
    if not stale:
        # The only selection there is: say so rather than guess what else was meant.
        raise typer.BadParameter(
            "say --stale: it is the only selection (`orgsync dlq purge` drops everything)",
            param_hint="--stale",
        )
    settings = settings_of(ctx)
    clients = clients_of(ctx)
    dlq_url = clients.sqs.get_queue_url(QueueName=settings.dead_letter_queue)["QueueUrl"]
    result = dlq.discard_stale(clients.sqs, dlq_url, clients.dynamodb, settings.organizations_table)
    if as_json:
        print_json({**dataclasses.asdict(result), "discarded_count": len(result.discarded)})
        return
    console = out_console()
    if result.discarded:
        _print_table(
            [
                _Column("user id"),
                _Column("seq", keep_tail=True),
                _Column("reason", fixed=True),
                _Column("applied seq", keep_tail=True),
            ],
            [
                [message.user_id, str(message.seq), message.reason, str(message.applied_seq)]
                for message in result.discarded
            ],
            wide=wide,
            title="discarded",
        )
    console.print(
        f"discarded {len(result.discarded)} stale message(s) from {settings.dead_letter_queue}; "
        f"kept {result.kept} that still matter, {result.unreadable} without a readable "
        "user id and sequence number",
        highlight=False,
    )
    if result.delete_failed or result.not_examined:
        console.print(
            f"{result.delete_failed} delete(s) not confirmed by SQS, {result.not_examined} "
            "message(s) not examined (behind a kept message of their FIFO group, or in flight): "
            "run it again later",
            highlight=False,
        )


@dlq_app.command("purge")
def dlq_purge(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Drop every message of the DLQ (SQS PurgeQueue); asks first unless --yes."""
    settings = settings_of(ctx)
    sqs = clients_of(ctx).sqs
    queue = settings.dead_letter_queue
    dlq_url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    waiting = dlq.count_messages(sqs, dlq_url)
    if waiting == 0:
        out_console().print(f"{queue} is empty: nothing to purge", highlight=False)
        return
    if not yes:
        typer.confirm(
            f"Drop all {waiting} message(s) of {queue}? They cannot be recovered "
            "(`orgsync dlq discard --stale` drops only obsolete ones)",
            abort=True,
        )
    purged = dlq.purge(sqs, dlq_url)
    out_console().print(
        f"purged {queue}: {purged} message(s) were there (SQS finishes a purge within 60 seconds)",
        highlight=False,
    )


@dataclass(frozen=True)
class _Column:
    header: str
    fixed: bool = False  # short, fixed vocabulary: keeps its width, the others give way
    keep_tail: bool = False  # cut from the left: sequence numbers differ at their end


# Narrower columns: fewer cells per row, but never room for every full id and sequence number.
_CUT_FLOOR = 10


def _print_table(
    columns: list[_Column], rows: list[list[str]], *, wide: bool, title: str | None = None
) -> None:
    """One line per row at the terminal's width, cutting long values with an ellipsis.

    Fixed columns keep their width; the others share what is left in their order (the first
    gets what it needs first), none below `_CUT_FLOOR`. `--wide` cuts nothing and folds instead.
    """
    console = out_console()
    table = new_table(*(column.header for column in columns), title=title)
    if wide:
        for row in rows:
            table.add_row(*(Text(value) for value in row))  # values are data, never markup
        console.print(table)
        return
    natural = [
        max([cell_len(column.header), *(cell_len(row[index]) for row in rows)])
        for index, column in enumerate(columns)
    ]
    # new_table's box: two edges, one rule between columns, one space of padding each side.
    budget = console.width - (3 * len(columns) + 1)
    caps = _fit(natural, [column.fixed for column in columns], budget)
    for rich_column, cap in zip(table.columns, caps, strict=True):
        rich_column.no_wrap = True
        rich_column.overflow = "ellipsis"
        rich_column.max_width = cap
    for row in rows:
        table.add_row(
            *(
                Text(_cut_left(value, cap) if column.keep_tail else value, no_wrap=True)
                for column, cap, value in zip(columns, caps, row, strict=True)
            )
        )
    console.print(table)


def _fit(natural: list[int], fixed: list[bool], budget: int) -> list[int]:
    """Column widths within `budget`: fixed ones as they are, flexible ones first come first."""
    caps = list(natural)
    left = budget - sum(width for width, is_fixed in zip(natural, fixed, strict=True) if is_fixed)
    flexible = [index for index, is_fixed in enumerate(fixed) if not is_fixed]
    for position, index in enumerate(flexible):
        reserve = sum(min(natural[later], _CUT_FLOOR) for later in flexible[position + 1 :])
        floor = min(natural[index], _CUT_FLOOR)
        caps[index] = max(floor, min(natural[index], left - reserve))
        left -= caps[index]
    return caps


def _cut_left(value: str, width: int) -> str:
    return value if cell_len(value) <= width else "…" + value[len(value) - width + 1 :]
