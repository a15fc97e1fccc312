"""`orgsync reconcile --on-aws` / `--follow ARN`: what the options may be, then start a run of
the stack's state machine (or attach to one) and follow it, one bar per pass; `cli.reconcile`
prints the report it returns with its own `_print_reconcile`, then `print_on_aws`.

Ctrl-C stops the following, never the run: the lines printed then say how to follow it again
and how to stop it. Thin wiring over orgsync.ops.reconcile.on_aws.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import typer
from botocore.exceptions import ClientError
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from orgsync.cli.clients import effective_region, stepfunctions_client
from orgsync.cli.render import err_console, out_console
from orgsync.cli.root import RefusedInputError
from orgsync.cli.settings import CliSettings
from orgsync.ops.endpoints import is_local_endpoint
from orgsync.ops.reconcile import Pass
from orgsync.ops.reconcile.on_aws import (
    START_GRACE_SECONDS,
    RunInput,
    RunOutcome,
    StepFunctions,
    find_state_machine,
    follow,
    read_run,
    results_bucket,
    start_run,
    state_machine_name,
)

# What a shell gives a process stopped by SIGINT (128 + 2).
INTERRUPTED_EXIT_CODE = 130


@dataclass(frozen=True, slots=True)
class OnAwsRequest:
    """What the command line asked of a run on AWS."""

    repair: bool
    segments: int | None  # None: not given
    max_concurrency: int | None  # None: not given
    # The options of runs on this machine, by flag: None where not given.
    local_only: dict[str, object]


@dataclass(frozen=True, slots=True)
class OnAwsResult:
    outcome: RunOutcome
    # s3://<results bucket>/<report key>; None when the bucket could not be read.
    report_uri: str | None


def refuse_on_aws(settings: CliSettings, *, follow_arn: str | None, request: OnAwsRequest) -> None:
    """RefusedInputError for what cannot work on AWS, before any request is sent."""
    flag = "--on-aws" if follow_arn is None else "--follow"
    if is_local_endpoint(settings.endpoint_url):
        raise RefusedInputError(
            f"{flag} needs Step Functions, and --endpoint-url (or AWS_ENDPOINT_URL) "
            f"{settings.endpoint_url} is this machine: the local stack does not emulate Step "
            "Functions (run `orgsync reconcile` without --on-aws there)"
        )
    for option, value in request.local_only.items():
        if value is not None:
            raise RefusedInputError(
                f"{option} is for runs on this machine; {flag} runs every slice of both passes "
                "in the state machine"
            )
    if settings.names.users_table or settings.names.organizations_table:
        raise RefusedInputError(
            f"{flag} reconciles the tables of the stack its state machine belongs to: drop "
            "--users-table / --organizations-table (or ORGSYNC_USERS_TABLE / "
            "ORGSYNC_ORGANIZATIONS_TABLE) and pick the stack with --name-prefix"
        )
    if follow_arn is None:
        return
    given = {
        "--repair": request.repair,
        "--segments": request.segments is not None,
        "--max-concurrency": request.max_concurrency is not None,
    }
    for option, was_given in given.items():
        if was_given:
            raise RefusedInputError(
                f"{option} is for starting a run (--on-aws); --follow attaches to one that has "
                "its own"
            )


def start_on_aws(settings: CliSettings, run_input: RunInput, *, show_progress: bool) -> OnAwsResult:
    sfn = stepfunctions_client(settings)
    machine = find_state_machine(
        sfn, state_machine_name(settings.name_prefix), region=effective_region(settings)
    )
    started = start_run(sfn, machine, run_input)
    _say(
        f"started {started.name} on {machine.name} ({_mode(run_input.repair)}, "
        f"{run_input.total_segments} segments, up to {run_input.max_concurrency} slices at a "
        f"time): {started.execution_arn}"
    )
    return _follow(
        settings,
        sfn,
        started.execution_arn,
        total_segments=run_input.total_segments,
        grace_seconds=START_GRACE_SECONDS,
        show_progress=show_progress,
    )


def follow_on_aws(settings: CliSettings, execution_arn: str, *, show_progress: bool) -> OnAwsResult:
    sfn = stepfunctions_client(settings)
    run = read_run(sfn, execution_arn)
    mode = "" if run.repair is None else f", {_mode(run.repair)}"
    _say(f"following {run.name} ({run.status}{mode}): {execution_arn}")
    return _follow(
        settings,
        sfn,
        execution_arn,
        total_segments=run.total_segments,
        grace_seconds=0.0,
        show_progress=show_progress,
    )


def _follow(
    settings: CliSettings,
    sfn: StepFunctions,
    execution_arn: str,
    *,
    total_segments: int | None,
    grace_seconds: float,
    show_progress: bool,
) -> OnAwsResult:
    try:
        if show_progress:
            with _PassBars(total_segments) as bars:
                outcome = follow(
                    sfn, execution_arn, on_progress=bars.update, grace_seconds=grace_seconds
                )
        else:
            outcome = follow(sfn, execution_arn, grace_seconds=grace_seconds)
    except KeyboardInterrupt:
        _say_still_running(settings, execution_arn)
        raise typer.Exit(code=INTERRUPTED_EXIT_CODE) from None
    return OnAwsResult(outcome=outcome, report_uri=_report_uri(sfn, outcome))


class _PassBars:
    """One bar per pass from its map run's item counts: slices succeeded of the pass's slices."""

    def __init__(self, total_segments: int | None) -> None:
        self._total = total_segments
        self._progress = Progress(
            TextColumn("{task.description:<19}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("slices · {task.fields[failed]} failed"),
            TimeElapsedColumn(),
            console=out_console(),
            transient=True,
        )
        self._tasks: dict[Pass, TaskID] = {}

    def __enter__(self) -> _PassBars:
        self._progress.start()
        for pass_ in Pass:
            # Not started: a pass's clock starts when its map run does.
            self._tasks[pass_] = self._progress.add_task(
                f"{pass_.value} pass", total=self._total, start=False, failed=0
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, pass_: Pass, succeeded: int, failed: int, total: int) -> None:
        task = self._tasks[pass_]
        self._progress.start_task(task)
        # The map run's total counts the items it has started so far on some endpoints.
        self._progress.update(
            task, completed=succeeded, total=max(total, self._total or 0) or None, failed=failed
        )


def _report_uri(sfn: StepFunctions, outcome: RunOutcome) -> str | None:
    key = outcome.report_key
    if key is None:
        return None
    try:
        bucket = results_bucket(sfn, outcome.state_machine_arn)
    except ClientError:  # e.g. no states:DescribeStateMachine: the report is shown anyway
        return None
    return None if bucket is None else f"s3://{bucket}/{key}"


def _say_still_running(settings: CliSettings, execution_arn: str) -> None:
    region = _region_of(execution_arn)
    options: list[str] = []
    if settings.profile:
        options += ["--profile", settings.profile]
    if settings.endpoint_url:
        options += ["--endpoint-url", settings.endpoint_url]
    if region:
        options += ["--region", region]
    again = shlex.join(["orgsync", *options, "reconcile", "--follow", execution_arn])
    aws_options = [] if region is None else ["--region", region]
    stop = shlex.join(
        ["aws", "stepfunctions", "stop-execution", *aws_options, "--execution-arn", execution_arn]
    )
    _say(f"stopped following; the run goes on: {execution_arn}")
    _say(f"follow it again: {again}")
    _say(f"stop it: {stop}")


def _region_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else None


def _mode(repair: bool) -> str:
    return "repair" if repair else "audit"


def _say(line: str) -> None:
    # stderr: with --json, stdout carries the report alone. soft_wrap keeps ARNs whole.
    err_console().print(escape(line), soft_wrap=True, highlight=False)


def print_on_aws(result: OnAwsResult) -> None:
    """After the report: whether it has a hole, where it is kept, which execution made it."""
    console = out_console()
    output = result.outcome.output
    if not result.outcome.complete:
        sample = ", ".join(str(name) for name in output.get("unfinished_sample", [])[:5])
        example = f" (e.g. {sample})" if sample else ""
        console.print(
            escape(
                f"incomplete: {output.get('failed_slices', 0)} slice(s) failed, "
                f"{output.get('pending_slices', 0)} never ran, "
                f"{output.get('missing_slices') or 0} missing{example}"
            ),
            highlight=False,
        )
    where = result.report_uri or result.outcome.report_key
    if where is not None:
        console.print(f"report: {escape(where)}", highlight=False, soft_wrap=True)
    console.print(
        f"execution: {escape(result.outcome.execution_arn)}", highlight=False, soft_wrap=True
    )
