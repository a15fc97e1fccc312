"""The CLI's root: the Typer apps, the global options, and the one error boundary.

Commands live in sibling modules and register on the apps here; this module imports none of them.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.markup import escape
from typer.core import TyperGroup

from orgsync.cli.clients import AwsClients, build_clients
from orgsync.cli.render import err_console, first_line
from orgsync.cli.settings import CliSettings
from orgsync.errors import OrgsyncError


class _EdgeGroup(TyperGroup):
    """Root group: every command, in every sub-app, runs inside this one error boundary."""

    # `Any`: Typer vendors its own click, whose Context type is private to it.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (OrgsyncError, ClientError, BotoCoreError) as exc:
            err_console().print(
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


def describe_error(exc: BaseException) -> str:
    """One line an operator can act on."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        message = first_line(str(error.get("Message", "")))
        hint = ""
        if error.get("Code") in {
            "ResourceNotFoundException",
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        }:
            hint = " (check --endpoint-url and --name-prefix)"
        return f"{exc.operation_name}: {error.get('Code', 'Unknown')}: {message}{hint}"
    return first_line(str(exc)) or type(exc).__name__


def settings_of(ctx: typer.Context) -> CliSettings:
    settings = ctx.find_root().obj
    if not isinstance(settings, CliSettings):  # only when a command is invoked without the root
        settings = CliSettings()
    return settings


def clients_of(ctx: typer.Context) -> AwsClients:
    return build_clients(settings_of(ctx))
