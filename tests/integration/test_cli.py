"""The operator CLI against a real moto server over HTTP: users, org members, status, errors."""

from __future__ import annotations

import json
import socket
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from integration_stack import CLEAN_CLI_ENV
from typer.testing import CliRunner

from orgsync.cli import app
from orgsync.local.pipes.checkpoint import Checkpoint, CheckpointStore

DEFAULT_USER = "auth0|66199504eddfc16953adc92e"


@dataclass(frozen=True)
class Stack:
    endpoint: str
    prefix: str
    dynamodb: Any
    sqs: Any

    def invoke(self, *args: str) -> Any:
        return CliRunner().invoke(
            app,
            ["--endpoint-url", self.endpoint, "--name-prefix", self.prefix, *args],
            env=CLEAN_CLI_ENV,
        )


@pytest.fixture
def stack(moto_endpoint: str) -> Stack:
    """The contract's tables and queues under a prefix of their own, so tests never share state."""
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    session = boto3.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    dynamodb = session.client("dynamodb", endpoint_url=moto_endpoint)
    sqs = session.client("sqs", endpoint_url=moto_endpoint)
    for table in ("poc-users", "poc-organizations"):
        dynamodb.create_table(
            TableName=f"{prefix}{table}",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    dlq_url = sqs.create_queue(
        QueueName=f"{prefix}user-dynamo-stream-deadletter.fifo",
        Attributes={"FifoQueue": "true"},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sqs.create_queue(
        QueueName=f"{prefix}user-dynamo-stream.fifo",
        Attributes={
            "FifoQueue": "true",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}),
        },
    )
    return Stack(endpoint=moto_endpoint, prefix=prefix, dynamodb=dynamodb, sqs=sqs)


def _membership(org_id: str, user_id: str, email: str, seq: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"ORGANIZATION#{org_id}"},
        "sk": {"S": f"MEMBERSHIP#{user_id}"},
        "org_id": {"S": org_id},
        "user_id": {"S": user_id},
        "email": {"S": email},
        "status": {"S": "ACTIVE"},
        "source_seq": {"N": str(seq)},
    }


def test_users_put_get_delete_round_trip_with_the_seed_defaults(stack: Stack) -> None:
    put = stack.invoke("users", "put")
    assert put.exit_code == 0, put.output
    item = stack.dynamodb.get_item(
        TableName=f"{stack.prefix}poc-users",
        Key={"pk": {"S": f"USER#{DEFAULT_USER}"}, "sk": {"S": "METADATA"}},
    )["Item"]
    assert item["email"] == {"S": "admin@example.org"}
    assert item["status"] == {"S": "ACTIVE"}
    assert item["organizations"] == {"L": [{"S": "org-acme"}, {"S": "org-globex"}]}

    shown = stack.invoke("users", "get", DEFAULT_USER, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) == {
        "user_id": DEFAULT_USER,
        "email": "admin@example.org",
        "status": "ACTIVE",
        "organizations": ["org-acme", "org-globex"],
    }
    table = stack.invoke("users", "get", DEFAULT_USER)
    assert "org-acme, org-globex" in table.stdout

    deleted = stack.invoke("users", "delete", DEFAULT_USER)
    assert deleted.exit_code == 0, deleted.output
    assert "deleted user" in deleted.stdout
    missing = stack.invoke("users", "get", DEFAULT_USER)
    assert missing.exit_code == 1
    assert "not found" in missing.stderr


def test_users_put_takes_explicit_values_and_repeated_orgs(stack: Stack) -> None:
    result = stack.invoke(
        "users", "put", "u-2", "--email", "b@example.org", "--status", "SUSPENDED",
        "--org", "o1", "--org", "o2", "--org", "o3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = json.loads(stack.invoke("users", "get", "u-2", "--json").stdout)
    assert shown["status"] == "SUSPENDED"
    assert shown["organizations"] == ["o1", "o2", "o3"]


def test_orgs_members_lists_the_membership_items_of_one_org(stack: Stack) -> None:
    table = f"{stack.prefix}poc-organizations"
    for user_id, seq in (("auth0|a", 101), ("auth0|b", 102)):
        stack.dynamodb.put_item(
            TableName=table, Item=_membership("org-acme", user_id, f"{seq}@example.org", seq)
        )
    stack.dynamodb.put_item(
        TableName=table, Item=_membership("org-other", "auth0|c", "c@example.org", 7)
    )
    stack.dynamodb.put_item(  # org metadata shares the partition and must not be listed
        TableName=table,
        Item={"pk": {"S": "ORGANIZATION#org-acme"}, "sk": {"S": "METADATA"}, "name": {"S": "A"}},
    )

    listed = stack.invoke("orgs", "members", "org-acme", "--json")
    assert listed.exit_code == 0, listed.output
    members = json.loads(listed.stdout)
    assert [(m["user_id"], m["email"], m["source_seq"]) for m in members] == [
        ("auth0|a", "101@example.org", 101),
        ("auth0|b", "102@example.org", 102),
    ]

    rendered = stack.invoke("orgs", "members", "org-acme")
    assert rendered.exit_code == 0, rendered.output
    assert "auth0|a" in rendered.stdout
    assert "auth0|b" in rendered.stdout
    assert "auth0|c" not in rendered.stdout
    assert "2 member(s)" in rendered.stdout


def test_status_prints_queue_depths_and_table_sizes(stack: Stack) -> None:
    main_url = stack.sqs.get_queue_url(QueueName=f"{stack.prefix}user-dynamo-stream.fifo")[
        "QueueUrl"
    ]
    for n in range(3):
        stack.sqs.send_message(
            QueueUrl=main_url, MessageBody=f"m{n}", MessageGroupId=f"g{n}",
            MessageDeduplicationId=f"d{n}",
        )  # fmt: skip

    snapshot = stack.invoke("status", "--json")
    assert snapshot.exit_code == 0, snapshot.output
    data = json.loads(snapshot.stdout)
    assert data["main_queue"]["visible"] == 3
    assert data["dead_letter_queue"]["visible"] == 0
    assert [t["name"] for t in data["tables"]] == [
        f"{stack.prefix}poc-users",
        f"{stack.prefix}poc-organizations",
    ]

    rendered = stack.invoke("status")
    assert rendered.exit_code == 0, rendered.output
    assert f"{stack.prefix}user-dynamo-stream.fifo" in rendered.stdout
    assert "visible" in rendered.stdout


def test_status_shows_the_local_pipe_position_and_a_users_replication_record(
    stack: Stack,
) -> None:
    # Written by the pipe's own checkpoint store, so status reads exactly what the pipe keeps.
    checkpoints = CheckpointStore(
        stack.dynamodb,
        table_name="orgsync-local-pipe-checkpoints",
        pipe_name="user-table-dynamo-pipe",
        stream_arn=f"arn:aws:dynamodb:us-east-1:000000000000:table/{stack.prefix}poc-users/stream/x",
    )
    checkpoints.ensure_table()
    checkpoints.save(Checkpoint("shardId-0001", "4200000000000000000001"))
    stack.dynamodb.put_item(
        TableName=f"{stack.prefix}poc-organizations",
        Item={
            "pk": {"S": "USER#auth0|a"},
            "sk": {"S": "REPLICATION"},
            "orgs": {"L": [{"S": "org-acme"}]},
            "seq": {"N": "4200000000000000000001"},
            "deleted": {"BOOL": False},
        },
    )

    result = stack.invoke("status", "--user", "auth0|a", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    expected = {
        "pipe": "user-table-dynamo-pipe",
        "shard_id": "shardId-0001",
        "sequence_number": "4200000000000000000001",
        "finished": False,
    }
    assert expected in data["pipe_positions"]
    assert data["user"]["seq"] == 4200000000000000000001
    assert data["user"]["orgs"] == ["org-acme"]


def test_an_unreachable_endpoint_exits_1_with_one_error_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    result = CliRunner().invoke(
        app,
        ["--endpoint-url", f"http://127.0.0.1:{closed_port}", "orgs", "members", "org-acme"],
        env=CLEAN_CLI_ENV,
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error:")
    assert "Could not connect" in lines[0]


def test_a_missing_queue_exits_1_naming_the_prefix_to_check(stack: Stack) -> None:
    result = CliRunner().invoke(
        app,
        ["--endpoint-url", stack.endpoint, "--name-prefix", "nope-", "status"],
        env=CLEAN_CLI_ENV,
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--name-prefix" in lines[0]
