"""The CLI's root: the Typer apps, the global options, and the one error boundary.

Commands live in sibling modules and register on the apps here; this module imports none of them.
`orgsync --help` lists them from `_COMMANDS` without importing one: a command's module (and with
it boto3, the local stack, Rich's progress bars) is imported when that command runs or shows its
own help. What the boundary says for each failure is `cli.errors`'.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer
import typer.main
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from orgsync.cli.render import err_console
from orgsync.cli.settings import CliSettings, NameOverrides, endpoint_url_problem
from orgsync.errors import OrgsyncError

if TYPE_CHECKING:
    from orgsync.cli.clients import AwsClients

__all__ = [
    "JsonOption",
    "RefusedInputError",
    "app",
    "clients_of",
    "describe_error",
    "exit_code_of",
    "settings_of",
]


class RefusedInputError(OrgsyncError):
    """The operator's input was refused before any request was sent (exit 2, as click's own
    usage errors): what was given could not work, and nothing was written."""


def exit_code_of(exc: BaseException) -> int:
    """2 for refused input (a usage error), 1 for anything that failed on the way."""
    return 2 if isinstance(exc, RefusedInputError) else 1


def describe_error(exc: BaseException, settings: CliSettings | None = None) -> str:
    """One line an operator can act on (`cli.errors`, imported with botocore on failure only)."""
    from orgsync.cli import errors  # noqa: PLC0415 - botocore: not for `orgsync --help`

    return errors.describe_error(exc, settings)


def _reported(exc: BaseException) -> bool:
    """orgsync's and botocore's errors get one line; anything else is a bug, with its traceback.

    A botocore error exists only once botocore is imported: looking it up in sys.modules keeps
    botocore out of the commands that never needed it (`--help`, refused input).
    """
    if isinstance(exc, OrgsyncError):
        return True
    botocore_errors = sys.modules.get("botocore.exceptions")
    return botocore_errors is not None and isinstance(
        exc, (botocore_errors.ClientError, botocore_errors.BotoCoreError)
    )


class _EdgeGroup(TyperGroup):
    """Root group: every command, in every sub-app, runs inside this one error boundary.

    Typer builds it from the commands registered so far (`registered`); it lists `_COMMANDS`,
    each deferred until it runs, so that `orgsync --help` imports no command module.
    """

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.registered = dict(self.commands)
        self.commands = {
            name: _DeferredCommand(name, module=module, help_text=help_text)
            for name, (module, help_text) in _COMMANDS.items()
        }

    # `Any`: Typer vendors its own click, whose Context type is private to it.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not _reported(exc):
                raise
            settings = ctx.obj if isinstance(ctx.obj, CliSettings) else None
            err_console().print(
                f"[bold red]error:[/bold red] {escape(describe_error(exc, settings))}",
                soft_wrap=True,
                highlight=False,
            )
            raise typer.Exit(code=exit_code_of(exc)) from exc


class _DeferredCommand(TyperCommand):
    """A command as `orgsync --help` lists it, its module not imported yet.

    Click runs a command (or prints its --help) through `make_context`: only then is the module
    imported, and the command it registered built by Typer, as `app()` builds every command.
    """

    def __init__(self, name: str, *, module: str, help_text: str) -> None:
        super().__init__(name, help=help_text)
        self._module = module

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        importlib.import_module(self._module)
        root = typer.main.get_group(app)
        assert isinstance(root, _EdgeGroup)  # app's cls
        command = root.registered[str(self.name)]
        return command.make_context(info_name, args, parent=parent, **extra)


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

# What `orgsync --help` lists, in its order: each command's module, and its line there. A
# command's line is its docstring's first paragraph, a group's the help of its app above
# (tests/unit/test_cli_loading.py checks both).
_COMMANDS: Final[dict[str, tuple[str, str]]] = {
    "status": (
        "orgsync.cli.status",
        "Queues (depth, oldest message), table sizes, local pipe position, what needs an operator.",
    ),
    "reconcile": (
        "orgsync.cli.reconcile",
        "Compare every user with its memberships and REPLICATION record; backfill and repair.",
    ),
    "demo": (
        "orgsync.cli.demo",
        "Start an embedded stack on a free port, play a story of users, check the invariant.",
    ),
    "bench": (
        "orgsync.cli.bench",
        "Measure throughput, lag, requests and price per change against the store's own ceiling.",
    ),
    "doctor": (
        "orgsync.cli.doctor",
        "Check the deploy prerequisites (SAM CLI, builder, go-task, credentials, region, stack).",
    ),
    "users": ("orgsync.cli.users", str(users_app.info.help)),
    "orgs": ("orgsync.cli.orgs", str(orgs_app.info.help)),
    "dlq": ("orgsync.cli.dlq", str(dlq_app.info.help)),
    "local": ("orgsync.cli.local", str(local_app.info.help)),
}

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
    from orgsync.cli.clients import build_clients  # noqa: PLC0415 - boto3: not for `--help`

    return build_clients(settings_of(ctx))
