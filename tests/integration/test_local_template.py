"""template.yaml as the local stack reads it, and the resources it creates on a real moto server."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from orgsync.local.errors import TemplateError
from orgsync.local.servers import MotoStore
from orgsync.local.stack import EmbeddedStack, StackOptions
from orgsync.local.template.reader import load_stack_model
from orgsync.local.template.resources import create_resources

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
ENDPOINT = "http://127.0.0.1:4566"

FIXTURE_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Env:
    Type: String
    Default: dev
    AllowedValues: [dev, prod]
  Zones:
    Type: CommaDelimitedList
    Default: "a,b,c"
Mappings:
  Sizes:
    dev: {Memory: 256}
    prod: {Memory: 1024}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsDev: !Not [!Condition IsProd]
  DevAndEast: !And [!Condition IsDev, !Equals [!Ref "AWS::Region", us-east-1]]
  AnyOf: !Or [!Condition IsProd, !Condition DevAndEast]
Globals:
  Function:
    Timeout: 12
    Environment:
      Variables:
        SHARED: from-globals
        OVERRIDDEN: globals
Resources:
  Source:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Join ["-", [!Ref Env, source, !Select [1, !Ref Zones]]]
      BillingMode: !If [IsProd, PROVISIONED, PAY_PER_REQUEST]
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_IMAGE}
  ProdOnly:
    Type: AWS::SQS::Queue
    Condition: IsProd
    Properties:
      QueueName: prod-only
  Dlq:
    Type: AWS::SQS::Queue
    Properties:
      FifoQueue: true
  Main:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub
        - "${Env}-${Name}.fifo"
        - Name: !Select [0, !Split [",", "main,other"]]
      FifoQueue: "true"
      RedrivePolicy: !Sub '{"deadLetterTargetArn": "${Dlq.Arn}", "maxReceiveCount": 3}'
  Pipe:
    Type: AWS::Pipes::Pipe
    Properties:
      Source: !GetAtt [Source, StreamArn]
      Target: !GetAtt Main.Arn
      SourceParameters:
        FilterCriteria:
          Filters:
            - Pattern: {"dynamodb": {"Keys": {"id": {"S": [{"prefix": "x"}]}}}}
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      Handler: tests.handler.handle
      MemorySize: !FindInMap [Sizes, !Ref Env, Memory]
      Environment:
        Variables:
          OVERRIDDEN: function
          QUEUE_URL: !GetAtt Main.QueueUrl
          QUEUE_NAME: !GetAtt Main.QueueName
          LITERAL: !Sub "${!NotAVariable}"
          ZONES: !Join [",", !GetAZs ""]
          ENCODED: !Base64 hello
          SUBNET: !Select [1, !Cidr ["10.0.0.0/16", 2, 8]]
          COND: !If [AnyOf, "yes", !Ref "AWS::NoValue"]
          STACK: !Sub "${AWS::StackName}/${AWS::AccountId}/${AWS::Partition}"
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      EventSourceArn: !GetAtt Main.Arn
      FunctionName: !Ref Worker
      BatchSize: 5
"""


@pytest.fixture
def fixture_template(tmp_path: Path) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(FIXTURE_TEMPLATE)
    return path


# --------------------------------------------------------------------------- the real template


def test_the_real_template_gives_the_seed_names_under_an_empty_prefix() -> None:
    model = load_stack_model(TEMPLATE, endpoint_url=ENDPOINT, account_id="123456789012")

    assert [table.name for table in model.tables] == ["poc-users", "poc-organizations"]
    users = model.table("UsersTable")
    assert [(k.attribute_name, k.key_type) for k in users.key_schema] == [
        ("pk", "HASH"),
        ("sk", "RANGE"),
    ]
    assert users.stream_view_type == "NEW_AND_OLD_IMAGES"
    assert model.table("OrganizationsTable").ttl_attribute == "expires_at"
    assert model.table("OrganizationsTable").stream_view_type is None
    assert model.pipe("UserTablePipe").name == "user-table-dynamo-pipe"
    assert model.function("StreamConsumerFunction").name == "poc-user-stream-consumer"


def test_the_real_queues_are_fifo_high_throughput_with_a_five_receive_redrive() -> None:
    model = load_stack_model(TEMPLATE, endpoint_url=ENDPOINT, account_id="123456789012")

    queue = model.queue("UserStreamQueue")
    assert queue.name == "user-dynamo-stream.fifo"
    assert queue.url == f"{ENDPOINT}/123456789012/user-dynamo-stream.fifo"
    assert queue.fifo
    assert queue.content_based_deduplication
    assert queue.deduplication_scope == "messageGroup"
    assert queue.fifo_throughput_limit == "perMessageGroupId"
    assert queue.visibility_timeout == 180
    assert queue.redrive_policy is not None
    assert queue.redrive_policy.dead_letter_queue_name == "user-dynamo-stream-deadletter.fifo"
    assert queue.redrive_policy.max_receive_count == 5
    dead_letter = model.queue("UserStreamDeadLetterQueue")
    assert dead_letter.fifo
    assert dead_letter.message_retention_period == 14 * 24 * 3600
    order = [q.logical_id for q in model.queues_in_creation_order()]
    assert order.index("UserStreamDeadLetterQueue") < order.index("UserStreamQueue")


def test_the_real_pipe_filters_on_keys_and_groups_by_user() -> None:
    model = load_stack_model(TEMPLATE, endpoint_url=ENDPOINT, account_id="123456789012")

    pipe = model.pipe("UserTablePipe")
    assert pipe.source_table_name == "poc-users"
    assert pipe.target_queue_name == "user-dynamo-stream.fifo"
    assert pipe.batch_size == 10
    assert pipe.starting_position == "TRIM_HORIZON"
    assert pipe.message_group_id == "$.dynamodb.Keys.pk.S"
    assert pipe.message_deduplication_id == "$.eventID"
    (pattern,) = pipe.filter_patterns
    assert json.loads(pattern) == {
        "dynamodb": {"Keys": {"sk": {"S": ["METADATA"]}, "pk": {"S": [{"prefix": "USER#"}]}}}
    }
    assert pipe.dead_letter_queue_name == "user-table-dynamo-pipe-dlq"
    live_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/poc-users/stream/2024-01-01T00:00"
    settings = pipe.settings(live_arn)
    assert settings.stream_arn == live_arn
    assert settings.target_queue_url == f"{ENDPOINT}/123456789012/user-dynamo-stream.fifo"
    assert settings.filter_patterns == pipe.filter_patterns
    assert settings.dead_letter_queue_url == f"{ENDPOINT}/123456789012/user-table-dynamo-pipe-dlq"


def test_the_real_function_gets_resolved_environment_and_its_sqs_event_source() -> None:
    model = load_stack_model(TEMPLATE, endpoint_url=ENDPOINT, account_id="123456789012")

    function = model.function("StreamConsumerFunction")
    assert function.handler == "orgsync.consumer.handler.lambda_handler"
    assert function.timeout_seconds == 30
    assert function.environment["ORGANIZATIONS_TABLE_NAME"] == "poc-organizations"
    assert function.environment["DEAD_LETTER_QUEUE_URL"] == (
        f"{ENDPOINT}/123456789012/user-dynamo-stream-deadletter.fifo"
    )
    assert function.environment["POWERTOOLS_LOG_LEVEL"] == "INFO"
    (source,) = function.sqs_event_sources
    assert source.queue_name == "user-dynamo-stream.fifo"
    assert source.batch_size == 10
    assert source.report_batch_item_failures
    assert source.maximum_concurrency == 10


def test_the_real_template_names_what_the_local_stack_does_not_emulate() -> None:
    model = load_stack_model(TEMPLATE, endpoint_url=ENDPOINT, account_id="123456789012")

    # The distributed reconcile run deploys, but runs only on AWS (`orgsync reconcile` runs
    # the same slices locally); roles, log groups and alarms have nothing to run and go unsaid.
    assert [(item.logical_id, item.resource_type, item.reason) for item in model.not_emulated] == [
        ("ReconcileResultsBucket", "AWS::S3::Bucket", "no S3 store runs locally"),
        ("ReconcileResultsBucketPolicy", "AWS::S3::BucketPolicy", "no S3 store runs locally"),
        (
            "ReconcileFunction",
            "AWS::Serverless::Function",
            "no enabled SQS event source invokes it",
        ),
        (
            "ReconcileStateMachine",
            "AWS::Serverless::StateMachine",
            "Step Functions is not emulated",
        ),
    ]
    # Read like any function (its environment resolves), it simply has no poller.
    reconciler = model.function("ReconcileFunction")
    assert reconciler.sqs_event_sources == ()
    assert reconciler.environment["USERS_TABLE_NAME"] == "poc-users"


def test_parameters_override_defaults_everywhere_they_are_referenced() -> None:
    model = load_stack_model(
        TEMPLATE,
        parameters={"NamePrefix": "dev-", "MaximumConcurrency": "3", "LogLevel": "DEBUG"},
        endpoint_url=ENDPOINT,
    )

    assert model.table("UsersTable").name == "dev-poc-users"
    assert model.queue("UserStreamQueue").name == "dev-user-dynamo-stream.fifo"
    assert model.queue("UserStreamQueue").redrive_policy.dead_letter_queue_name == (
        "dev-user-dynamo-stream-deadletter.fifo"
    )
    assert model.pipe("UserTablePipe").source_table_name == "dev-poc-users"
    function = model.function("StreamConsumerFunction")
    assert function.environment["ORGANIZATIONS_TABLE_NAME"] == "dev-poc-organizations"
    assert function.environment["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
    assert function.sqs_event_sources[0].maximum_concurrency == 3
    assert model.parameters["NamePrefix"] == "dev-"


def test_a_provisioned_billing_mode_parameter_is_read_but_the_model_keeps_it() -> None:
    model = load_stack_model(TEMPLATE, parameters={"BillingMode": "PROVISIONED"})

    assert model.table("UsersTable").billing_mode == "PROVISIONED"


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"NoSuchParameter": "x"}, "unknown template parameters"),
        ({"BillingMode": "FREE"}, "is not one of"),
        ({"NamePrefix": "has spaces"}, "does not match"),
    ],
)
def test_bad_parameters_are_rejected_with_a_clear_message(
    parameters: dict[str, str], message: str
) -> None:
    with pytest.raises(TemplateError, match=message):
        load_stack_model(TEMPLATE, parameters=parameters)


# --------------------------------------------------------------------------- intrinsics


def test_intrinsics_conditions_mappings_and_globals_resolve(fixture_template: Path) -> None:
    model = load_stack_model(fixture_template, endpoint_url=ENDPOINT, stack_name="demo")

    assert model.table("Source").name == "dev-source-b"
    assert model.table("Source").billing_mode == "PAY_PER_REQUEST"
    assert [queue.logical_id for queue in model.queues] == ["Dlq", "Main"]
    assert model.queue("Dlq").name == "demo-Dlq.fifo"
    main = model.queue("Main")
    assert main.name == "dev-main.fifo"
    assert main.redrive_policy is not None
    assert main.redrive_policy.dead_letter_queue_name == "demo-Dlq.fifo"
    assert main.redrive_policy.max_receive_count == 3
    pipe = model.pipe("Pipe")
    assert pipe.name == "demo-Pipe"
    assert pipe.source_table_name == "dev-source-b"
    assert json.loads(pipe.filter_patterns[0]) == {
        "dynamodb": {"Keys": {"id": {"S": [{"prefix": "x"}]}}}
    }
    worker = model.function("Worker")
    assert worker.timeout_seconds == 12
    assert worker.memory_size_mb == 256
    assert dict(worker.environment) == {
        "SHARED": "from-globals",
        "OVERRIDDEN": "function",
        "QUEUE_URL": f"{ENDPOINT}/000000000000/dev-main.fifo",
        "QUEUE_NAME": "dev-main.fifo",
        "LITERAL": "${NotAVariable}",
        "ZONES": "us-east-1a,us-east-1b,us-east-1c",
        "ENCODED": base64.b64encode(b"hello").decode(),
        "SUBNET": "10.0.1.0/24",
        "COND": "yes",
        "STACK": "demo/000000000000/aws",
    }
    (source,) = worker.sqs_event_sources
    assert source.queue_name == "dev-main.fifo"
    assert source.batch_size == 5
    assert not source.report_batch_item_failures


def test_what_the_stack_leaves_out_is_named_and_what_has_nothing_to_run_is_not(
    fixture_template: Path, tmp_path: Path
) -> None:
    # The fixture's function is invoked by an SQS mapping: everything in it runs locally.
    assert load_stack_model(fixture_template).not_emulated == ()
    path = tmp_path / "other.yaml"
    path.write_text(
        "Resources:\n"
        "  Nightly:\n    Type: AWS::Serverless::Function\n"
        "    Properties:\n      Handler: jobs.nightly\n"
        "      Events:\n        Every:\n          Type: Schedule\n"
        "          Properties:\n            Schedule: rate(1 day)\n"
        "  FromStream:\n    Type: AWS::Lambda::EventSourceMapping\n"
        "    Properties:\n      FunctionName: !Ref Nightly\n"
        "      EventSourceArn: arn:aws:kinesis:us-east-1:000000000000:stream/s\n"
        "  Topic:\n    Type: AWS::SNS::Topic\n"
        "  Role:\n    Type: AWS::IAM::Role\n"
        "  Logs:\n    Type: AWS::Logs::LogGroup\n"
    )

    assert [str(item) for item in load_stack_model(path).not_emulated] == [
        "Nightly (AWS::Serverless::Function: no enabled SQS event source invokes it)",
        "FromStream (AWS::Lambda::EventSourceMapping: only SQS event sources run locally)",
        "Topic (AWS::SNS::Topic: not emulated locally)",
    ]


def test_conditions_remove_resources_and_properties(fixture_template: Path) -> None:
    model = load_stack_model(fixture_template, parameters={"Env": "prod"}, region="eu-west-1")

    assert model.queue("ProdOnly").name == "prod-only"
    assert model.table("Source").billing_mode == "PROVISIONED"
    assert model.function("Worker").memory_size_mb == 1024
    assert model.function("Worker").environment["COND"] == "yes"
    dev_elsewhere = load_stack_model(fixture_template, region="eu-west-1")
    assert "COND" not in dev_elsewhere.function("Worker").environment


def test_physical_ids_override_what_a_ref_to_a_resource_gives(fixture_template: Path) -> None:
    model = load_stack_model(
        fixture_template, physical_ids={"Main": "http://sqs.elsewhere:4566/000000000000/q.fifo"}
    )

    assert model.queue("Main").url == "http://sqs.elsewhere:4566/000000000000/q.fifo"


def test_an_import_value_cannot_be_resolved_locally(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        "Resources:\n  T:\n    Type: AWS::DynamoDB::Table\n"
        "    Properties:\n      TableName: !ImportValue other-stack-name\n"
    )

    with pytest.raises(TemplateError, match="ImportValue"):
        load_stack_model(path)


def test_a_file_without_resources_is_not_a_template(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("just: text\n")

    with pytest.raises(TemplateError, match="no Resources"):
        load_stack_model(path)


# --------------------------------------------------------------------------- resources on moto


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    store = MotoStore(port=0)
    store.start()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    yield store.endpoint_url
    store.stop()


def clients(endpoint: str) -> tuple[Any, Any]:
    options: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    return boto3.client("dynamodb", **options), boto3.client("sqs", **options)


def test_creating_the_template_resources_twice_is_harmless(moto: str) -> None:
    prefix = f"r{uuid.uuid4().hex[:6]}-"
    model = load_stack_model(
        TEMPLATE, parameters={"NamePrefix": prefix}, endpoint_url=moto, account_id="123456789012"
    )
    dynamodb, sqs = clients(moto)

    first = create_resources(model, dynamodb=dynamodb, sqs=sqs)
    second = create_resources(model, dynamodb=dynamodb, sqs=sqs)

    assert first == second
    assert set(first.stream_arns) == {"UsersTable"}
    assert f"table/{prefix}poc-users/stream/" in first.stream_arns["UsersTable"]
    users = dynamodb.describe_table(TableName=f"{prefix}poc-users")["Table"]
    assert users["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    assert users["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = dynamodb.describe_time_to_live(TableName=f"{prefix}poc-organizations")
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    assert first.queue_urls["UserStreamQueue"] == model.queue("UserStreamQueue").url
    attributes = sqs.get_queue_attributes(
        QueueUrl=first.queue_urls["UserStreamQueue"], AttributeNames=["All"]
    )["Attributes"]
    assert attributes["FifoQueue"] == "true"
    assert attributes["ContentBasedDeduplication"] == "true"
    assert attributes["DeduplicationScope"] == "messageGroup"
    assert attributes["FifoThroughputLimit"] == "perMessageGroupId"
    assert attributes["VisibilityTimeout"] == "180"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": first.queue_arns["UserStreamDeadLetterQueue"],
        "maxReceiveCount": 5,
    }


def test_an_existing_queue_is_brought_to_the_template_settings(moto: str) -> None:
    prefix = f"q{uuid.uuid4().hex[:6]}-"
    model = load_stack_model(TEMPLATE, parameters={"NamePrefix": prefix}, endpoint_url=moto)
    dynamodb, sqs = clients(moto)
    sqs.create_queue(
        QueueName=f"{prefix}user-dynamo-stream.fifo",
        Attributes={"FifoQueue": "true", "VisibilityTimeout": "5"},
    )

    created = create_resources(model, dynamodb=dynamodb, sqs=sqs)

    attributes = sqs.get_queue_attributes(
        QueueUrl=created.queue_urls["UserStreamQueue"], AttributeNames=["All"]
    )["Attributes"]
    assert attributes["VisibilityTimeout"] == "180"
    assert "RedrivePolicy" in attributes


def test_the_stack_says_once_at_start_what_it_does_not_emulate(
    moto: str, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"n{uuid.uuid4().hex[:6]}-"
    options = StackOptions(
        template_path=TEMPLATE,
        endpoint_url=moto,
        parameters={"NamePrefix": prefix},
        run_pipeline=False,
    )

    with caplog.at_level(logging.INFO, logger="orgsync.local.stack"), EmbeddedStack(options):
        pass

    said = [
        record.getMessage()
        for record in caplog.records
        if record.name == "orgsync.local.stack" and "not emulated" in record.getMessage()
    ]
    assert len(said) == 1
    assert said[0].startswith("not emulated locally: ReconcileResultsBucket (AWS::S3::Bucket")
    for logical_id in (
        "ReconcileResultsBucketPolicy",
        "ReconcileFunction",
        "ReconcileStateMachine",
    ):
        assert logical_id in said[0]
    assert [r.levelno for r in caplog.records if r.getMessage() in said] == [logging.INFO]
