"""`orgsync reconcile --on-aws`: a run by the state machine of a deployed stack, followed here.

The state machine (template.yaml `ReconcileStateMachine`, named `<NamePrefix>poc-reconcile`)
runs every slice of pass users in the Distributed Map labelled `UsersPass`, then every slice of
pass organizations in `OrganizationsPass`, one Lambda invocation per slice; its last state merges
the slices' reports, so the execution's output is the run's `ReconcileReport.to_json()` plus
`report_key` (the report's key in the results bucket) and the slices that did not report.

This module finds the state machine, starts a run and follows it. It never stops a run: an
operator who stops following (Ctrl-C) leaves the run going, and stopping it is a decision of its
own (`aws stepfunctions stop-execution`). API shapes: botocore's `stepfunctions` service model
(DescribeExecution, ListMapRuns, DescribeMapRun); map run ARNs are
`arn:<partition>:states:<region>:<account>:mapRun:<machine>/<label>:<id>`, with the Map state's
`Label` (a UUID without one).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import ClientError

from orgsync.errors import OrgsyncError
from orgsync.ops.reconcile.report import ReconcileReport
from orgsync.ops.reconcile.slices import MAX_TOTAL_SEGMENTS, Pass

# The state machine's name after the stack's NamePrefix (template.yaml).
STATE_MACHINE_NAME = "poc-reconcile"
# The Map states' labels (template.yaml), which their map run ARNs carry.
MAP_LABELS: Mapping[str, Pass] = {"UsersPass": Pass.USERS, "OrganizationsPass": Pass.ORGANIZATIONS}
# The state machine's input check accepts 1 to 1000 slices in flight per map.
MAX_CONCURRENCY = 1000
# The state machine's own default (template.yaml): docs/reconcile.md sizes it to the tables.
DEFAULT_MAX_CONCURRENCY = 16
# A run takes minutes; three small reads every two seconds stay far below the API's quotas.
POLL_SECONDS = 2.0
# DescribeExecution is eventually consistent: a run just started may not be visible at once.
START_GRACE_SECONDS = 30.0
# PENDING_REDRIVE: someone asked for a redrive of a failed run; it runs again.
_RUNNING = frozenset({"RUNNING", "PENDING_REDRIVE"})
_SUCCEEDED = "SUCCEEDED"
_CAUSE_CHARS = 500

# (pass, slices succeeded, slices failed / timed out / aborted, slices in the pass's map run).
OnAwsProgress = Callable[[Pass, int, int, int], None]


class StepFunctions(Protocol):
    """The Step Functions calls this module makes (boto3's `stepfunctions` client has them; the
    dev set has no Step Functions stubs, so this names exactly what is used)."""

    def list_state_machines(self, **kwargs: Any) -> dict[str, Any]: ...
    def describe_state_machine(self, **kwargs: Any) -> dict[str, Any]: ...
    def start_execution(self, **kwargs: Any) -> dict[str, Any]: ...
    def describe_execution(self, **kwargs: Any) -> dict[str, Any]: ...
    def list_map_runs(self, **kwargs: Any) -> dict[str, Any]: ...
    def describe_map_run(self, **kwargs: Any) -> dict[str, Any]: ...


class StateMachineNotFoundError(OrgsyncError):
    """No state machine of that name in the region: the stack is not deployed there."""


class RunFailedError(OrgsyncError):
    """The execution ended FAILED, TIMED_OUT or ABORTED; the message carries its error and cause."""

    def __init__(self, execution: Mapping[str, Any]) -> None:
        self.execution_arn = str(execution["executionArn"])
        self.status = str(execution["status"])
        self.error = execution.get("error")
        self.cause = execution.get("cause")
        what = (
            ": ".join(part for part in (self.error, _clip(self.cause)) if part) or "no cause given"
        )
        super().__init__(
            f"reconcile run {_name_of(self.execution_arn)} ended {self.status}: {what} (its "
            f"history: aws stepfunctions get-execution-history --execution-arn "
            f"{self.execution_arn})"
        )


class RunOutputError(OrgsyncError):
    """The execution succeeded but its output is not a reconcile report."""


@dataclass(frozen=True, slots=True)
class StateMachine:
    arn: str
    name: str


@dataclass(frozen=True, slots=True)
class RunInput:
    """The state machine's input: `{"total_segments": N, "repair": bool, "max_concurrency": C}`."""

    total_segments: int
    repair: bool
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY

    def __post_init__(self) -> None:
        # The state machine fails such a run at once (InvalidInput); say so before starting it.
        if not 1 <= self.total_segments <= MAX_TOTAL_SEGMENTS:
            raise ValueError(f"total segments must be 1 to {MAX_TOTAL_SEGMENTS}")
        if not 1 <= self.max_concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"max concurrency must be 1 to {MAX_CONCURRENCY}")

    def to_json(self) -> dict[str, Any]:
        return {
            "total_segments": self.total_segments,
            "repair": self.repair,
            "max_concurrency": self.max_concurrency,
        }


@dataclass(frozen=True, slots=True)
class StartedRun:
    execution_arn: str
    name: str


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What an execution says about itself before it is followed (`--follow`)."""

    execution_arn: str
    name: str
    status: str
    # From the execution's input; None where it left them to the state machine's defaults.
    total_segments: int | None
    repair: bool | None


@dataclass(frozen=True, slots=True)
class PassProgress:
    """One pass's map run, as DescribeMapRun's item counts have it (one item is one slice)."""

    pass_: Pass
    succeeded: int
    failed: int  # failed, timed out and aborted items: the slices that did not report
    total: int
    finished: bool


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """A succeeded run: the merged report, and the execution's whole output around it."""

    execution_arn: str
    state_machine_arn: str
    report: ReconcileReport
    output: dict[str, Any]

    @property
    def report_key(self) -> str | None:
        key = self.output.get("report_key")
        return key if isinstance(key, str) else None

    @property
    def complete(self) -> bool:
        """False when some slice did not report (the merge says so): the report has a hole."""
        return self.output.get("complete", True) is not False


def state_machine_name(name_prefix: str) -> str:
    return f"{name_prefix}{STATE_MACHINE_NAME}"


def find_state_machine(
    sfn: StepFunctions, name: str, *, region: str | None, page_size: int | None = None
) -> StateMachine:
    """The state machine named `name`: ListStateMachines, page after page (there is no lookup
    by name)."""
    request: dict[str, Any] = {} if page_size is None else {"maxResults": page_size}
    while True:
        page = sfn.list_state_machines(**request)
        for machine in page.get("stateMachines", []):
            if machine["name"] == name:
                return StateMachine(arn=machine["stateMachineArn"], name=name)
        token = page.get("nextToken")
        if not token:
            break
        request["nextToken"] = token
    raise StateMachineNotFoundError(
        f"no state machine named {name} in {region or 'the default region'}: "
        "deploy the stack (README) first"
    )


def execution_name(now: datetime, *, repair: bool, token: str) -> str:
    """`reconcile-20250102T030405Z-audit-1a2b`: sortable, says what the run does, and unique
    (a token against two starts in one second; an execution name cannot be reused for 90 days)."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"reconcile-{stamp}-{'repair' if repair else 'audit'}-{token}"


def start_run(
    sfn: StepFunctions,
    machine: StateMachine,
    run_input: RunInput,
    *,
    now: datetime | None = None,
    token: str | None = None,
) -> StartedRun:
    name = execution_name(
        now or datetime.now(UTC), repair=run_input.repair, token=token or secrets.token_hex(2)
    )
    started = sfn.start_execution(
        stateMachineArn=machine.arn, name=name, input=json.dumps(run_input.to_json())
    )
    return StartedRun(execution_arn=started["executionArn"], name=name)


def read_run(sfn: StepFunctions, execution_arn: str) -> RunInfo:
    """The execution's name, status and input (ExecutionDoesNotExist if there is none)."""
    execution = sfn.describe_execution(executionArn=execution_arn)
    given = _json_object(execution.get("input"))
    segments = given.get("total_segments")
    repair = given.get("repair")
    return RunInfo(
        execution_arn=execution_arn,
        name=str(execution.get("name") or _name_of(execution_arn)),
        status=str(execution["status"]),
        total_segments=segments if isinstance(segments, int) else None,
        repair=repair if isinstance(repair, bool) else None,
    )


def follow(
    sfn: StepFunctions,
    execution_arn: str,
    *,
    on_progress: OnAwsProgress | None = None,
    poll_seconds: float = POLL_SECONDS,
    grace_seconds: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RunOutcome:
    """Poll the execution and its map runs until it ends; its report, or RunFailedError.

    Each poll reads the execution, then the map runs, so the last progress reported is the
    final count. `grace_seconds`: how long an execution that cannot be found yet is waited for
    (a run just started: START_GRACE_SECONDS). Ctrl-C propagates and leaves the run going.
    """
    progress = on_progress or _no_progress
    map_runs = _MapRuns(sfn, execution_arn)
    give_up = clock() + grace_seconds
    while True:
        execution = _describe(sfn, execution_arn, waiting=clock() < give_up)
        if execution is not None:
            for found in map_runs.poll():
                progress(found.pass_, found.succeeded, found.failed, found.total)
            if execution["status"] not in _RUNNING:
                return _outcome(execution)
        sleep(poll_seconds)


def results_bucket(sfn: StepFunctions, state_machine_arn: str) -> str | None:
    """The bucket the state machine writes its maps' results to, read from its definition
    (every ResultWriter names it; the merged report is written there too). None if it has none."""
    described = sfn.describe_state_machine(stateMachineArn=state_machine_arn)
    definition = _json_object(described.get("definition"))
    buckets = {bucket for bucket in _result_writer_buckets(definition) if isinstance(bucket, str)}
    return buckets.pop() if len(buckets) == 1 else None


def map_label(map_run_arn: str) -> str | None:
    """`Label` of `arn:…:mapRun:<machine>/<label>:<id>`; None for any other shape."""
    _, found, resource = map_run_arn.partition(":mapRun:")
    _, slash, rest = resource.partition("/")
    label, colon, _ = rest.rpartition(":")
    return label if found and slash and colon and label else None


class _MapRuns:
    """The execution's map runs, one per pass; a finished one is not described again."""

    def __init__(self, sfn: StepFunctions, execution_arn: str) -> None:
        self._sfn = sfn
        self._execution_arn = execution_arn
        self._finished: dict[str, PassProgress] = {}

    def poll(self) -> list[PassProgress]:
        by_pass: dict[Pass, PassProgress] = {}
        # Oldest first: a pass's later map run (a retried Map state) replaces its earlier one.
        runs = sorted(self._list(), key=lambda run: run["startDate"])
        for index, run in enumerate(runs):
            arn = run["mapRunArn"]
            pass_ = _pass_of(arn, index)
            if pass_ is None:
                continue
            found = self._finished.get(arn)
            if found is None:
                found = self._describe(arn, pass_)
            by_pass[pass_] = found
        return [by_pass[pass_] for pass_ in Pass if pass_ in by_pass]

    def _list(self) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {"executionArn": self._execution_arn}
        while True:
            page = self._sfn.list_map_runs(**request)
            yield from page.get("mapRuns", [])
            token = page.get("nextToken")
            if not token:
                return
            request["nextToken"] = token

    def _describe(self, arn: str, pass_: Pass) -> PassProgress:
        described = self._sfn.describe_map_run(mapRunArn=arn)
        counts = described.get("itemCounts", {})
        found = PassProgress(
            pass_=pass_,
            succeeded=int(counts.get("succeeded", 0)),
            failed=sum(int(counts.get(kind, 0)) for kind in ("failed", "timedOut", "aborted")),
            total=int(counts.get("total", 0)),
            finished=described.get("status", "RUNNING") != "RUNNING",
        )
        if found.finished:
            self._finished[arn] = found
        return found


def _pass_of(map_run_arn: str, index: int) -> Pass | None:
    """By the Map state's label; by start order (users first) if the label is not one we know."""
    labelled = MAP_LABELS.get(map_label(map_run_arn) or "")
    if labelled is not None:
        return labelled
    passes = tuple(Pass)
    return passes[index] if index < len(passes) else None


def _describe(sfn: StepFunctions, execution_arn: str, *, waiting: bool) -> dict[str, Any] | None:
    try:
        return sfn.describe_execution(executionArn=execution_arn)
    except ClientError as exc:
        if waiting and exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            return None
        raise


def _outcome(execution: Mapping[str, Any]) -> RunOutcome:
    if execution["status"] != _SUCCEEDED:
        raise RunFailedError(execution)
    arn = str(execution["executionArn"])
    try:
        output = json.loads(execution["output"])
        report = ReconcileReport.from_json(output)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RunOutputError(
            f"reconcile run {_name_of(arn)} succeeded, but its output is not a reconcile report "
            f"({type(exc).__name__}: {exc}): is {execution.get('stateMachineArn')} the stack's "
            "reconcile state machine?"
        ) from exc
    return RunOutcome(
        execution_arn=arn,
        state_machine_arn=str(execution["stateMachineArn"]),
        report=report,
        output=output,
    )


def _result_writer_buckets(node: object) -> Iterator[object]:
    if isinstance(node, dict):
        writer = node.get("ResultWriter")
        if isinstance(writer, dict):
            # JSONPath states name it in Parameters, JSONata states in Arguments.
            for key in ("Parameters", "Arguments"):
                fields = writer.get(key)
                if isinstance(fields, dict):
                    yield fields.get("Bucket")
        for value in node.values():
            yield from _result_writer_buckets(value)
    elif isinstance(node, list):
        for value in node:
            yield from _result_writer_buckets(value)


def _json_object(text: object) -> dict[str, Any]:
    if not isinstance(text, str):
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _name_of(execution_arn: str) -> str:
    return execution_arn.rsplit(":", 1)[-1]


def _clip(text: str | None) -> str | None:
    """A cause on one line, cut: a Lambda error's cause is its whole JSON with a stack trace."""
    if text is None:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= _CAUSE_CHARS else flat[: _CAUSE_CHARS - 1] + "…"


def _no_progress(pass_: Pass, succeeded: int, failed: int, total: int) -> None:
    del pass_, succeeded, failed, total
