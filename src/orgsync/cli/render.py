"""How the CLI prints: tables, the one progress bar style, consoles, JSON, one-line errors.

Rich only; no command logic here.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from rich.progress import Progress


def new_table(*headers: str, title: str | None = None) -> Table:
    # Fold rather than truncate: an operator copies ids and sequence numbers from these tables.
    table = Table(title=title)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def new_progress(label: str) -> Progress:
    """The one progress bar style of long commands; gone from the screen once done."""
    from rich.progress import (  # noqa: PLC0415 - for the commands that show one, not for --help
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out_console(),
        transient=True,
    )


def out_console() -> Console:
    # Built per call, not at import, so COLUMNS/NO_COLOR set by the caller are honoured.
    return Console()


def err_console() -> Console:
    return Console(stderr=True)


def print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, default=_json_default))


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def format_age(seconds: float | None) -> str:
    """A duration as an operator reads it: `42s`, `3m 5s`, `2h 10m`, `4d 1h`; `?` if unknown."""
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


def first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""
