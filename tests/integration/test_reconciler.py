"""The reconcile Lambda handler (ReconcileFunction) against the conftest's real moto server.

Slice events run both passes on the fixture's tables, as the state machine's Distributed Maps
would send them: an audit, a repair, an audit again. Merge events read ResultWriter files
written here by hand in the format AWS documents (orgsync.reconciler.results) from moto's S3,
which the same server serves. Every DynamoDB call the repair makes is recorded with its table
and checked against what template.yaml grants the function's role on that table.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from boto3_calls import TRANSACT_WRITE_KINDS
from integration_stack import TEMPLATE, AwsStack, UsersWriter, assert_invariant, client, consume

from orgsync.local.template.cloudformation import load_template
from orgsync.ops.reconcile import ReconcileReport, all_slices, merge
from orgsync.reconciler import handler
from orgsync.reconciler.events import BadEventError
from orgsync.reconciler.settings import ConfigurationError

TOTAL_SEGMENTS = 2


@dataclass(frozen=True)
class Context:
    """What Powertools' inject_lambda_context reads from Lambda's context."""

    function_name: str = "poc-reconciler"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:poc-reconciler"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"


@dataclass
class Reconciler:
    aws: AwsStack
    s3: Any
    bucket: str

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        return handler.lambda_handler(event, Context())

    def run(self, *, repair: bool) -> list[dict[str, Any]]:
        """Every slice of a run, pass users before pass organizations, as the maps send them."""
        return [
            self({**slice_.to_json(), "action": "slice", "repair": repair})
            for slice_ in all_slices(TOTAL_SEGMENTS)
        ]

    def put_json(self, key: str, value: Any) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=json.dumps(value).encode())


@pytest.fixture
def reconciler(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Reconciler]:
    bucket = f"{aws.users_table.removesuffix('poc-users')}reconcile-{uuid.uuid4().hex[:8]}"
    s3 = client("s3", aws.endpoint_url)
    s3.create_bucket(Bucket=bucket)
    environment = {
        "USERS_TABLE_NAME": aws.users_table,
        "ORGANIZATIONS_TABLE_NAME": aws.organizations_table,
        "RESULTS_BUCKET_NAME": bucket,
        "AWS_ENDPOINT_URL": aws.endpoint_url,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    handler._runtime.cache_clear()  # a cold start on this test's environment
    yield Reconciler(aws=aws, s3=s3, bucket=bucket)
    handler._runtime.cache_clear()


def drifted_tables(aws: AwsStack) -> None:
    """One converged user, one never replicated, one with a membership its user does not imply."""
    users = UsersWriter(aws)
    consume(aws, users.put("ok", ["org-a", "org-b"]), users.put("extra", ["org-a"]))
    users.put("unreplicated", ["org-c"])
    aws.dynamodb.put_item(
        TableName=aws.organizations_table,
        Item={
            "pk": {"S": "ORGANIZATION#org-z"},
            "sk": {"S": "MEMBERSHIP#extra"},
            "org_id": {"S": "org-z"},
            "user_id": {"S": "extra"},
            "source_seq": {"N": "1"},
        },
    )


def merged(outputs: list[dict[str, Any]], *, repair: bool) -> ReconcileReport:
    reports = [ReconcileReport.from_json(output) for output in outputs]
    return merge(reports, repair=repair, seconds=0.0)


# ---------------------------------------------------------------- slices


def test_slices_audit_then_repair_both_passes_and_the_tables_converge(
    reconciler: Reconciler,
) -> None:
    drifted_tables(reconciler.aws)

    audit = merged(reconciler.run(repair=False), repair=False)
    assert audit.users_scanned == 3
    assert audit.users_with_drift >= 2
    assert audit.unresolved == audit.users_with_drift
    assert {"unreplicated", "extra"} <= set(audit.drifted_sample)
    assert audit.slices == tuple(sorted(s.name for s in all_slices(TOTAL_SEGMENTS)))

    repair = merged(reconciler.run(repair=True), repair=True)
    assert repair.users_repaired >= 2
    assert repair.unresolved == 0
    assert_invariant(reconciler.aws)

    again = merged(reconciler.run(repair=False), repair=False)
    assert again.users_with_drift == 0
    assert again.users_scanned == 3


def test_a_slice_answers_with_its_report_as_json(reconciler: Reconciler) -> None:
    drifted_tables(reconciler.aws)

    output = reconciler(
        {"action": "slice", "pass": "users", "segment": 0, "total_segments": 1, "repair": False}
    )

    json.dumps(output)  # a Step Functions payload: plain JSON
    report = ReconcileReport.from_json(output)
    assert report.slices == ("users-0-of-1",)
    assert report.users_scanned == 3
    assert report.memberships_scanned == 0  # the organizations table is the other pass's


def test_every_call_of_a_repair_goes_to_a_table_the_role_grants_it_on(
    reconciler: Reconciler,
) -> None:
    drifted_tables(reconciler.aws)
    calls: set[tuple[str, str]] = set()

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.update(table_actions(model.name, params))

    handler._runtime().dynamodb.meta.events.register("before-parameter-build.dynamodb", record)
    reconciler.run(repair=True)

    aws = reconciler.aws
    granted = role_grants(
        {"UsersTable": aws.users_table, "OrganizationsTable": aws.organizations_table}
    )
    assert calls <= granted, sorted(calls - granted)
    # The repair exercised the writes, so the check above covered them.
    assert (aws.organizations_table, "dynamodb:PutItem") in calls
    assert (aws.organizations_table, "dynamodb:DeleteItem") in calls
    assert {action for table, action in calls if table == aws.users_table} <= {
        "dynamodb:Scan",
        "dynamodb:BatchGetItem",
    }


def table_actions(operation: str, params: dict[str, Any]) -> set[tuple[str, str]]:
    """(table, IAM action) of one DynamoDB request, transactions by the item actions they hold."""
    if operation == "TransactWriteItems":
        return {
            (action[kind]["TableName"], f"dynamodb:{TRANSACT_WRITE_KINDS[kind]}")
            for action in params["TransactItems"]
            for kind in action
        }
    if operation in {"BatchGetItem", "BatchWriteItem"}:
        return {(table, f"dynamodb:{operation}") for table in params["RequestItems"]}
    return {(params["TableName"], f"dynamodb:{operation}")}


def role_grants(tables: dict[str, str]) -> set[tuple[str, str]]:
    role = load_template(TEMPLATE)["Resources"]["ReconcileRole"]["Properties"]
    granted = set()
    for policy in role["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            resource = statement["Resource"]
            if isinstance(resource, dict) and "Fn::GetAtt" in resource:
                logical_id = resource["Fn::GetAtt"][0]
                if logical_id in tables:
                    actions = statement["Action"]
                    for action in actions if isinstance(actions, list) else [actions]:
                        granted.add((tables[logical_id], action))
    return granted


# ---------------------------------------------------------------- merge


def result_files(
    reconciler: Reconciler, pass_: str, outputs: list[dict[str, Any]], **other: list[Any]
) -> dict[str, str]:
    """What ResultWriter writes for one map run; returns its ResultWriterDetails."""
    run = uuid.uuid4()
    prefix = f"results/{pass_}/{run}"
    files: dict[str, list[dict[str, str]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    executions = {
        "SUCCEEDED": [
            {
                "ExecutionArn": f"arn:aws:states:us-east-1:123456789012:execution:"
                f"poc-reconcile/{pass_}:{uuid.uuid4()}",
                "Input": json.dumps({"action": "slice", **_slice_of(output)}),
                "InputDetails": {"Included": True},
                "Name": str(uuid.uuid4()),
                "Output": json.dumps(output),
                "OutputDetails": {"Included": True},
                "StartDate": "2025-01-31T02:00:01.000Z",
                "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:"
                f"poc-reconcile/{pass_}",
                "Status": "SUCCEEDED",
                "StopDate": "2025-01-31T02:00:05.000Z",
            }
            for output in outputs
        ],
        **{status.upper(): rows for status, rows in other.items()},
    }
    for status, rows in executions.items():
        if rows:
            key = f"{prefix}/{status}_0.json"
            reconciler.put_json(key, rows)
            files[status].append({"Key": key, "Size": len(json.dumps(rows))})
    manifest = {
        "DestinationBucket": reconciler.bucket,
        "MapRunArn": f"arn:aws:states:us-east-1:123456789012:mapRun:poc-reconcile/{pass_}:{run}",
        "ResultFiles": files,
    }
    reconciler.put_json(f"{prefix}/manifest.json", manifest)
    return {"Bucket": reconciler.bucket, "Key": f"{prefix}/manifest.json"}


def _slice_of(output: dict[str, Any]) -> dict[str, Any]:
    (name,) = output["slices"]
    pass_, segment, _, total = name.split("-")
    return {"pass": pass_, "segment": int(segment), "total_segments": int(total)}


def failed_execution(pass_: str, segment: int) -> dict[str, Any]:
    event = {"action": "slice", "pass": pass_, "segment": segment, "total_segments": 2}
    return {
        "ExecutionArn": f"arn:aws:states:us-east-1:123456789012:execution:x/{pass_}:{segment}",
        "Input": json.dumps({**event, "repair": False}),
        "Name": f"failed-{segment}",
        "Status": "FAILED",
        "Error": "States.TaskFailed",
        "Cause": "slice kept failing",
    }


def merge_event(*results: dict[str, str], **overrides: Any) -> dict[str, Any]:
    started = (datetime.now(UTC) - timedelta(minutes=3)).isoformat().replace("+00:00", "Z")
    event = {
        "action": "merge",
        "repair": False,
        "results": list(results),
        "execution": "nightly-2025-01-31",
        "started": started,
        "total_segments": TOTAL_SEGMENTS,
    }
    return {**event, **overrides}


def test_the_merge_adds_up_both_maps_and_writes_the_report_beside_them(
    reconciler: Reconciler,
) -> None:
    drifted_tables(reconciler.aws)
    outputs = reconciler.run(repair=False)
    users = [output for output in outputs if output["slices"][0].startswith("users-")]
    organizations = [output for output in outputs if output not in users]

    answer = reconciler(
        merge_event(
            result_files(reconciler, "users", users),
            result_files(reconciler, "organizations", organizations),
        )
    )

    expected = merged(outputs, repair=False).to_json()
    # The run's wall time is the merge's own (timed below); everything else adds up.
    volatile = {"seconds", "users_per_second"}
    assert {k: answer[k] for k in expected if k not in volatile} == {
        k: v for k, v in expected.items() if k not in volatile
    }
    assert answer["report_key"] == "reports/nightly-2025-01-31.json"
    assert (answer["failed_slices"], answer["pending_slices"], answer["missing_slices"]) == (
        0,
        0,
        0,
    )
    assert answer["complete"] is True
    written = reconciler.s3.get_object(Bucket=reconciler.bucket, Key=answer["report_key"])
    stored = json.loads(written["Body"].read())
    assert stored["users_with_drift"] == expected["users_with_drift"] > 0
    assert stored["slices"] == expected["slices"]
    assert written["ContentType"] == "application/json"


def test_the_run_takes_the_seconds_since_the_execution_started(reconciler: Reconciler) -> None:
    outputs = reconciler.run(repair=False)

    answer = reconciler(merge_event(result_files(reconciler, "users", outputs)))

    assert 175 <= answer["seconds"] <= 300  # started three minutes ago
    assert answer["slice_seconds"] == pytest.approx(sum(o["slice_seconds"] for o in outputs))


def test_failed_and_pending_children_and_missing_slices_are_counted_not_hidden(
    reconciler: Reconciler,
) -> None:
    outputs = reconciler.run(repair=False)
    users = [output for output in outputs if output["slices"][0] == "users-0-of-2"]
    pending = {**failed_execution("organizations", 1), "Status": "PENDING"}
    del pending["Error"], pending["Cause"]

    answer = reconciler(
        merge_event(
            result_files(reconciler, "users", users, failed=[failed_execution("users", 1)]),
            result_files(reconciler, "organizations", [], pending=[pending]),
        )
    )

    assert answer["slices"] == ["users-0-of-2"]
    assert answer["failed_slices"] == 1
    assert answer["pending_slices"] == 1
    assert answer["missing_slices"] == 3  # users 1, organizations 0 and 1
    assert answer["unfinished_sample"] == ["organizations-1-of-2", "users-1-of-2"]
    assert answer["complete"] is False


def test_a_slice_that_failed_then_succeeded_is_finished(reconciler: Reconciler) -> None:
    outputs = reconciler.run(repair=False)
    users = [output for output in outputs if output["slices"][0].startswith("users-")]
    organizations = [output for output in outputs if output not in users]
    # A redrive reruns the failed child: its first attempt stays in FAILED, the rerun succeeds.
    retried = failed_execution("users", 1)

    answer = reconciler(
        merge_event(
            result_files(reconciler, "users", users, failed=[retried]),
            result_files(reconciler, "organizations", organizations),
        )
    )

    assert (answer["failed_slices"], answer["pending_slices"], answer["missing_slices"]) == (
        0,
        0,
        0,
    )
    assert answer["unfinished_sample"] == []
    assert answer["complete"] is True


def test_a_slice_listed_twice_is_counted_once(reconciler: Reconciler) -> None:
    outputs = reconciler.run(repair=False)

    answer = reconciler(
        merge_event(
            result_files(reconciler, "users", outputs), result_files(reconciler, "users", outputs)
        )
    )

    assert answer["slices"] == sorted(o["slices"][0] for o in outputs)
    assert answer["users_scanned"] == sum(o["users_scanned"] for o in outputs)


def test_json_lines_result_files_are_read_as_well(reconciler: Reconciler) -> None:
    outputs = reconciler.run(repair=False)
    details = result_files(reconciler, "users", outputs)
    manifest = json.loads(
        reconciler.s3.get_object(Bucket=reconciler.bucket, Key=details["Key"])["Body"].read()
    )
    (entry,) = manifest["ResultFiles"]["SUCCEEDED"]
    rows = json.loads(
        reconciler.s3.get_object(Bucket=reconciler.bucket, Key=entry["Key"])["Body"].read()
    )
    reconciler.s3.put_object(
        Bucket=reconciler.bucket,
        Key=entry["Key"],
        Body="\n".join(json.dumps(row) for row in rows).encode(),
    )

    answer = reconciler(merge_event(details))

    assert len(answer["slices"]) == len(outputs)


def test_results_outside_the_stacks_bucket_are_refused(reconciler: Reconciler) -> None:
    with pytest.raises(ValueError, match="results must be in bucket"):
        reconciler(merge_event({"Bucket": "someone-elses", "Key": "results/x/manifest.json"}))


# ---------------------------------------------------------------- bad events


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"action": "audit"}, "unknown action 'audit'"),
        ({"pass": "users"}, "unknown action None"),
        (
            {
                "action": "slice",
                "pass": "roles",
                "segment": 0,
                "total_segments": 1,
                "repair": False,
            },
            "pass 'roles' is not one of",
        ),
        (
            {
                "action": "slice",
                "pass": "users",
                "segment": 2,
                "total_segments": 2,
                "repair": False,
            },
            "segment must be 0 to 1",
        ),
        (
            {
                "action": "slice",
                "pass": "users",
                "segment": 0,
                "total_segments": 1001,
                "repair": True,
            },
            "total segments must be 1 to 1000",
        ),
        (
            {
                "action": "slice",
                "pass": "users",
                "segment": "0",
                "total_segments": 1,
                "repair": True,
            },
            "segment must be an integer",
        ),
        (
            {
                "action": "slice",
                "pass": "users",
                "segment": 0,
                "total_segments": 1,
                "repair": "false",
            },
            "repair must be true or false",
        ),
        ({**merge_event(), "results": []}, "results must be a non-empty list"),
        ({**merge_event({"Bucket": "b"})}, "needs a Bucket and a Key"),
        ({**merge_event({"Bucket": "b", "Key": "k"}), "execution": "a/b"}, "execution must be"),
        ({**merge_event({"Bucket": "b", "Key": "k"}), "started": "yesterday"}, "ISO 8601"),
    ],
)
def test_a_bad_event_is_a_value_error_that_says_what_is_wrong(
    reconciler: Reconciler, event: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadEventError, match=message) as raised:
        reconciler(event)
    assert isinstance(raised.value, ValueError)


def test_a_missing_setting_is_named_at_the_first_event(
    reconciler: Reconciler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RESULTS_BUCKET_NAME")
    handler._runtime.cache_clear()

    with pytest.raises(
        ConfigurationError, match="missing environment variables: RESULTS_BUCKET_NAME"
    ):
        reconciler(
            {"action": "slice", "pass": "users", "segment": 0, "total_segments": 1, "repair": False}
        )
