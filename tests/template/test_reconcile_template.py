"""The distributed reconcile run of template.yaml: ReconcileFunction, its bucket, its state machine.

Offline, like test_template.py: the template as cfn-lint decodes it and as SAM transforms it. The
state machine's definition is checked for shape here (cfn-lint cannot: SAM renders it into a
DefinitionString with substitutions), and the events its states build are fed to the handler's
own parser, so the template and the function agree on the contract.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3_calls import handler_iam_actions, import_closure

from orgsync.ops.reconcile import MAX_TOTAL_SEGMENTS, Pass
from orgsync.reconciler.events import MergeEvent, SliceEvent, parse_event

from .test_template import (
    ACTIONS_WITHOUT_RESOURCE_TYPES,
    ROOT,
    getatt,
    load_template,
    props,
    resolve_prefix,
    role_actions_by_resource,
    transform_offline,
)

HANDLER_MODULE = "orgsync.reconciler.handler"
TRANSIENT_LAMBDA_ERRORS = {
    "Lambda.TooManyRequestsException",
    "Lambda.ServiceException",
    "Lambda.SdkClientException",
}
RETRIED_ERRORS = TRANSIENT_LAMBDA_ERRORS | {"States.Timeout", "States.TaskFailed"}
STATE_MACHINE_NAME = "${NamePrefix}poc-reconcile"
# Where ResultWriter writes (the state machine) and the merge reads; where the merge writes.
RESULTS = {"Fn::Sub": "${ReconcileResultsBucket.Arn}/results/*"}
REPORTS = {"Fn::Sub": "${ReconcileResultsBucket.Arn}/reports/*"}
CFN_LINT_IAM_DATA = (
    Path(importlib.import_module("cfnlint").__file__ or "").parent
    / "data"
    / "AdditionalSpecs"
    / "Policies.json"
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


@pytest.fixture(scope="module")
def transformed(template: dict[str, Any]) -> dict[str, Any]:
    return transform_offline(template)


@pytest.fixture(scope="module")
def definition(resources: dict[str, Any]) -> dict[str, Any]:
    return props(resources, "ReconcileStateMachine")["Definition"]


def states_in_order(definition: dict[str, Any]) -> list[str]:
    """The states from StartAt along each Next (a Choice by its first choice)."""
    order, name = [], definition["StartAt"]
    while name is not None:
        order.append(name)
        state = definition["States"][name]
        name = state.get("Next") or next((c["Next"] for c in state.get("Choices", [])), None)
    return order


def maps(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in definition["States"].items() if s["Type"] == "Map"}


def tasks(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in definition["States"].items():
        if state["Type"] == "Task":
            yield name, state
        for inner_name, inner in (state.get("ItemProcessor") or {}).get("States", {}).items():
            if inner["Type"] == "Task":
                yield inner_name, inner


def evaluate(template: Any, data: dict[str, Any], context: dict[str, Any]) -> Any:
    """The JSONPath subset the definition uses: `key.$` paths, $$ context, States.Array."""
    if not isinstance(template, dict):
        return template
    result = {}
    for key, value in template.items():
        if key.endswith(".$"):
            result[key[:-2]] = _path_or_array(value, data, context)
        else:
            result[key] = evaluate(value, data, context)
    return result


def _path_or_array(expression: str, data: dict[str, Any], context: dict[str, Any]) -> Any:
    array = re.fullmatch(r"States\.Array\((.*)\)", expression)
    if array:
        return [_path_or_array(part.strip(), data, context) for part in array[1].split(",")]
    root, path = (
        (context, expression[3:]) if expression.startswith("$$.") else (data, expression[2:])
    )
    value: Any = root
    for part in path.split("."):
        value = value[part]
    return value


# ---------------------------------------------------------------- the function


def test_the_reconcile_function_is_built_like_the_consumer_from_its_own_makefile_target(
    resources: dict[str, Any],
) -> None:
    function, consumer = (
        props(resources, "ReconcileFunction"),
        props(resources, "StreamConsumerFunction"),
    )
    assert resources["ReconcileFunction"]["Metadata"] == {"BuildMethod": "makefile"}
    assert "build-ReconcileFunction:" in (ROOT / "src" / "Makefile").read_text()
    for setting in ("CodeUri", "Runtime", "Architectures"):
        assert function[setting] == consumer[setting]
    assert function["Handler"] == f"{HANDLER_MODULE}.lambda_handler"
    assert resolve_prefix(function["FunctionName"]) == "poc-reconciler"


def test_the_handler_named_in_the_template_imports(resources: dict[str, Any]) -> None:
    module, _, name = props(resources, "ReconcileFunction")["Handler"].rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))


def test_a_slice_gets_lambdas_longest_timeout_and_a_gigabyte(resources: dict[str, Any]) -> None:
    function = props(resources, "ReconcileFunction")
    assert function["Timeout"] == 900
    assert function["MemorySize"] == 1024
    assert function["Role"] == {"Fn::GetAtt": ["ReconcileRole", "Arn"]}
    assert "Events" not in function  # only the state machine invokes it


def test_the_function_is_told_both_tables_and_the_results_bucket(
    resources: dict[str, Any],
) -> None:
    assert props(resources, "ReconcileFunction")["Environment"]["Variables"] == {
        "USERS_TABLE_NAME": {"Ref": "UsersTable"},
        "ORGANIZATIONS_TABLE_NAME": {"Ref": "OrganizationsTable"},
        "RESULTS_BUCKET_NAME": {"Ref": "ReconcileResultsBucket"},
        "POWERTOOLS_SERVICE_NAME": "orgsync",
        "POWERTOOLS_LOG_LEVEL": {"Ref": "LogLevel"},
    }


def test_the_function_logs_to_its_own_log_group_kept_like_the_consumers(
    resources: dict[str, Any],
) -> None:
    function = props(resources, "ReconcileFunction")
    assert function["LoggingConfig"] == {"LogGroup": {"Ref": "ReconcileLogGroup"}}
    log_group = props(resources, "ReconcileLogGroup")
    assert resolve_prefix(log_group["LogGroupName"]) == "/aws/lambda/poc-reconciler"
    consumer_group = props(resources, "StreamConsumerLogGroup")
    assert log_group["RetentionInDays"] == consumer_group["RetentionInDays"]


# ---------------------------------------------------------------- the results bucket


def test_the_results_bucket_is_encrypted_private_owner_enforced_and_expires_objects(
    resources: dict[str, Any],
) -> None:
    bucket = props(resources, "ReconcileResultsBucket")
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert rule["BucketKeyEnabled"] is True
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    (expiry,) = bucket["LifecycleConfiguration"]["Rules"]
    assert expiry["Status"] == "Enabled"
    assert 1 <= expiry["ExpirationInDays"] <= 90
    # Every object expires: no prefix or filter narrows the rule.
    assert "Prefix" not in expiry
    assert "Filter" not in expiry
    assert "BucketName" not in bucket  # generated: bucket names are global


def test_the_results_bucket_refuses_every_request_without_tls(resources: dict[str, Any]) -> None:
    policy = props(resources, "ReconcileResultsBucketPolicy")
    assert policy["Bucket"] == {"Ref": "ReconcileResultsBucket"}
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert statement["Resource"] == [
        {"Fn::GetAtt": ["ReconcileResultsBucket", "Arn"]},
        {"Fn::Sub": "${ReconcileResultsBucket.Arn}/*"},
    ]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# ---------------------------------------------------------------- the function's role


def test_the_reconciler_role_grants_the_calls_of_its_closure_table_by_table(
    resources: dict[str, Any],
) -> None:
    calls = handler_iam_actions(HANDLER_MODULE)
    granted = role_actions_by_resource(resources, "ReconcileRole")
    # Users are only read: scanned by pass users, read by key (BatchGetItem) by pass
    # organizations. Which table each call goes to is recorded on moto in
    # tests/integration/test_reconciler.py; here: no call without its permission and back.
    assert granted == {
        getatt("ReconcileLogGroup", "Arn"): {"logs:CreateLogStream", "logs:PutLogEvents"},
        getatt("UsersTable", "Arn"): {"dynamodb:Scan", "dynamodb:BatchGetItem"},
        getatt("OrganizationsTable", "Arn"): {
            "dynamodb:Scan",
            "dynamodb:BatchGetItem",
            "dynamodb:PutItem",
            "dynamodb:DeleteItem",
            "dynamodb:ConditionCheckItem",
        },
        json.dumps(RESULTS, sort_keys=True): {"s3:GetObject"},
        json.dumps(REPORTS, sort_keys=True): {"s3:PutObject"},
    }
    table_actions = set().union(
        *(granted[getatt(t, "Arn")] for t in ("UsersTable", "OrganizationsTable"))
    )
    # GetItem is the operator's single read (`UsersTable.get`, `orgsync users get`): its module is
    # in the closure, its method is never called by reconcile. Only it may explain the gap.
    assert calls - table_actions - {"s3:GetObject", "s3:PutObject"} == {"dynamodb:GetItem"}
    assert operation_sites("get_item") == {"orgsync.store.users.UsersTable.get"}
    assert table_actions | {"s3:GetObject", "s3:PutObject"} <= calls


def operation_sites(operation: str) -> set[str]:
    """Where the handler's closure names a client operation: module.Class.method for each."""
    sites = set()
    for module, tree in import_closure(HANDLER_MODULE).items():
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and node.attr == operation):
                continue
            scopes: list[str] = []
            scope: ast.AST = node
            while scope in parents:
                scope = parents[scope]
                if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    scopes.insert(0, scope.name)
            sites.add(".".join([module, *scopes]))
    return sites


# ---------------------------------------------------------------- the state machine


def test_the_state_machine_is_standard_named_logged_and_runs_with_its_own_role(
    resources: dict[str, Any],
) -> None:
    machine = props(resources, "ReconcileStateMachine")
    assert machine["Type"] == "STANDARD"
    assert machine["Name"] == {"Fn::Sub": STATE_MACHINE_NAME}
    assert machine["Role"] == {"Fn::GetAtt": ["ReconcileStateMachineRole", "Arn"]}
    (destination,) = machine["Logging"]["Destinations"]
    assert destination == {
        "CloudWatchLogsLogGroup": {
            "LogGroupArn": {"Fn::GetAtt": ["ReconcileStateMachineLogGroup", "Arn"]}
        }
    }
    assert machine["Logging"]["Level"] in {"ERROR", "ALL"}
    log_group = props(resources, "ReconcileStateMachineLogGroup")
    assert resolve_prefix(log_group["LogGroupName"]) == "/aws/vendedlogs/states/poc-reconcile"
    assert log_group["RetentionInDays"] > 0
    assert machine["DefinitionSubstitutions"] == {
        "ReconcileFunctionArn": {"Fn::GetAtt": ["ReconcileFunction", "Arn"]},
        "ResultsBucket": {"Ref": "ReconcileResultsBucket"},
    }


def test_pass_users_runs_before_pass_organizations_and_the_merge_last(
    definition: dict[str, Any],
) -> None:
    order = states_in_order(definition)
    assert order == [
        "Defaults",
        "Settings",
        "ValidateSettings",
        "Segments",
        "UsersPass",
        "OrganizationsPass",
        "Merge",
    ]
    assert definition["States"]["Merge"]["End"] is True
    assert list(maps(definition)) == ["UsersPass", "OrganizationsPass"]


@pytest.mark.parametrize(
    ("state", "pass_"), [("UsersPass", "users"), ("OrganizationsPass", "organizations")]
)
def test_each_pass_is_a_distributed_map_of_standard_children_writing_results_to_s3(
    definition: dict[str, Any], state: str, pass_: str
) -> None:
    map_ = definition["States"][state]
    assert map_["ItemProcessor"]["ProcessorConfig"] == {
        "Mode": "DISTRIBUTED",
        "ExecutionType": "STANDARD",
    }
    assert map_["ItemsPath"] == "$.segments"
    assert map_["MaxConcurrencyPath"] == "$.max_concurrency"
    assert map_["ToleratedFailurePercentage"] == 0
    assert map_["ItemSelector"]["pass"] == pass_
    assert map_["ResultWriter"] == {
        "Resource": "arn:aws:states:::s3:putObject",
        "Parameters": {"Bucket": "${ResultsBucket}", "Prefix": f"results/{pass_}"},
    }
    assert map_["ResultPath"] == f"$.results.{pass_}"
    (task,) = map_["ItemProcessor"]["States"].values()
    assert task["Resource"] == "arn:aws:states:::lambda:invoke"
    assert task["Parameters"] == {"FunctionName": "${ReconcileFunctionArn}", "Payload.$": "$"}
    assert task["OutputPath"] == "$.Payload"  # the report, not Lambda's envelope


def test_every_lambda_task_retries_throttling_service_errors_and_failures_with_backoff(
    definition: dict[str, Any],
) -> None:
    names = []
    for name, task in tasks(definition):
        names.append(name)
        retried = {error for retrier in task["Retry"] for error in retrier["ErrorEquals"]}
        assert retried >= RETRIED_ERRORS, name
        for retrier in task["Retry"]:
            assert 2 <= retrier["MaxAttempts"] <= 6
            assert retrier["BackoffRate"] >= 2.0
            assert isinstance(retrier["BackoffRate"], float)  # the ASL spec's type
            assert retrier["IntervalSeconds"] >= 1
        # A slice that times out in Lambda surfaces as a task failure before the state's own.
        assert task["TimeoutSeconds"] > 900
    assert names == ["UsersSlice", "OrganizationsSlice", "Merge"]


def test_the_segments_are_the_input_range_and_the_input_is_checked_against_the_code_cap(
    definition: dict[str, Any],
) -> None:
    states = definition["States"]
    assert states["Defaults"]["Result"] == {
        "total_segments": 16,
        "repair": False,
        "max_concurrency": 16,
    }
    assert states["Settings"]["Parameters"] == {
        "settings.$": "States.JsonMerge($.defaults, $$.Execution.Input, false)"
    }
    segments = states["Segments"]["Parameters"]["segments.$"]
    assert segments == "States.ArrayRange(0, States.MathAdd($.total_segments, -1), 1)"
    (choice,) = states["ValidateSettings"]["Choices"]
    bounds = {
        (rule["Variable"], key): value
        for rule in choice["And"]
        for key, value in rule.items()
        if key != "Variable"
    }
    # States.ArrayRange returns at most 1,000 items, the code's MAX_TOTAL_SEGMENTS.
    assert bounds[("$.total_segments", "NumericLessThanEquals")] == MAX_TOTAL_SEGMENTS
    assert bounds[("$.total_segments", "NumericGreaterThanEquals")] == 1
    assert bounds[("$.repair", "IsBoolean")] is True
    assert states["ValidateSettings"]["Default"] == "InvalidInput"
    assert states["InvalidInput"]["Type"] == "Fail"


@pytest.mark.parametrize(
    ("state", "pass_"), [("UsersPass", Pass.USERS), ("OrganizationsPass", Pass.ORGANIZATIONS)]
)
def test_the_item_selector_builds_the_slice_event_the_handler_takes(
    definition: dict[str, Any], state: str, pass_: Pass
) -> None:
    data = {"total_segments": 64, "repair": True, "max_concurrency": 32, "segments": [0, 1]}
    item = evaluate(
        definition["States"][state]["ItemSelector"], data, {"Map": {"Item": {"Value": 7}}}
    )
    event = parse_event(item)
    assert isinstance(event, SliceEvent)
    assert (event.slice_.pass_, event.slice_.segment, event.slice_.total_segments) == (
        pass_,
        7,
        64,
    )
    assert event.repair is True


def test_the_merge_task_sends_the_merge_event_the_handler_takes(
    definition: dict[str, Any],
) -> None:
    details = {
        pass_: {"Bucket": "results-bucket", "Key": f"results/{pass_}/run-{pass_}/manifest.json"}
        for pass_ in ("users", "organizations")
    }
    data = {
        "total_segments": 64,
        "repair": False,
        "results": {
            pass_: {"MapRunArn": "arn:aws:states:...", "ResultWriterDetails": detail}
            for pass_, detail in details.items()
        },
    }
    context = {"Execution": {"Name": "nightly-1", "StartTime": "2025-01-31T02:00:00.123Z"}}
    merge = definition["States"]["Merge"]
    assert merge["Parameters"]["FunctionName"] == "${ReconcileFunctionArn}"
    event = parse_event(evaluate(merge["Parameters"]["Payload"], data, context))
    assert isinstance(event, MergeEvent)
    assert [(r.bucket, r.key) for r in event.results] == [
        (d["Bucket"], d["Key"]) for d in (details["users"], details["organizations"])
    ]
    assert (event.execution, event.repair, event.total_segments) == ("nightly-1", False, 64)
    assert merge["OutputPath"] == "$.Payload"


def test_the_sam_transform_renders_the_definition_as_json_with_its_substitutions(
    transformed: dict[str, Any],
) -> None:
    machine = transformed["Resources"]["ReconcileStateMachine"]
    assert machine["Type"] == "AWS::StepFunctions::StateMachine"
    properties = machine["Properties"]
    assert properties["RoleArn"] == {"Fn::GetAtt": ["ReconcileStateMachineRole", "Arn"]}
    text = "\n".join(properties["DefinitionString"]["Fn::Join"][1])
    rendered = json.loads(
        text.replace("${ReconcileFunctionArn}", "arn:aws:lambda:us-east-1:1:function:f").replace(
            "${ResultsBucket}", "bucket"
        )
    )
    assert set(maps(rendered)) == {"UsersPass", "OrganizationsPass"}
    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(properties["DefinitionSubstitutions"])


# ---------------------------------------------------------------- the state machine's role


def test_the_state_machine_role_runs_its_maps_invokes_the_function_and_writes_results_only(
    resources: dict[str, Any],
) -> None:
    arn = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}"
    assert role_actions_by_resource(resources, "ReconcileStateMachineRole") == {
        getatt("ReconcileFunction", "Arn"): {"lambda:InvokeFunction"},
        json.dumps({"Fn::Sub": "${ReconcileFunction.Arn}:*"}): {"lambda:InvokeFunction"},
        # Distributed Map children are executions of this machine: execution:<name>/<label>:<id>.
        json.dumps({"Fn::Sub": f"{arn}:stateMachine:{STATE_MACHINE_NAME}"}): {
            "states:StartExecution"
        },
        json.dumps({"Fn::Sub": f"{arn}:execution:{STATE_MACHINE_NAME}/*"}): {
            "states:DescribeExecution",
            "states:StopExecution",
            "states:RedriveExecution",  # a redrive reruns the failed children
        },
        json.dumps(RESULTS, sort_keys=True): {
            "s3:PutObject",
            "s3:GetObject",
            "s3:ListMultipartUploadParts",
            "s3:AbortMultipartUpload",
        },
        json.dumps("*"): ACTIONS_WITHOUT_RESOURCE_TYPES - {"dynamodb:ListStreams"},
    }
    # The name the ARNs are built from is the machine's own (no reference: it would be a cycle).
    assert props(resources, "ReconcileStateMachine")["Name"] == {"Fn::Sub": STATE_MACHINE_NAME}


@pytest.mark.parametrize("role", ["ReconcileRole", "ReconcileStateMachineRole"])
def test_only_the_service_of_this_account_may_assume_the_reconcile_roles(
    resources: dict[str, Any], role: str
) -> None:
    (trust,) = props(resources, role)["AssumeRolePolicyDocument"]["Statement"]
    service = {"ReconcileRole": "lambda", "ReconcileStateMachineRole": "states"}[role]
    assert trust["Principal"] == {"Service": f"{service}.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_every_action_granted_on_star_has_no_resource_type_in_iam() -> None:
    # cfn-lint's copy of the Service Authorization Reference: an action listed without
    # resource types can only be granted on "*".
    iam = json.loads(CFN_LINT_IAM_DATA.read_text(encoding="utf-8"))
    for action in ACTIONS_WITHOUT_RESOURCE_TYPES:
        service, name = action.split(":")
        assert iam[service]["Actions"][name.lower()].get("Resources") is None, action


# ---------------------------------------------------------------- outputs


def test_outputs_name_the_state_machine_the_bucket_and_the_function(
    template: dict[str, Any],
) -> None:
    outputs = template["Outputs"]
    assert outputs["ReconcileStateMachineArn"]["Value"] == {"Ref": "ReconcileStateMachine"}
    assert outputs["ReconcileResultsBucketName"]["Value"] == {"Ref": "ReconcileResultsBucket"}
    assert outputs["ReconcileFunctionName"]["Value"] == {"Ref": "ReconcileFunction"}
