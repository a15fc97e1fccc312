"""`orgsync reconcile --on-aws` / `--follow` against the conftest's real moto server over HTTP.

moto 5 runs state machines only in its parser mode (`POST /moto-api/config` with
`{"stepfunctions": {"execute_state_machine": true}}`; by default an execution stays RUNNING for
ever, with no output and no map runs). In that mode it runs the template's own definition:
the input defaults and checks, `States.ArrayRange`, both Distributed Maps with their labels
and `MaxConcurrencyPath`, ListMapRuns / DescribeMapRun item counts, ResultWriter writing to
moto's S3, the `InvalidInput` Fail state. It invokes no Lambda function (that would need
Docker), so the tests put Pass states where the template has Lambda tasks: each slice passes,
and `Merge` outputs a fixed report with the `report_key` the real merge writes. What moto cannot
show (a map run's total known before its items start, TIMED_OUT, PENDING_REDRIVE, a run not
yet visible) is in tests/unit/test_on_aws_follow.py.

The CLI reaches moto's Step Functions through botocore's AWS_ENDPOINT_URL_SFN: `--on-aws`
refuses a loopback `--endpoint-url`, as it must for the local stack, which has no Step Functions.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from integration_stack import CLEAN_CLI_ENV, TEMPLATE, client, next_prefix
from typer.testing import CliRunner

from orgsync.cli import app
from orgsync.local.template.cloudformation import load_template
from orgsync.ops.reconcile import ReconcileReport, all_slices
from orgsync.ops.reconcile.on_aws import (
    RunFailedError,
    RunInput,
    StateMachineNotFoundError,
    find_state_machine,
    follow,
    start_run,
)

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/orgsync-reconcile"
SEGMENTS = 3
# What the test's Merge state outputs: the real merge's report of 3 segments' 6 slices.
REPORT = ReconcileReport(
    repair=False,
    users_scanned=30,
    memberships_scanned=55,
    replication_records_scanned=28,
    drift={"missing": 2, "unreplicated": 1},
    users_with_drift=2,
    seconds=12.5,
    slice_seconds=40.0,
    drifted_sample=("u-1", "u-2"),
    slices=tuple(sorted(slice_.name for slice_ in all_slices(SEGMENTS))),
)
PASS_SLICE = {"Type": "Pass", "Parameters": {"slice.$": "$.segment", "pass.$": "$.pass"}}
# A slice that takes longer than any test: the run is still going when the CLI is interrupted.
SLOW_SLICE = {"Type": "Wait", "Seconds": 600}
EXECUTION_NAME = re.compile(r"reconcile-\d{8}T\d{6}Z-(audit|repair)-[0-9a-f]{4}")


def merge_state() -> dict[str, Any]:
    """The report with the run's own `repair` and the key the real merge writes it under."""
    fields = {key: value for key, value in REPORT.to_json().items() if key != "repair"}
    return {
        "Type": "Pass",
        "Parameters": {
            **fields,
            "repair.$": "$.repair",
            "report_key.$": "States.Format('reports/{}.json', $$.Execution.Name)",
            "failed_slices": 0,
            "complete": True,
        },
        "End": True,
    }


def template_definition(bucket: str, slice_state: dict[str, Any]) -> str:
    """template.yaml's ReconcileStateMachine definition, runnable by moto (see the docstring)."""
    properties = load_template(TEMPLATE)["Resources"]["ReconcileStateMachine"]["Properties"]
    text = json.dumps(properties["Definition"])
    for name in properties["DefinitionSubstitutions"]:
        value = bucket if name == "ResultsBucket" else f"arn:aws:lambda:{REGION}:1:function:{name}"
        text = text.replace("${" + name + "}", value)
    definition = json.loads(text)
    for state in definition["States"].values():
        if state["Type"] != "Map":
            continue
        # moto's ASL grammar takes no integer here (AWS takes either); it ignores it anyway.
        state["ToleratedFailurePercentage"] = float(state["ToleratedFailurePercentage"])
        inner = state["ItemProcessor"]["States"]
        for name, child in inner.items():
            if child["Type"] == "Task":
                assert child.get("End") is True, "a slice is one Lambda task"
                inner[name] = {**slice_state, "End": True}
    assert definition["States"]["Merge"]["Type"] == "Task"
    definition["States"]["Merge"] = merge_state()
    return json.dumps(definition)


@dataclass
class StepFunctionsStack:
    endpoint_url: str
    prefix: str
    bucket: str
    sfn: Any
    s3: Any

    @property
    def name(self) -> str:
        return f"{self.prefix}poc-reconcile"

    def create(self, slice_state: dict[str, Any] = PASS_SLICE, *, name: str | None = None) -> str:
        created = self.sfn.create_state_machine(
            name=name or self.name,
            definition=template_definition(self.bucket, slice_state),
            roleArn=ROLE_ARN,
        )
        return str(created["stateMachineArn"])

    def cli_env(self) -> dict[str, str | None]:
        """Step Functions alone goes to moto; nothing from the shell leaks in."""
        return {
            **CLEAN_CLI_ENV,
            "AWS_ENDPOINT_URL_SFN": self.endpoint_url,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def invoke(self, *args: str) -> Any:
        return CliRunner().invoke(
            app, ["--name-prefix", self.prefix, "reconcile", *args], env=self.cli_env()
        )

    def executions(self, machine_arn: str) -> list[dict[str, Any]]:
        return list(self.sfn.list_executions(stateMachineArn=machine_arn)["executions"])


def set_moto_config(endpoint_url: str, config: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{endpoint_url}/moto-api/config",
        data=json.dumps(config).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


@pytest.fixture
def stack(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StepFunctionsStack]:
    """moto in the mode that runs state machines, for this test only (moto's default after)."""
    set_moto_config(moto_endpoint, {"stepfunctions": {"execute_state_machine": True}})
    # moto's interpreter sends ResultWriter's S3 calls to localhost:$MOTO_PORT: this server.
    monkeypatch.setenv("MOTO_PORT", str(urlsplit(moto_endpoint).port))
    prefix = next_prefix()
    s3 = client("s3", moto_endpoint)
    bucket = f"{prefix}reconcile-results"
    s3.create_bucket(Bucket=bucket)
    try:
        yield StepFunctionsStack(
            moto_endpoint, prefix, bucket, client("stepfunctions", moto_endpoint), s3
        )
    finally:
        set_moto_config(moto_endpoint, {"stepfunctions": {"execute_state_machine": False}})


def test_the_state_machine_is_found_by_its_exact_prefixed_name_on_any_page(stack):
    for decoy in (f"{stack.name}-old", f"x{stack.name}"):
        stack.create(name=decoy)
    arn = stack.create()
    stack.create(name=f"{stack.name}2")

    found = find_state_machine(stack.sfn, stack.name, region=REGION, page_size=1)
    assert (found.arn, found.name) == (arn, stack.name)

    with pytest.raises(StateMachineNotFoundError) as missing:
        find_state_machine(stack.sfn, "nowhere-poc-reconcile", region=REGION, page_size=1)
    assert str(missing.value) == (
        f"no state machine named nowhere-poc-reconcile in {REGION}: deploy the stack (README) first"
    )


def test_on_aws_starts_the_template_definition_and_prints_the_merged_report_as_json(stack):
    machine = stack.create()
    result = stack.invoke(
        "--on-aws", "--json", "--segments", str(SEGMENTS), "--max-concurrency", "2"
    )
    assert result.exit_code == 0, result.output

    document = json.loads(result.stdout)
    (execution,) = stack.executions(machine)
    assert EXECUTION_NAME.fullmatch(execution["name"]), execution["name"]
    assert "-audit-" in execution["name"]
    described = stack.sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {
        "total_segments": SEGMENTS,
        "repair": False,
        "max_concurrency": 2,
    }
    assert document["execution_arn"] == execution["executionArn"]
    assert ReconcileReport.from_json(document) == ReconcileReport.from_json(REPORT.to_json())
    key = f"reports/{execution['name']}.json"
    assert (document["report_key"], document["report_uri"]) == (key, f"s3://{stack.bucket}/{key}")
    assert f"started {execution['name']}" in result.stderr

    # The template's input check let the CLI's input through: both maps ran every segment,
    # and wrote their results to the bucket the CLI names.
    runs = stack.sfn.list_map_runs(executionArn=execution["executionArn"])["mapRuns"]
    counts = {
        run["mapRunArn"].split("/")[1].split(":")[0]: stack.sfn.describe_map_run(
            mapRunArn=run["mapRunArn"]
        )["itemCounts"]["succeeded"]
        for run in runs
    }
    assert counts == {"UsersPass": SEGMENTS, "OrganizationsPass": SEGMENTS}
    written = stack.s3.list_objects_v2(Bucket=stack.bucket)["Contents"]
    assert {
        obj["Key"].split("/")[1] for obj in written if obj["Key"].endswith("manifest.json")
    } == {
        "users",
        "organizations",
    }


def test_on_aws_prints_the_report_where_it_is_and_fails_on_drift_when_asked(stack):
    machine = stack.create()
    result = stack.invoke("--on-aws", "--repair", "--fail-on-drift")
    assert result.exit_code == 1, result.output  # repaired 0 of 2 drifted users

    (execution,) = stack.executions(machine)
    assert "-repair-" in execution["name"]
    described = stack.sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {
        "total_segments": 16,  # the state machine's own default when --segments is not given
        "repair": True,
        "max_concurrency": 16,  # the state machine's default too
    }
    lines = result.stdout.splitlines()
    scanned = next(line for line in lines if line.startswith("scanned "))
    assert scanned.startswith("scanned 30 user(s), 55 membership(s), 28 REPLICATION record(s)")
    assert scanned.endswith("6 slice(s))")  # no "from the run directory": there is none
    assert "repaired 0 user(s); 0 converged meanwhile" in result.stdout
    assert f"report: s3://{stack.bucket}/reports/{execution['name']}.json" in lines
    assert f"execution: {execution['executionArn']}" in lines


def test_follow_attaches_to_a_run_started_elsewhere(stack):
    machine = stack.create()
    # As the console would start it: the input leaves repair and concurrency to the defaults.
    started = stack.sfn.start_execution(
        stateMachineArn=machine, name="from-the-console", input=json.dumps({"total_segments": 2})
    )
    result = stack.invoke("--follow", started["executionArn"])
    assert result.exit_code == 0, result.output
    # It may have finished already: following a finished run prints its report all the same.
    assert re.match(r"following from-the-console \((RUNNING|SUCCEEDED)\): ", result.stderr)
    assert "scanned 30 user(s)" in result.stdout
    assert (
        f"report: s3://{stack.bucket}/reports/from-the-console.json" in result.stdout.splitlines()
    )


def test_a_run_the_state_machine_fails_is_one_line_with_its_error_and_cause(stack):
    machine = stack.create()
    # Past what States.ArrayRange can list: the template's own input check fails the run.
    started = stack.sfn.start_execution(
        stateMachineArn=machine,
        name="too-many-segments",
        input=json.dumps({"total_segments": 5000}),
    )
    with pytest.raises(RunFailedError) as failed:
        follow(stack.sfn, started["executionArn"], poll_seconds=0.1)
    assert (failed.value.status, failed.value.error) == ("FAILED", "InvalidInput")
    assert "total_segments must be an integer from 1 to 1000" in str(failed.value)

    result = stack.invoke("--follow", started["executionArn"])
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]  # after the "following …" line
    assert line.startswith("error: reconcile run too-many-segments ended FAILED: InvalidInput: ")
    assert f"--execution-arn {started['executionArn']})" in line


def test_the_follow_loop_reports_both_passes_until_the_run_succeeds(stack):
    machine = stack.create()
    started = start_run(
        stack.sfn,
        find_state_machine(stack.sfn, stack.name, region=REGION),
        RunInput(total_segments=SEGMENTS, repair=False, max_concurrency=1),
    )
    assert started.name == stack.executions(machine)[0]["name"]
    seen: list[tuple[str, int, int, int]] = []
    outcome = follow(
        stack.sfn,
        started.execution_arn,
        on_progress=lambda pass_, ok, failed, total: seen.append((pass_.value, ok, failed, total)),
        poll_seconds=0.05,
    )
    assert outcome.report == ReconcileReport.from_json(REPORT.to_json())
    assert outcome.complete
    # The last report of each pass is its map run's final count.
    last = {pass_: (ok, failed, total) for pass_, ok, failed, total in seen}
    assert last == {"users": (SEGMENTS, 0, SEGMENTS), "organizations": (SEGMENTS, 0, SEGMENTS)}
    assert seen[0][0] == "users"


def test_ctrl_c_stops_following_but_not_the_run(stack):
    machine = stack.create(SLOW_SLICE)
    command = [
        sys.executable,
        "-m",
        "orgsync",
        "--name-prefix",
        stack.prefix,
        "reconcile",
        "--on-aws",
        "--segments",
        "2",
    ]
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ORGSYNC_"))}
    environment.update({k: v for k, v in stack.cli_env().items() if v is not None})
    following = subprocess.Popen(
        command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(following.stderr), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while not any(line.startswith("started ") for line in lines):
            assert following.poll() is None, lines
            assert time.monotonic() < deadline, lines
            time.sleep(0.05)
        time.sleep(1.0)  # into the follow loop
        following.send_signal(signal.SIGINT)
        assert following.wait(timeout=30) == 130
        reader.join(timeout=10)
    finally:
        if following.poll() is None:
            following.kill()
    (execution,) = stack.executions(machine)
    arn = execution["executionArn"]
    assert stack.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    text = "".join(lines)
    assert f"stopped following; the run goes on: {arn}" in text
    assert f"follow it again: orgsync --region {REGION} reconcile --follow {arn}" in text
    assert (
        f"stop it: aws stepfunctions stop-execution --region {REGION} --execution-arn {arn}" in text
    )

    # Stopping is the operator's call; a stopped run is then reported as such.
    stack.sfn.stop_execution(executionArn=arn)
    with pytest.raises(RunFailedError) as stopped:
        follow(stack.sfn, arn, poll_seconds=0.05)
    assert stopped.value.status == "ABORTED"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--on-aws", "--workers", "2"], "--workers is for runs on this machine"),
        (["--on-aws", "--run-dir", "run"], "--run-dir is for runs on this machine"),
        (["--on-aws", "--segment", "0"], "--segment is for runs on this machine"),
        (["--on-aws", "--pass", "users"], "--pass is for runs on this machine"),
        (
            ["--follow", "arn:aws:states:us-east-1:1:execution:x:y", "--repair"],
            "--repair is for starting a run",
        ),
        (
            ["--follow", "arn:aws:states:us-east-1:1:execution:x:y", "--segments", "4"],
            "--segments is for starting a run",
        ),
        (
            ["--follow", "arn:aws:states:us-east-1:1:execution:x:y", "--max-concurrency", "4"],
            "--max-concurrency is for starting a run",
        ),
        (["--max-concurrency", "4"], "--max-concurrency is for --on-aws"),
    ],
)
def test_what_on_aws_cannot_take_is_refused_before_any_request(stack, args, says):
    machine = stack.create()
    result = stack.invoke(*args)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert says in line
    assert stack.executions(machine) == []


@pytest.mark.parametrize(
    "global_args",
    [
        ["--endpoint-url", "http://127.0.0.1:4566"],
        ["--endpoint-url", "http://localhost:4566"],
        ["--users-table", "somewhere-else"],
    ],
)
def test_the_local_stack_and_exact_table_names_are_refused(stack, global_args):
    machine = stack.create()
    result = CliRunner().invoke(
        app,
        [*global_args, "--name-prefix", stack.prefix, "reconcile", "--on-aws"],
        env=stack.cli_env(),
    )
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    if "--endpoint-url" in global_args:
        assert "the local stack does not emulate Step Functions" in line
    else:
        assert "reconciles the tables of the stack its state machine belongs to" in line
    assert stack.executions(machine) == []


def test_no_state_machine_under_the_prefix_is_one_line_naming_it_and_the_region(stack):
    result = stack.invoke("--on-aws")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: no state machine named {stack.name} in {REGION}: deploy the stack (README) first"
    )
