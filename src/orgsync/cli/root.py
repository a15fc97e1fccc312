"""The CLI's root: the Typer apps, global options, the one error boundary and shared helpers.

Commands live in sibling modules and register on the apps here; this module imports none of them.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from orgsync.cli.clients import AwsClients, build_clients
from orgsync.cli.settings import CliSettings
from orgsync.errors import OrgsyncError


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


# --- options of the commands that start an embedded stack (local up, demo, bench) ----------------

TemplateOption = Annotated[
    Path | None,
    typer.Option("--template", help="template.yaml to run (default: ./template.yaml)."),
]
StoreOption = Annotated[
    str,
    typer.Option("--store", help="Embedded store: moto (in-process) or dynamodb-local (Java)."),
]


def _template_path(option: Path | None) -> Path:
    """--template, else ./template.yaml, else the one beside an editable checkout."""
    candidates = [option] if option else [Path.cwd() / "template.yaml", _CHECKOUT_TEMPLATE]
    for candidate in candidates:
        if candidate is not None and candidate.is_file():
            return candidate
    raise OrgsyncError("no template.yaml found: pass --template PATH")


_CHECKOUT_TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"


def _store_kind(store: str) -> Literal["moto", "dynamodb-local"]:
    if store == "moto":
        return "moto"
    if store == "dynamodb-local":
        return "dynamodb-local"
    raise OrgsyncError(f"unknown store {store!r}: use moto or dynamodb-local")


def _dynamodb_local_dir() -> Path | None:
    configured = os.environ.get("ORGSYNC_DYNAMODB_LOCAL_DIR")
    return Path(configured) if configured else None


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


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""
