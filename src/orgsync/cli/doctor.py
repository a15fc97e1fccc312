"""`orgsync doctor`: whether `task deploy` can work from here, one line per prerequisite.

Thin wiring over orgsync.ops.doctor: this module gathers the facts (PATH, the template, boto3's
credentials and region, DescribeStacks) and prints the verdicts; must not import other command
modules.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import boto3
import typer
from botocore.config import Config
from botocore.exceptions import BotoCoreError
from rich.markup import escape

from orgsync.cli.render import out_console, print_json
from orgsync.cli.root import JsonOption, app, settings_of
from orgsync.cli.settings import CliSettings
from orgsync.local.errors import TemplateError
from orgsync.local.template.cloudformation import load_template
from orgsync.ops.doctor import (
    DEFAULT_STACK_NAME,
    CommandResult,
    DoctorInputs,
    DoctorReport,
    FunctionBuild,
    Status,
    functions_to_build,
    read_stack_status,
    run_doctor,
)

# `sam --version` starts a Python interpreter: seconds, not minutes.
_COMMAND_TIMEOUT_SECONDS = 60
# One quick answer or a clear failure; the standard retry mode still absorbs a throttle.
_CLOUDFORMATION_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=15
)
_STYLE = {
    Status.OK: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.SKIP: "dim",
}


@app.command("doctor")
def doctor_command(
    ctx: typer.Context,
    stack_name: Annotated[
        str,
        typer.Option("--stack-name", help="The CloudFormation stack `task deploy` deploys."),
    ] = DEFAULT_STACK_NAME,
    template: Annotated[
        Path, typer.Option("--template", help="The template `sam build` builds.")
    ] = Path("template.yaml"),
    as_json: JsonOption = False,
) -> None:
    """Check the deploy prerequisites (SAM CLI, builder, go-task, credentials, region, stack)."""
    settings = settings_of(ctx)
    functions, problem = _read_functions(template)
    report = run_doctor(
        DoctorInputs(
            functions=functions,
            template_problem=problem,
            which=shutil.which,
            run=_run,
            build_python=os.environ.get("PYTHON") or "python3",
            venv_bin=Path(sys.executable).parent,
            credentials=lambda: _credentials_method(settings),
            region=_region(settings),
            stack_name=stack_name,
            stack=lambda name: read_stack_status(_cloudformation(settings), name),
        )
    )
    if as_json:
        print_json(report.to_json())
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(code=1)


def _read_functions(template: Path) -> tuple[tuple[FunctionBuild, ...] | None, str | None]:
    try:
        return functions_to_build(load_template(template)), None
    except TemplateError as exc:
        return None, str(exc)


def _run(argv: Sequence[str]) -> CommandResult | None:
    try:
        completed = subprocess.run(  # noqa: S603 - argv of tools found on PATH, no shell
            list(argv),
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return CommandResult(completed.returncode, completed.stdout + completed.stderr)


def _session(settings: CliSettings) -> boto3.Session:
    # The operator's own session, never the dummy credentials the CLI lends an emulator:
    # the question is whether `sam deploy` will find credentials.
    return boto3.Session(profile_name=settings.profile, region_name=settings.region)


def _credentials_method(settings: CliSettings) -> str | None:
    # Resolving the chain reads files and the environment; nothing is sent until credentials
    # are used, so this needs no network (SSO and assume-role providers defer their calls).
    credentials = _session(settings).get_credentials()
    return None if credentials is None else str(credentials.method)


def _region(settings: CliSettings) -> str | None:
    try:
        return _session(settings).region_name or None
    except BotoCoreError:  # the profile does not exist: the credentials line says so
        return settings.region


def _cloudformation(settings: CliSettings) -> Any:
    # `Any`: boto3-stubs without the cloudformation extra types this client as BaseClient.
    return _session(settings).client(
        "cloudformation", endpoint_url=settings.endpoint_url, config=_CLOUDFORMATION_CONFIG
    )


def _print_report(report: DoctorReport) -> None:
    console = out_console()
    width = max(len(check.name) for check in report.checks)
    for check in report.checks:
        style = _STYLE[check.status]
        console.print(
            f"[{style}]{check.status.value:<4}[/{style}] {check.name:<{width}}  "
            f"{escape(check.detail)}",
            soft_wrap=True,
            highlight=False,
        )
        if check.hint:
            console.print(
                f"     {'':<{width}}  fix: {escape(check.hint)}", soft_wrap=True, highlight=False
            )
    verdict = "ready to deploy" if report.ok else "not ready: fix the lines marked fail"
    console.print(verdict, highlight=False)
