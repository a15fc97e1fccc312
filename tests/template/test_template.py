"""Checks that template.yaml deploys and carries every setting of docs/pipeline-settings.md.

Offline only: cfn-lint and the SAM translator run in-process, no AWS account, no network.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from boto3_calls import handler_iam_actions, iam_actions
from cfnlint.api import ManualArgs, lint_file
from cfnlint.decode import decode_str
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

from orgsync.local.template.reader import load_stack_model

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"

SEED_NAMES = {
    "UsersTable": ("TableName", "poc-users"),
    "OrganizationsTable": ("TableName", "poc-organizations"),
    "UserStreamQueue": ("QueueName", "user-dynamo-stream.fifo"),
    "UserStreamDeadLetterQueue": ("QueueName", "user-dynamo-stream-deadletter.fifo"),
    "UserTablePipe": ("Name", "user-table-dynamo-pipe"),
    "StreamConsumerFunction": ("FunctionName", "poc-user-stream-consumer"),
}

# DynamoDB Streams keeps a record 24 hours; the pipe must give up on a record before that.
STREAM_RETENTION_SECONDS = 24 * 3600
# IAM actions with no resource-level permission: "*" is the only Resource that grants them
# (tests/template/test_reconcile_template.py checks each against cfn-lint's IAM data): the pipe's
# ListStreams, and the log deliveries a state machine logging to CloudWatch Logs needs.
ACTIONS_WITHOUT_RESOURCE_TYPES = {
    "dynamodb:ListStreams",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
# What Lambda's SQS event source needs on the queue it polls (with-sqs); the handler calls none.
SQS_EVENT_SOURCE_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}

KEY_FILTER = {"dynamodb": {"Keys": {"sk": {"S": ["METADATA"]}, "pk": {"S": [{"prefix": "USER#"}]}}}}


class OfflinePolicyLoader(ManagedPolicyLoader):
    """Stands in for the IAM lookup: the template names no managed policy, so none is needed."""

    def __init__(self) -> None:
        super().__init__(iam_client=None)

    def load(self) -> dict[str, str]:
        return {}


def load_template() -> dict[str, Any]:
    # cfn-lint's decoder understands the short intrinsic tags (!Ref, !Sub, !GetAtt, !If);
    # the JSON round trip turns its node classes into plain dicts, lists and strings.
    decoded, matches = decode_str(TEMPLATE_PATH.read_text(encoding="utf-8"))
    assert not matches, [str(m) for m in matches]
    return json.loads(json.dumps(decoded))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def transform_offline(template: dict[str, Any]) -> dict[str, Any]:
    """The SAM transform as `sam deploy` would run it on the packaged template, offline."""
    monkeypatch = pytest.MonkeyPatch()
    # The translator asks boto3 for a region to fill AWS::Region; no call is made.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    try:
        fragment = copy.deepcopy(template)
        # `sam package` replaces each local CodeUri with the uploaded artefact's S3 URI.
        for logical_id, resource in fragment["Resources"].items():
            if resource["Type"] == "AWS::Serverless::Function":
                resource["Properties"]["CodeUri"] = (
                    f"s3://orgsync-artifacts/orgsync/{logical_id}.zip"
                )
        return transform(fragment, {}, OfflinePolicyLoader())
    finally:
        monkeypatch.undo()


@pytest.fixture(scope="module")
def transformed(template: dict[str, Any]) -> dict[str, Any]:
    return transform_offline(template)


def props(resources: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return resources[logical_id]["Properties"]


def resolve_prefix(value: Any, prefix: str = "") -> str:
    """Evaluates `!Sub "${NamePrefix}..."` for a given prefix; plain strings pass through."""
    if isinstance(value, dict):
        assert set(value) == {"Fn::Sub"}, value
        value = value["Fn::Sub"]
    assert isinstance(value, str), value
    return value.replace("${NamePrefix}", prefix)


def policy_statements(resources: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in resource["Properties"].get("Policies", [])]
        elif resource["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            documents = [resource["Properties"]["PolicyDocument"]]
        else:
            continue
        for document in documents:
            for statement in document["Statement"]:
                yield logical_id, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_actions_by_resource(resources: dict[str, Any], role: str) -> dict[str, set[str]]:
    granted: dict[str, set[str]] = {}
    for logical_id, statement in policy_statements(resources):
        if logical_id != role:
            continue
        assert statement["Effect"] == "Allow"
        for resource in as_list(statement["Resource"]):
            granted.setdefault(json.dumps(resource, sort_keys=True), set()).update(
                as_list(statement["Action"])
            )
    return granted


def getatt(logical_id: str, attribute: str) -> str:
    return json.dumps({"Fn::GetAtt": [logical_id, attribute]}, sort_keys=True)


# ---------------------------------------------------------------- the template deploys


def test_cfn_lint_reports_no_errors_or_warnings() -> None:
    matches = lint_file(TEMPLATE_PATH, ManualArgs(regions=["us-east-1", "eu-west-1"]))
    problems = [m for m in matches if m.rule.id[0] in {"E", "W"}]
    assert problems == [], "\n".join(str(m) for m in problems)


def test_the_sam_transform_succeeds_offline(transformed: dict[str, Any]) -> None:
    types = {r["Type"] for r in transformed["Resources"].values()}
    assert "AWS::Serverless::Function" not in types
    assert "AWS::Lambda::Function" in types
    assert "AWS::Lambda::EventSourceMapping" in types


def test_the_transform_generates_no_role_and_attaches_no_managed_policy(
    transformed: dict[str, Any],
) -> None:
    roles = {k for k, r in transformed["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
    assert roles == {
        "PipeRole",
        "StreamConsumerRole",
        "ReconcileRole",
        "ReconcileStateMachineRole",
    }
    for logical_id in roles:
        assert "ManagedPolicyArns" not in transformed["Resources"][logical_id]["Properties"]


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(("logical_id", "expected"), list(SEED_NAMES.items()))
def test_names_with_the_default_prefix_are_the_seed_names(
    resources: dict[str, Any], logical_id: str, expected: tuple[str, str]
) -> None:
    name_property, seed_name = expected
    assert resolve_prefix(props(resources, logical_id)[name_property]) == seed_name


@pytest.mark.parametrize("logical_id", list(SEED_NAMES))
def test_a_name_prefix_is_prepended_to_every_seed_name(
    resources: dict[str, Any], logical_id: str
) -> None:
    name_property, seed_name = SEED_NAMES[logical_id]
    name = resolve_prefix(props(resources, logical_id)[name_property], "dev-")
    assert name == f"dev-{seed_name}"


def test_name_prefix_defaults_to_empty_and_allows_only_characters_every_name_accepts(
    template: dict[str, Any],
) -> None:
    parameter = template["Parameters"]["NamePrefix"]
    assert parameter["Type"] == "String"
    assert parameter["Default"] == ""
    # Queue and function names take letters, digits, "-" and "_" only; 20 characters keep
    # the longest name (the DLQ, 34 characters) under SQS's 80.
    pattern = re.compile(parameter["AllowedPattern"])
    assert all(pattern.fullmatch(ok) for ok in ["", "dev-", "team_a-", "x" * 20])
    assert not any(pattern.fullmatch(bad) for bad in ["dev.", "a b", "x" * 21, "é-"])


# ---------------------------------------------------------------- tables


def test_tables_are_on_demand_by_default(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["BillingMode"]
    assert parameter["Default"] == "PAY_PER_REQUEST"
    assert set(parameter["AllowedValues"]) == {"PAY_PER_REQUEST", "PROVISIONED"}
    for table in ("UsersTable", "OrganizationsTable"):
        table_props = props(template["Resources"], table)
        assert table_props["BillingMode"] == {"Ref": "BillingMode"}
        # Capacity is set only in provisioned mode; on-demand rejects it.
        assert table_props["ProvisionedThroughput"]["Fn::If"][0] == "IsProvisioned"
        assert table_props["ProvisionedThroughput"]["Fn::If"][2] == {"Ref": "AWS::NoValue"}


@pytest.mark.parametrize("table", ["UsersTable", "OrganizationsTable"])
def test_tables_are_keyed_on_pk_and_sk_strings(resources: dict[str, Any], table: str) -> None:
    table_props = props(resources, table)
    assert table_props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert sorted(
        (a["AttributeName"], a["AttributeType"]) for a in table_props["AttributeDefinitions"]
    ) == [("pk", "S"), ("sk", "S")]


def test_users_table_streams_new_and_old_images(resources: dict[str, Any]) -> None:
    stream = props(resources, "UsersTable")["StreamSpecification"]
    assert stream == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


@pytest.mark.parametrize("table", ["UsersTable", "OrganizationsTable"])
def test_tables_have_point_in_time_recovery_and_encryption(
    resources: dict[str, Any], table: str
) -> None:
    table_props = props(resources, table)
    assert table_props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table_props["SSESpecification"]["SSEEnabled"] is True


def test_organizations_table_expires_deleted_users_fences_on_expires_at(
    resources: dict[str, Any],
) -> None:
    ttl = props(resources, "OrganizationsTable")["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expires_at", "Enabled": True}


# ---------------------------------------------------------------- pipe


def test_pipe_filters_on_keys_only_and_never_on_event_name(resources: dict[str, Any]) -> None:
    filters = props(resources, "UserTablePipe")["SourceParameters"]["FilterCriteria"]["Filters"]
    patterns = [json.loads(f["Pattern"]) for f in filters]
    assert patterns == [KEY_FILTER]
    assert set(patterns[0]) == {"dynamodb"}
    assert set(patterns[0]["dynamodb"]) == {"Keys"}
    assert "eventName" not in json.dumps(filters)


def test_pipe_groups_messages_per_user_and_deduplicates_on_event_id(
    resources: dict[str, Any],
) -> None:
    target = props(resources, "UserTablePipe")["TargetParameters"]["SqsQueueParameters"]
    assert target == {
        "MessageGroupId": "$.dynamodb.Keys.pk.S",
        "MessageDeduplicationId": "$.eventID",
    }


def test_pipe_connects_the_users_stream_to_the_fifo_queue(resources: dict[str, Any]) -> None:
    pipe = props(resources, "UserTablePipe")
    assert pipe["Source"] == {"Fn::GetAtt": ["UsersTable", "StreamArn"]}
    assert pipe["Target"] == {"Fn::GetAtt": ["UserStreamQueue", "Arn"]}
    assert pipe["RoleArn"] == {"Fn::GetAtt": ["PipeRole", "Arn"]}


def test_pipe_reads_in_order_in_batches_of_ten_with_bisect_and_a_dead_letter_queue(
    resources: dict[str, Any],
) -> None:
    stream = props(resources, "UserTablePipe")["SourceParameters"]["DynamoDBStreamParameters"]
    assert stream["StartingPosition"] == "TRIM_HORIZON"
    assert stream["BatchSize"] == 10  # SQS batch API limit
    assert 0 <= stream["MaximumBatchingWindowInSeconds"] <= 1
    assert stream["ParallelizationFactor"] == 1
    assert stream["OnPartialBatchItemFailure"] == "AUTOMATIC_BISECT"
    assert stream["MaximumRetryAttempts"] == -1 or 1 <= stream["MaximumRetryAttempts"] <= 10000
    assert stream["DeadLetterConfig"] == {
        "Arn": {"Fn::GetAtt": ["UserTablePipeDeadLetterQueue", "Arn"]}
    }


def test_pipe_gives_up_on_a_record_before_the_stream_trims_it(
    resources: dict[str, Any],
) -> None:
    # -1 ("until the record expires") lets a failing record be trimmed at 24 h without ever
    # reaching the pipe DLQ; AWS advises a maximum age below the source's retention.
    stream = props(resources, "UserTablePipe")["SourceParameters"]["DynamoDBStreamParameters"]
    age = stream["MaximumRecordAgeInSeconds"]
    assert age == 82800
    assert 3600 <= age < STREAM_RETENTION_SECONDS


def test_the_local_stack_reads_the_pipes_retry_limits_from_the_template() -> None:
    pipe = load_stack_model(TEMPLATE_PATH).pipe("UserTablePipe")
    assert pipe.maximum_record_age_seconds == 82800
    assert pipe.maximum_retry_attempts == 10
    assert pipe.dead_letter_queue_name == "user-table-dynamo-pipe-dlq"


def test_the_docs_give_the_pipes_maximum_record_age_and_its_reason() -> None:
    settings = (ROOT / "docs" / "pipeline-settings.md").read_text(encoding="utf-8")
    (row,) = [line for line in settings.splitlines() if line.startswith("| pipe retries |")]
    assert "`MaximumRecordAgeInSeconds` 82800" in row
    assert "24 h" in row
    assert "-1" in row  # why not -1


def test_pipe_dead_letter_queue_is_encrypted_and_keeps_records_fourteen_days(
    resources: dict[str, Any],
) -> None:
    queue = props(resources, "UserTablePipeDeadLetterQueue")
    assert resolve_prefix(queue["QueueName"]) in {
        "user-table-dynamo-pipe-dlq",
        "user-table-dynamo-pipe-dlq.fifo",
    }
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 1209600


# ---------------------------------------------------------------- queues


def test_queue_is_high_throughput_fifo_with_encryption(resources: dict[str, Any]) -> None:
    queue = props(resources, "UserStreamQueue")
    assert queue["FifoQueue"] is True
    assert queue["ContentBasedDeduplication"] is True
    assert queue["DeduplicationScope"] == "messageGroup"
    assert queue["FifoThroughputLimit"] == "perMessageGroupId"
    assert queue["SqsManagedSseEnabled"] is True


def test_queue_redrives_to_the_dead_letter_queue_after_five_receives(
    resources: dict[str, Any],
) -> None:
    redrive = props(resources, "UserStreamQueue")["RedrivePolicy"]
    assert redrive == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["UserStreamDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }


def test_dead_letter_queue_is_fifo_encrypted_and_keeps_messages_fourteen_days(
    resources: dict[str, Any],
) -> None:
    queue = props(resources, "UserStreamDeadLetterQueue")
    assert queue["FifoQueue"] is True
    assert queue["ContentBasedDeduplication"] is True
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_dead_letter_queue_outlives_the_main_queue(resources: dict[str, Any]) -> None:
    # FIFO keeps the original enqueue time on redrive, so a shorter DLQ retention
    # would expire dead-lettered messages early.
    main = props(resources, "UserStreamQueue")["MessageRetentionPeriod"]
    dead = props(resources, "UserStreamDeadLetterQueue")["MessageRetentionPeriod"]
    assert dead > main
    # Deleted users' fences live 30 days: longer than queue plus DLQ retention.
    assert main + dead < 30 * 24 * 3600


def test_visibility_timeout_is_at_least_six_times_the_function_timeout(
    resources: dict[str, Any],
) -> None:
    visibility = props(resources, "UserStreamQueue")["VisibilityTimeout"]
    timeout = props(resources, "StreamConsumerFunction")["Timeout"]
    assert timeout == 30
    assert visibility >= 6 * timeout


# ---------------------------------------------------------------- consumer


def test_consumer_runs_python_3_13_on_arm64_from_the_orgsync_package(
    resources: dict[str, Any],
) -> None:
    function = props(resources, "StreamConsumerFunction")
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["CodeUri"] == "src/"
    assert function["Handler"] == "orgsync.consumer.handler.lambda_handler"


def test_consumer_is_built_by_the_makefile_that_ships_only_the_handlers_closure(
    resources: dict[str, Any],
) -> None:
    # What the Makefile copies is checked in test_lambda_artifact.py. The makefile builder is
    # also why `sam build` needs no python3.13 on the machine: SAM's CustomMakeBuilder resolves
    # only `make`, where its Python builder validates a local interpreter of the runtime.
    assert resources["StreamConsumerFunction"]["Metadata"] == {"BuildMethod": "makefile"}
    assert "build-StreamConsumerFunction:" in (ROOT / "src" / "Makefile").read_text()


def test_the_makefile_installs_wheels_for_the_runtime_with_whatever_python_builds(
    resources: dict[str, Any], tmp_path: Path
) -> None:
    function = props(resources, "StreamConsumerFunction")
    version = function["Runtime"].removeprefix("python")
    machine = {"arm64": "aarch64", "x86_64": "x86_64"}[function["Architectures"][0]]
    # `make -n` prints what `sam build` would run; PYTHON is what the Taskfile passes.
    dry_run = subprocess.run(
        [
            "make",
            "-n",
            "-C",
            str(ROOT / "src"),
            "lambda-requirements",
            f"ARTIFACTS_DIR={tmp_path}",
            "PYTHON=/opt/any/python3.11",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    commands = dry_run.replace("\\\n", " ").splitlines()  # join continued recipe lines
    (pip,) = [line for line in commands if "pip install" in line]
    assert pip.startswith("/opt/any/python3.11 -m pip install")
    assert f"--platform manylinux2014_{machine}" in pip
    assert f"--python-version {version}" in pip
    assert "--implementation cp" in pip
    assert "--only-binary=:all:" in pip


def test_consumer_event_source_reports_partial_failures_in_batches_of_ten(
    transformed: dict[str, Any],
) -> None:
    mappings = [
        r["Properties"]
        for r in transformed["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    ]
    assert len(mappings) == 1
    mapping = mappings[0]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["UserStreamQueue", "Arn"]}
    assert mapping["BatchSize"] == 10
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "MaximumConcurrency"}}
    # FIFO event sources accept no batching window.
    assert "MaximumBatchingWindowInSeconds" not in mapping


def test_maximum_concurrency_is_a_parameter_within_lambda_bounds(
    template: dict[str, Any],
) -> None:
    parameter = template["Parameters"]["MaximumConcurrency"]
    assert parameter["Type"] == "Number"
    assert parameter["Default"] == 10
    assert (parameter["MinValue"], parameter["MaxValue"]) == (2, 1000)


def test_consumer_environment_names_its_table_queue_and_powertools_settings(
    resources: dict[str, Any],
) -> None:
    variables = props(resources, "StreamConsumerFunction")["Environment"]["Variables"]
    assert variables == {
        "ORGANIZATIONS_TABLE_NAME": {"Ref": "OrganizationsTable"},
        "DEAD_LETTER_QUEUE_URL": {"Ref": "UserStreamDeadLetterQueue"},
        "POWERTOOLS_SERVICE_NAME": "orgsync",
        "POWERTOOLS_METRICS_NAMESPACE": "orgsync",
        "POWERTOOLS_LOG_LEVEL": {"Ref": "LogLevel"},
    }


def test_consumer_logs_to_a_log_group_with_retention(resources: dict[str, Any]) -> None:
    function = props(resources, "StreamConsumerFunction")
    assert function["LoggingConfig"] == {"LogGroup": {"Ref": "StreamConsumerLogGroup"}}
    log_group = props(resources, "StreamConsumerLogGroup")
    assert resolve_prefix(log_group["LogGroupName"]) == "/aws/lambda/poc-user-stream-consumer"
    assert log_group["RetentionInDays"] > 0


def test_function_requirements_install_powertools_and_leave_boto3_to_the_runtime() -> None:
    lines = (ROOT / "src" / "requirements.txt").read_text(encoding="utf-8").splitlines()
    requirements = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert requirements == ["aws-lambda-powertools>=3.37"]


# ---------------------------------------------------------------- IAM


def test_pipe_role_can_only_be_assumed_by_this_pipe_in_this_account(
    resources: dict[str, Any],
) -> None:
    trust = props(resources, "PipeRole")["AssumeRolePolicyDocument"]["Statement"]
    assert len(trust) == 1
    assert trust[0]["Principal"] == {"Service": "pipes.amazonaws.com"}
    condition = trust[0]["Condition"]["StringEquals"]
    assert condition["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert condition["aws:SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:pipes:${AWS::Region}:${AWS::AccountId}"
        ":pipe/${NamePrefix}user-table-dynamo-pipe"
    }
    # The ARN in the condition names the pipe this template creates.
    pipe_name = props(resources, "UserTablePipe")["Name"]["Fn::Sub"]
    assert condition["aws:SourceArn"]["Fn::Sub"].endswith(f":pipe/{pipe_name}")


def test_pipe_role_reads_only_the_stream_and_sends_only_to_its_queues(
    resources: dict[str, Any],
) -> None:
    # ListStreams has no resource-level permission: on the stream ARN it would grant nothing,
    # so it is granted alone, on "*".
    assert role_actions_by_resource(resources, "PipeRole") == {
        getatt("UsersTable", "StreamArn"): {
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
        },
        json.dumps("*"): {"dynamodb:ListStreams"},
        getatt("UserStreamQueue", "Arn"): {"sqs:SendMessage"},
        getatt("UserTablePipeDeadLetterQueue", "Arn"): {"sqs:SendMessage"},
    }


def test_consumer_role_has_only_the_actions_it_needs_on_named_resources(
    resources: dict[str, Any],
) -> None:
    assert props(resources, "StreamConsumerFunction")["Role"] == {
        "Fn::GetAtt": ["StreamConsumerRole", "Arn"]
    }
    # The handler's own calls, read from its import closure's source: one more call without a
    # permission, or one permission without a call, fails here.
    calls = handler_iam_actions()
    assert role_actions_by_resource(resources, "StreamConsumerRole") == {
        getatt("StreamConsumerLogGroup", "Arn"): {"logs:CreateLogStream", "logs:PutLogEvents"},
        getatt("OrganizationsTable", "Arn"): {a for a in calls if a.startswith("dynamodb:")},
        getatt("UserStreamQueue", "Arn"): SQS_EVENT_SOURCE_ACTIONS,
        getatt("UserStreamDeadLetterQueue", "Arn"): {a for a in calls if a.startswith("sqs:")},
    }
    assert {a.split(":")[0] for a in calls} == {"dynamodb", "sqs"}


def test_the_handlers_calls_are_read_from_its_source() -> None:
    # What the role above is compared with, as of this writing: one BatchGetItem per batch,
    # fenced transactions of Put/Delete/ConditionCheck, SendMessageBatch to the DLQ.
    assert handler_iam_actions() == {
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
        "sqs:SendMessage",
    }


def test_a_new_client_call_in_the_source_becomes_an_action_the_role_must_grant() -> None:
    source = ast.parse(
        "def f(sqs, dynamodb):\n"
        "    sqs.change_message_visibility_batch(QueueUrl='q', Entries=[])\n"
        "    dynamodb.get_item(TableName='t', Key={})\n"
        "    dynamodb.transact_write_items(TransactItems=[{'Update': {}}])\n"
    )
    assert iam_actions([source], ["dynamodb", "sqs"]) == {
        "sqs:ChangeMessageVisibility",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
    }


def test_no_policy_statement_grants_on_every_resource_or_every_action(
    transformed: dict[str, Any],
) -> None:
    statements = list(policy_statements(transformed["Resources"]))
    assert statements, "expected the template's roles to carry inline policies"
    for logical_id, statement in statements:
        actions = set(as_list(statement["Action"]))
        for resource in as_list(statement["Resource"]):
            # "*" only for actions that take no other resource, and then alone in its statement.
            assert resource != "*" or actions <= ACTIONS_WITHOUT_RESOURCE_TYPES, (
                logical_id,
                statement,
            )
        for action in actions:
            assert "*" not in action, (logical_id, statement)


# ---------------------------------------------------------------- alarms


def alarms(resources: dict[str, Any]) -> list[dict[str, Any]]:
    return [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]


def queue_name(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "QueueName"]}


@pytest.mark.parametrize(
    ("namespace", "metric", "dimension"),
    [
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue_name("UserStreamDeadLetterQueue")),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", queue_name("UserStreamQueue")),
        ("AWS/Lambda", "Errors", {"Ref": "StreamConsumerFunction"}),
        ("AWS/EventBridge/Pipes", "ExecutionFailed", {"Ref": "UserTablePipe"}),
        ("AWS/EventBridge/Pipes", "TargetStageFailed", {"Ref": "UserTablePipe"}),
        (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            queue_name("UserTablePipeDeadLetterQueue"),
        ),
    ],
)
def test_an_alarm_watches_each_health_signal(
    resources: dict[str, Any], namespace: str, metric: str, dimension: dict[str, Any]
) -> None:
    matching = [
        a
        for a in alarms(resources)
        if a["Namespace"] == namespace
        and a["MetricName"] == metric
        and [d["Value"] for d in a["Dimensions"]] == [dimension]
    ]
    assert len(matching) == 1
    assert matching[0]["TreatMissingData"] == "notBreaching"


def test_dead_letter_alarms_fire_on_a_single_message(resources: dict[str, Any]) -> None:
    dlq_alarms = [
        a for a in alarms(resources) if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
    ]
    assert len(dlq_alarms) == 2
    for alarm in dlq_alarms:
        assert alarm["Threshold"] == 0
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_pipe_alarms_use_the_pipe_name_dimension(resources: dict[str, Any]) -> None:
    for alarm in alarms(resources):
        if alarm["Namespace"] == "AWS/EventBridge/Pipes":
            assert [d["Name"] for d in alarm["Dimensions"]] == ["PipeName"]


def test_alarms_notify_the_topic_only_when_one_is_given(template: dict[str, Any]) -> None:
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert template["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }
    for alarm in alarms(template["Resources"]):
        assert alarm["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }


# ---------------------------------------------------------------- outputs, tooling


def test_outputs_name_the_tables_queues_function_and_pipe(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["UsersTableName"]["Value"] == {"Ref": "UsersTable"}
    assert outputs["OrganizationsTableName"]["Value"] == {"Ref": "OrganizationsTable"}
    assert outputs["UserStreamQueueUrl"]["Value"] == {"Ref": "UserStreamQueue"}
    assert outputs["UserStreamDeadLetterQueueUrl"]["Value"] == {"Ref": "UserStreamDeadLetterQueue"}
    assert outputs["StreamConsumerFunctionName"]["Value"] == {"Ref": "StreamConsumerFunction"}
    assert outputs["UserTablePipeName"]["Value"] == {"Ref": "UserTablePipe"}
    assert {"UsersTableArn", "OrganizationsTableArn", "UsersTableStreamArn"} <= set(outputs)


def test_taskfile_keeps_the_original_task_names_and_adds_test_and_lint() -> None:
    taskfile = yaml.safe_load((ROOT / "Taskfile.yml").read_text(encoding="utf-8"))
    assert str(taskfile["version"]) == "3"
    assert {
        "deploy",
        "delete",
        "sam-build",
        "sam-validate",
        "sam-deploy",
        "sam-delete",
        "put-item",
        "delete-item",
        "user:delete",
        "cleanup",
        "test",
        "lint",
        "doctor",
    } <= set(taskfile["tasks"])
    assert [step["task"] for step in taskfile["tasks"]["deploy"]["cmds"]] == [
        "sam-build",
        "sam-validate",
        "sam-deploy",
        "cleanup",
    ]
    assert taskfile["tasks"]["user:delete"]["requires"] == {"vars": ["USER_ID"]}


def test_samconfig_deploys_stack_orgsync_without_prompts() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    assert config["default"]["global"]["parameters"]["stack_name"] == "orgsync"
    deploy = config["default"]["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is False
