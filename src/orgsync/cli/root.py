"""The CLI's root: the Typer apps, the global options, and the one error boundary.

Commands live in sibling modules and register on the apps here; this module imports none of them.
What the boundary says for each failure is `cli.errors`'.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.markup import escape
from typer.core import TyperGroup

from orgsync.cli.clients import AwsClients, build_clients
from orgsync.cli.errors import RefusedInputError, describe_error, exit_code_of
from orgsync.cli.render import err_console
from orgsync.cli.settings import CliSettings, NameOverrides, endpoint_url_problem
from orgsync.errors import OrgsyncError

__all__ = [
    "JsonOption",
    "RefusedInputError",
    "app",
    "clients_of",
    "describe_error",
    "settings_of",
]


class _EdgeGroup(TyperGroup):
    """Root group: every command, in every sub-app, runs inside this one error boundary."""

    # `Any`: Typer vendors its own click, whose Context type is private to it.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (OrgsyncError, ClientError, BotoCoreError) as exc:
            settings = ctx.obj if isinstance(ctx.obj, CliSettings) else None
            err_console().print(
                f"[bold red]error:[/bold red] {escape(describe_error(exc, settings))}",
                soft_wrap=True,
                highlight=False,
            )
            raise typer.Exit(code=exit_code_of(exc)) from exc


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


def _name_option(flag: str, envvar: str, what: str) -> Any:
    return typer.Option(
        flag,
        envvar=envvar,
        help=f"Exact name of {what}, for stacks not named by --name-prefix.",
        rich_help_panel="Resource names",
    )


@app.callback()
def main(
    ctx: typer.Context,
    *,
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
    users_table: Annotated[
        str | None, _name_option("--users-table", "ORGSYNC_USERS_TABLE", "the users table")
    ] = None,
    organizations_table: Annotated[
        str | None,
        _name_option(
            "--organizations-table", "ORGSYNC_ORGANIZATIONS_TABLE", "the organizations table"
        ),
    ] = None,
    queue: Annotated[
        str | None, _name_option("--queue", "ORGSYNC_QUEUE", "the main FIFO queue")
    ] = None,
    dead_letter_queue: Annotated[
        str | None,
        _name_option("--dead-letter-queue", "ORGSYNC_DEAD_LETTER_QUEUE", "the consumer's FIFO DLQ"),
    ] = None,
    pipe_dead_letter_queue: Annotated[
        str | None,
        _name_option(
            "--pipe-dead-letter-queue", "ORGSYNC_PIPE_DEAD_LETTER_QUEUE", "the pipe's DLQ"
        ),
    ] = None,
) -> None:
    source = ctx.get_parameter_source("endpoint_url")
    if endpoint_url:
        problem = endpoint_url_problem(endpoint_url)
        if problem is not None:
            origin = " (from AWS_ENDPOINT_URL)" if _named(source) == "ENVIRONMENT" else ""
            raise RefusedInputError(
                f"--endpoint-url {endpoint_url!r}{origin} is not usable: {problem}"
            )
    ctx.obj = CliSettings.from_options(
        endpoint_url=endpoint_url,
        profile=profile,
        region=region,
        name_prefix=name_prefix,
        names=NameOverrides.of(
            users_table=users_table,
            organizations_table=organizations_table,
            main_queue=queue,
            dead_letter_queue=dead_letter_queue,
            pipe_dead_letter_queue=pipe_dead_letter_queue,
        ),
        endpoint_url_on_command_line=_named(source) == "COMMANDLINE",
    )


def _named(source: Any) -> str | None:
    # Typer's vendored click keeps ParameterSource private; its members' names are stable.
    return getattr(source, "name", None)


def settings_of(ctx: typer.Context) -> CliSettings:
    settings = ctx.find_root().obj
    if not isinstance(settings, CliSettings):  # only when a command is invoked without the root
        settings = CliSettings()
    return settings


def clients_of(ctx: typer.Context) -> AwsClients:
    return build_clients(settings_of(ctx))
