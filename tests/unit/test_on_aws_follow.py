"""The follow loop of `orgsync reconcile --on-aws` (orgsync.ops.reconcile.on_aws) against a
scripted Step Functions.

A fake, not moto: it plays what AWS does and moto 5 cannot show (tests/integration/
test_reconcile_on_aws.py runs the rest on moto's interpreter): a map run whose total is known
before its items start, FAILED / TIMED_OUT / ABORTED with and without an error and cause,
PENDING_REDRIVE, an execution DescribeExecution does not see yet (it is eventually consistent),
map runs without the template's labels, several pages of map runs. Each poll is one scripted
step: what DescribeExecution, ListMapRuns and DescribeMapRun answer until the next one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orgsync.ops.reconcile import Pass, ReconcileReport
from orgsync.ops.reconcile.on_aws import (
    RunFailedError,
    RunInput,
    RunOutputError,
    execution_name,
    follow,
    map_label,
    read_run,
    results_bucket,
)

EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:p-poc-reconcile:reconcile-1"
MACHINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:p-poc-reconcile"
USERS_RUN = "arn:aws:states:eu-west-1:123456789012:mapRun:p-poc-reconcile/UsersPass:7f0c"
ORGS_RUN = "arn:aws:states:eu-west-1:123456789012:mapRun:p-poc-reconcile/OrganizationsPass:9a1d"
T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
REPORT = ReconcileReport(
    repair=True,
    users_scanned=10,
    drift={"missing": 1},
    users_with_drift=1,
    users_repaired=1,
    slices=("organizations-0-of-1", "users-0-of-1"),
)


def execution(status: str, **fields: Any) -> dict[str, Any]:
    return {"executionArn": EXECUTION, "stateMachineArn": MACHINE, "status": status, **fields}


def succeeded(report: ReconcileReport = REPORT, **extra: Any) -> dict[str, Any]:
    output = {**report.to_json(), "report_key": "reports/reconcile-1.json", **extra}
    return execution("SUCCEEDED", output=json.dumps(output))


def map_run(
    arn: str, *, started: int, succeeded: int = 0, failed: int = 0, total: int, done: bool = False
) -> dict[str, Any]:
    return {
        "mapRunArn": arn,
        "startDate": T0 + timedelta(seconds=started),
        "status": "SUCCEEDED" if done else "RUNNING",
        "itemCounts": {
            "pending": total - succeeded - failed,
            "running": 0,
            "succeeded": succeeded,
            "failed": failed,
            "timedOut": 0,
            "aborted": 0,
            "total": total,
            "resultsWritten": succeeded,
        },
    }


@dataclass
class Step:
    execution: dict[str, Any] | Exception
    map_runs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ScriptedStepFunctions:
    """Answers from the current step; each DescribeExecution moves to the next step."""

    steps: list[Step]
    page_size: int = 100
    definition: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    step: int = -1

    def describe_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.step = min(self.step + 1, len(self.steps) - 1)
        self.calls.append(("DescribeExecution", kwargs["executionArn"]))
        found = self.steps[self.step].execution
        if isinstance(found, Exception):
            raise found
        return found

    def list_map_runs(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["executionArn"] == EXECUTION
        start = int(kwargs.get("nextToken", 0))
        runs = self.steps[self.step].map_runs
        page = [
            {key: run[key] for key in ("mapRunArn", "startDate")}
            for run in runs[start : start + self.page_size]
        ]
        self.calls.append(("ListMapRuns", str(start)))
        more = start + self.page_size < len(runs)
        return {"mapRuns": page, **({"nextToken": str(start + self.page_size)} if more else {})}

    def describe_map_run(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("DescribeMapRun", kwargs["mapRunArn"]))
        (run,) = (
            r for r in self.steps[self.step].map_runs if r["mapRunArn"] == kwargs["mapRunArn"]
        )
        return run

    def describe_state_machine(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["stateMachineArn"] == MACHINE
        return {"stateMachineArn": MACHINE, "definition": json.dumps(self.definition)}

    def list_state_machines(self, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("not called by these tests")

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("not called by these tests")


@dataclass
class Clock:
    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def run_follow(sfn: ScriptedStepFunctions, clock: Clock | None = None, **options: Any):
    clock = clock or Clock()
    seen: list[tuple[Pass, int, int, int]] = []
    outcome = follow(
        sfn,
        EXECUTION,
        on_progress=lambda *progress: seen.append(progress),
        poll_seconds=3.0,
        sleep=clock.sleep,
        clock=clock,
        **options,
    )
    return outcome, seen, clock


def test_each_pass_is_reported_from_its_map_run_until_the_run_succeeds():
    users = {"arn": USERS_RUN, "started": 1, "total": 4}
    orgs = {"arn": ORGS_RUN, "started": 9, "total": 4}
    sfn = ScriptedStepFunctions(
        [
            Step(execution("RUNNING")),
            Step(execution("RUNNING"), [map_run(**users, succeeded=1)]),
            Step(
                execution("RUNNING"),
                [map_run(**users, succeeded=4, done=True), map_run(**orgs, succeeded=2)],
            ),
            Step(
                succeeded(),
                [map_run(**users, succeeded=4, done=True), map_run(**orgs, succeeded=4, done=True)],
            ),
        ]
    )
    outcome, seen, clock = run_follow(sfn)

    assert seen == [
        (Pass.USERS, 1, 0, 4),
        (Pass.USERS, 4, 0, 4),
        (Pass.ORGANIZATIONS, 2, 0, 4),
        (Pass.USERS, 4, 0, 4),
        (Pass.ORGANIZATIONS, 4, 0, 4),
    ]
    assert clock.slept == [3.0, 3.0, 3.0]
    assert outcome.report == ReconcileReport.from_json(REPORT.to_json())
    assert (outcome.report_key, outcome.complete) == ("reports/reconcile-1.json", True)
    assert outcome.state_machine_arn == MACHINE
    # A finished map run is not described again.
    assert sfn.calls.count(("DescribeMapRun", USERS_RUN)) == 2


def test_failed_slices_are_counted_and_a_merge_that_says_incomplete_is_kept():
    run = map_run(USERS_RUN, started=1, succeeded=3, failed=1, total=4, done=True)
    run["itemCounts"].update(timedOut=1, aborted=1, total=6)
    sfn = ScriptedStepFunctions([Step(succeeded(failed_slices=3, complete=False), [run])])
    outcome, seen, _ = run_follow(sfn)
    assert seen == [(Pass.USERS, 3, 3, 6)]
    assert not outcome.complete


@pytest.mark.parametrize(
    ("ended", "says"),
    [
        (
            execution(
                "FAILED",
                error="States.ExceedToleratedFailureThreshold",
                cause="The specified tolerated failure threshold was exceeded",
            ),
            "ended FAILED: States.ExceedToleratedFailureThreshold: The specified tolerated "
            "failure threshold was exceeded (its history: aws stepfunctions "
            f"get-execution-history --execution-arn {EXECUTION})",
        ),
        (execution("TIMED_OUT"), "ended TIMED_OUT: no cause given (its history:"),
        (execution("ABORTED", cause="stopped by an operator"), "ended ABORTED: stopped by an"),
    ],
)
def test_a_run_that_did_not_succeed_is_an_error_with_its_status_error_and_cause(ended, says):
    sfn = ScriptedStepFunctions([Step(execution("RUNNING")), Step(ended)])
    with pytest.raises(RunFailedError) as failed:
        run_follow(sfn)
    assert str(failed.value).startswith(f"reconcile run reconcile-1 {says}")
    assert (failed.value.status, failed.value.error) == (ended["status"], ended.get("error"))


def test_a_lambda_cause_is_flattened_to_one_line_and_cut():
    cause = json.dumps(
        {"errorMessage": "boom", "errorType": "RuntimeError", "stackTrace": ["  x\n"] * 400},
        indent=2,
    )
    sfn = ScriptedStepFunctions([Step(execution("FAILED", error="RuntimeError", cause=cause))])
    with pytest.raises(RunFailedError) as failed:
        run_follow(sfn)
    message = str(failed.value)
    assert "\n" not in message
    assert '"errorMessage": "boom"' in message
    assert len(message) < 800
    assert failed.value.cause == cause  # kept whole on the exception


def test_pending_redrive_is_followed_as_running():
    sfn = ScriptedStepFunctions([Step(execution("PENDING_REDRIVE")), Step(succeeded())])
    outcome, _, clock = run_follow(sfn)
    assert outcome.report.users_repaired == 1
    assert clock.slept == [3.0]


def not_yet_visible() -> ClientError:
    error = {"Error": {"Code": "ExecutionDoesNotExist", "Message": "Execution Does Not Exist"}}
    return ClientError(error, "DescribeExecution")


def test_a_run_just_started_is_waited_for_within_the_grace_and_not_after():
    sfn = ScriptedStepFunctions(
        [Step(not_yet_visible()), Step(not_yet_visible()), Step(succeeded())]
    )
    outcome, _, clock = run_follow(sfn, grace_seconds=10.0)
    assert outcome.report.users_scanned == 10
    assert clock.slept == [3.0, 3.0]

    sfn = ScriptedStepFunctions([Step(not_yet_visible())] * 5)
    with pytest.raises(ClientError):
        run_follow(sfn, grace_seconds=10.0)
    assert sfn.step == 4  # 0, 3, 6 and 9 s waited; at 12 s the grace is over

    sfn = ScriptedStepFunctions([Step(not_yet_visible())])
    with pytest.raises(ClientError):
        run_follow(sfn)  # --follow of an ARN: no grace


def test_map_runs_are_read_page_by_page_and_a_retried_map_replaces_its_first_run():
    first_try = map_run(USERS_RUN, started=1, failed=4, total=4, done=True)
    retried = map_run(USERS_RUN.replace("7f0c", "8e2b"), started=5, succeeded=2, total=4)
    sfn = ScriptedStepFunctions([Step(succeeded(), [retried, first_try])], page_size=1)
    _, seen, _ = run_follow(sfn)
    assert seen == [(Pass.USERS, 2, 0, 4)]
    assert [call for call in sfn.calls if call[0] == "ListMapRuns"] == [
        ("ListMapRuns", "0"),
        ("ListMapRuns", "1"),
    ]


def test_map_runs_without_the_templates_labels_are_the_passes_in_start_order():
    unlabelled = "arn:aws:states:eu-west-1:1:mapRun:p-poc-reconcile/{}:{}"
    runs = [
        map_run(unlabelled.format("b1d2", "c"), started=9, succeeded=1, total=2),
        map_run(unlabelled.format("a0c1", "d"), started=1, succeeded=2, total=2, done=True),
    ]
    _, seen, _ = run_follow(ScriptedStepFunctions([Step(succeeded(), runs)]))
    assert seen == [(Pass.USERS, 2, 0, 2), (Pass.ORGANIZATIONS, 1, 0, 2)]


@pytest.mark.parametrize(
    "output",
    [None, "not json", json.dumps({"report_key": "reports/x.json"}), json.dumps([1, 2])],
)
def test_a_run_that_succeeds_without_a_report_is_an_error_naming_the_state_machine(output):
    ended = execution("SUCCEEDED", **({} if output is None else {"output": output}))
    with pytest.raises(RunOutputError) as failed:
        run_follow(ScriptedStepFunctions([Step(ended)]))
    assert str(failed.value).startswith("reconcile run reconcile-1 succeeded, but its output")
    assert MACHINE in str(failed.value)


def test_execution_names_say_when_and_what_and_are_valid_step_functions_names():
    name = execution_name(T0 + timedelta(hours=1), repair=True, token="1a2b")
    assert name == "reconcile-20250102T040405Z-repair-1a2b"
    assert execution_name(T0, repair=False, token="ffff") == "reconcile-20250102T030405Z-audit-ffff"
    assert len(name) <= 80
    assert not set(name) & set(' <>{}[]?*"#%\\^|~`$&,;:/')


def test_the_input_is_checked_as_the_state_machine_checks_it():
    assert RunInput(total_segments=1000, repair=True, max_concurrency=1000).to_json() == {
        "total_segments": 1000,
        "repair": True,
        "max_concurrency": 1000,
    }
    for bad in ({"total_segments": 0}, {"total_segments": 1001}, {"max_concurrency": 0}):
        with pytest.raises(ValueError, match="must be 1 to 1000"):
            RunInput(**{"total_segments": 4, "repair": False, **bad})


def test_read_run_takes_what_the_input_gives_and_leaves_the_rest_unknown():
    given = json.dumps({"total_segments": 8})
    sfn = ScriptedStepFunctions([Step(execution("RUNNING", name="from-console", input=given))])
    run = read_run(sfn, EXECUTION)
    assert (run.name, run.status, run.total_segments, run.repair) == (
        "from-console",
        "RUNNING",
        8,
        None,
    )


def test_map_labels_are_read_from_map_run_arns():
    assert map_label(USERS_RUN) == "UsersPass"
    assert map_label(ORGS_RUN) == "OrganizationsPass"
    assert map_label("arn:aws:states:r:1:mapRun:machine/my/label:id") == "my/label"
    assert map_label(EXECUTION) is None
    assert map_label("arn:aws:states:r:1:mapRun:machine-without-label") is None


@pytest.mark.parametrize(
    ("definition", "bucket"),
    [
        ({"States": {"M": {"ResultWriter": {"Parameters": {"Bucket": "b-1"}}}}}, "b-1"),
        (
            {
                "States": {
                    "A": {"ResultWriter": {"Arguments": {"Bucket": "b-2"}}},
                    "B": {
                        "ItemProcessor": {"States": {}},
                        "ResultWriter": {"Arguments": {"Bucket": "b-2"}},
                    },
                }
            },
            "b-2",
        ),
        ({"States": {"M": {"Type": "Map"}}}, None),
        (
            {
                "States": {
                    "A": {"ResultWriter": {"Parameters": {"Bucket": "one"}}},
                    "B": {"ResultWriter": {"Parameters": {"Bucket": "two"}}},
                }
            },
            None,
        ),
    ],
)
def test_the_results_bucket_is_the_one_every_result_writer_names(definition, bucket):
    sfn = ScriptedStepFunctions([], definition=definition)
    assert results_bucket(sfn, MACHINE) == bucket
