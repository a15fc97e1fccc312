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
        "users",
        "put",
        "u-2",
        "--email",
        "b@example.org",
        "--status",
        "SUSPENDED",
        "--org",
        "o1",
        "--org",
        "o2",
        "--org",
        "o3",
    )
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
            QueueUrl=main_url,
            MessageBody=f"m{n}",
            MessageGroupId=f"g{n}",
            MessageDeduplicationId=f"d{n}",
        )

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
        ["--endpoint-url", stack.endpoint, "--name-prefix", "nope-", "dlq", "list"],
        env=CLEAN_CLI_ENV,
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--name-prefix" in lines[0]


# -- refused input: one line on stderr, exit 2, nothing written ---------------------------------


def _one_error_line(result: Any) -> str:
    assert result.stdout == "", result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def _users_in(stack: Stack) -> list[dict[str, Any]]:
    return stack.dynamodb.scan(TableName=f"{stack.prefix}poc-users", ConsistentRead=True)["Items"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        pytest.param(("",), "user id is empty", id="empty-user-id"),
        pytest.param(("x", "--org", ""), "org id is empty", id="empty-org-id"),
        pytest.param(("x", "--org", "o1", "--org", ""), "org id is empty", id="one-empty-org"),
        pytest.param(("a" * 124,), "124 characters", id="user-id-past-the-group-id-budget"),
        pytest.param(("auth0|" + "f" * 118,), "124 characters", id="auth0-id-past-the-budget"),
        pytest.param(("auth0 42",), "U+0020", id="space-in-user-id"),
        pytest.param(("jos\u00e9",), "U+00E9", id="non-ascii-user-id"),
        pytest.param(("tab\there",), "U+0009", id="control-character-in-user-id"),
        pytest.param(
            ("x", "--no-orgs", "--org", "o1"), "--no-orgs and --org", id="no-orgs-and-org"
        ),
        pytest.param(("x", "--email", ""), "--email is empty", id="empty-email"),
        pytest.param(("x", "--status", " "), "--status is empty", id="blank-status"),
    ],
)
def test_users_put_refuses_what_the_replication_cannot_carry_and_writes_nothing(
    stack: Stack, args: tuple[str, ...], said: str
) -> None:
    result = stack.invoke("users", "put", *args)
    assert result.exit_code == 2, result.output
    line = _one_error_line(result)
    assert said in line
    assert _users_in(stack) == []


def test_users_put_refuses_before_it_needs_a_region_or_a_network() -> None:
    # No endpoint, no region, no credentials: the input is judged first.
    result = CliRunner().invoke(app, ["users", "put", ""], env=_NOWHERE_ENV)
    assert result.exit_code == 2, result.output
    assert "user id is empty" in _one_error_line(result)


def test_users_put_accepts_the_longest_user_id_the_pipe_can_group_by(stack: Stack) -> None:
    longest = "auth0|" + "f" * 117  # USER# + 123 characters = SQS's 128
    punctuation = "a!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~z"
    for user_id in (longest, punctuation):
        result = stack.invoke("users", "put", user_id, "--email", "a@example.org")
        assert result.exit_code == 0, result.output
    assert {item["pk"]["S"] for item in _users_in(stack)} == {
        f"USER#{longest}",
        f"USER#{punctuation}",
    }


def test_org_ids_may_hold_any_unicode_they_travel_in_the_message_body(stack: Stack) -> None:
    result = stack.invoke("users", "put", "u-1", "--org", "org-\u00e9t\u00e9 #1")
    assert result.exit_code == 0, result.output
    shown = json.loads(stack.invoke("users", "get", "u-1", "--json").stdout)
    assert shown["organizations"] == ["org-\u00e9t\u00e9 #1"]


def test_the_seed_email_belongs_to_the_seed_user_only(stack: Stack) -> None:
    result = stack.invoke("users", "put", "auth0|other")
    assert result.exit_code == 0, result.output
    assert "no email" in result.stdout
    item = _users_in(stack)[0]
    assert "email" not in item  # docs/design.md §1: replicated as a membership without email
    shown = json.loads(stack.invoke("users", "get", "auth0|other", "--json").stdout)
    assert shown["email"] is None

    seed = stack.invoke("users", "put")
    assert seed.exit_code == 0, seed.output
    emails = {item["pk"]["S"]: item.get("email") for item in _users_in(stack)}
    assert emails[f"USER#{DEFAULT_USER}"] == {"S": "admin@example.org"}


def test_users_get_and_delete_still_reach_a_user_put_cannot_write(stack: Stack) -> None:
    # Written by something else: the operator must be able to look at it and remove it.
    too_long = "a" * 130
    stack.dynamodb.put_item(
        TableName=f"{stack.prefix}poc-users",
        Item={"pk": {"S": f"USER#{too_long}"}, "sk": {"S": "METADATA"}, "status": {"S": "X"}},
    )
    assert stack.invoke("users", "get", too_long).exit_code == 0
    deleted = stack.invoke("users", "delete", too_long)
    assert deleted.exit_code == 0, deleted.output
    assert _users_in(stack) == []


# -- where the commands go: endpoint, region, credentials ----------------------------------------

# Nothing configured at all, and no way to find it: no ~/.aws files, no instance metadata.
_NOWHERE_ENV = {
    **CLEAN_CLI_ENV,
    "AWS_CONFIG_FILE": "/nonexistent/orgsync-test/config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/orgsync-test/credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": None,
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None,
}


@pytest.mark.parametrize(
    "how",
    [
        pytest.param(("--endpoint-url", "127.0.0.1:4566"), id="option"),
        pytest.param(("AWS_ENDPOINT_URL", "127.0.0.1:4566"), id="env-var"),
        pytest.param(("--endpoint-url", "http://:4566"), id="no-host"),
        pytest.param(("--endpoint-url", "http://127.0.0.1:99999"), id="bad-port"),
    ],
)
def test_an_endpoint_that_is_not_a_url_is_refused_in_one_line(how: tuple[str, str]) -> None:
    flag, value = how
    args, env = (["--endpoint-url", value], _NOWHERE_ENV)
    if not flag.startswith("--"):
        args, env = ([], {**_NOWHERE_ENV, flag: value})
    result = CliRunner().invoke(app, [*args, "orgs", "members", "org-acme"], env=env)
    assert result.exit_code == 2, result.output
    line = _one_error_line(result)
    assert "--endpoint-url" in line
    assert "Traceback" not in result.output
    if flag == "AWS_ENDPOINT_URL":
        assert "AWS_ENDPOINT_URL" in line


def test_no_region_says_which_option_sets_one() -> None:
    result = CliRunner().invoke(app, ["orgs", "members", "org-acme"], env=_NOWHERE_ENV)
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "--region" in line
    assert "AWS_REGION" in line
    assert "orgsync local up" in line


def test_no_credentials_says_how_to_give_them() -> None:
    result = CliRunner().invoke(
        app, ["--region", "us-east-1", "orgs", "members", "org-acme"], env=_NOWHERE_ENV
    )
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "--profile" in line
    assert "AWS_ACCESS_KEY_ID" in line


def test_an_unknown_profile_names_the_option() -> None:
    result = CliRunner().invoke(
        app, ["--profile", "nope", "orgs", "members", "org-acme"], env=_NOWHERE_ENV
    )
    assert result.exit_code == 1
    assert "--profile" in _one_error_line(result)


def test_a_region_the_emulator_cannot_serve_is_one_line_not_an_html_page(stack: Stack) -> None:
    result = stack.invoke("--region", "mars-1", "users", "get", "u-1")
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "<" not in line
    assert "HTTP 500" in line
    assert "mars-1" in line
    assert "--region" in line


def test_a_region_other_than_the_stacks_is_named_in_the_hint(stack: Stack) -> None:
    result = stack.invoke("--region", "eu-west-1", "orgs", "members", "org-acme")
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "eu-west-1" in line
    assert "--region" in line
    assert "--name-prefix" in line


def test_an_unreachable_endpoint_says_to_start_the_stack() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    result = CliRunner().invoke(
        app,
        ["--endpoint-url", f"http://127.0.0.1:{closed_port}", "users", "get", "u-1"],
        env=CLEAN_CLI_ENV,
    )
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "orgsync local up" in line
    assert "--endpoint-url" in line


# -- stacks whose names do not follow the prefix scheme ------------------------------------------


def _table(dynamodb: Any, name: str) -> None:
    dynamodb.create_table(
        TableName=name,
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


def test_exact_table_names_replace_the_prefixed_ones(stack: Stack) -> None:
    suffix = uuid.uuid4().hex[:8]
    users_table, orgs_table = f"Users-{suffix}", f"Memberships-{suffix}"
    _table(stack.dynamodb, users_table)
    _table(stack.dynamodb, orgs_table)
    stack.dynamodb.put_item(TableName=orgs_table, Item=_membership("org-x", "auth0|m", "m@x", 3))

    by_option = CliRunner().invoke(
        app,
        [
            "--endpoint-url",
            stack.endpoint,
            "--users-table",
            users_table,
            "users",
            "put",
            "auth0|a",
            "--org",
            "org-x",
        ],
        env=CLEAN_CLI_ENV,
    )
    assert by_option.exit_code == 0, by_option.output
    assert users_table in by_option.stdout
    written = stack.dynamodb.scan(TableName=users_table)["Items"]
    assert [item["pk"]["S"] for item in written] == ["USER#auth0|a"]
    assert _users_in(stack) == []  # the prefixed default table was not touched

    by_env = CliRunner().invoke(
        app,
        ["--endpoint-url", stack.endpoint, "orgs", "members", "org-x", "--json"],
        env={**CLEAN_CLI_ENV, "ORGSYNC_ORGANIZATIONS_TABLE": orgs_table},
    )
    assert by_env.exit_code == 0, by_env.output
    assert [member["user_id"] for member in json.loads(by_env.stdout)] == ["auth0|m"]


def test_exact_queue_names_replace_the_prefixed_ones(stack: Stack) -> None:
    suffix = uuid.uuid4().hex[:8]
    main, dead = f"Main-{suffix}.fifo", f"Dead-{suffix}.fifo"
    for name in (main, dead):
        stack.sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})
    result = CliRunner().invoke(
        app,
        [
            "--endpoint-url",
            stack.endpoint,
            "--name-prefix",
            stack.prefix,
            "--queue",
            main,
            "status",
            "--json",
        ],
        env={**CLEAN_CLI_ENV, "ORGSYNC_DEAD_LETTER_QUEUE": dead},
    )
    assert result.exit_code == 0, result.output
    shown = result.stdout
    assert main in shown
    assert dead in shown
    assert f"{stack.prefix}user-dynamo-stream.fifo" not in shown
