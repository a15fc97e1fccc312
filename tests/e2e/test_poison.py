"""Poison end to end: dead-lettered at once with its reason, blocking nobody; stale redrive: no-op.

The queue keeps the template's 180 s visibility timeout here: a message that went the
five-receive way would take 15 minutes, so reaching the DLQ within one drain proves the consumer
forwarded it on its first receive.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dynamodb_local import require_dynamodb_local
from typer.testing import CliRunner

from orgsync.cli import app
from orgsync.local.pipes.record import to_pipe_record
from orgsync.local.pipes.target import encode_body
from orgsync.local.stack import EmbeddedStack, StackOptions
from orgsync.ops import dlq
from orgsync.store.scan import check_invariant

pytestmark = pytest.mark.e2e

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module", params=["moto", "dynamodb-local"])
def stack(request: pytest.FixtureRequest) -> Iterator[EmbeddedStack]:
    dynamodb_local_dir = require_dynamodb_local() if request.param == "dynamodb-local" else None
    options = StackOptions(
        template_path=TEMPLATE,
        port=0,
        store=request.param,
        dynamodb_local_dir=dynamodb_local_dir,
        parameters={"NamePrefix": f"z{uuid.uuid4().hex[:6]}-", "LogLevel": "ERROR"},
        pipe_poll_interval=0.05,
    )
    with EmbeddedStack(options) as running:
        yield running


def _names(stack: EmbeddedStack) -> tuple[str, str, str, str]:
    urls = stack.resources.queue_urls
    return (
        stack.model.table("UsersTable").name,
        stack.model.table("OrganizationsTable").name,
        urls["UserStreamQueue"],
        urls["UserStreamDeadLetterQueue"],
    )


def _put(dynamodb: Any, table: str, user_id: str, organizations: dict[str, Any]) -> None:
    dynamodb.put_item(
        TableName=table,
        Item={
            "pk": {"S": f"USER#{user_id}"},
            "sk": {"S": "METADATA"},
            "email": {"S": "someone@example.org"},
            "status": {"S": "ACTIVE"},
            "organizations": organizations,
        },
    )


def _orgs_of(dynamodb: Any, table: str, user_id: str, candidates: list[str]) -> set[str]:
    return {
        org
        for org in candidates
        if "Item"
        in dynamodb.get_item(
            TableName=table,
            Key={"pk": {"S": f"ORGANIZATION#{org}"}, "sk": {"S": f"MEMBERSHIP#{user_id}"}},
            ConsistentRead=True,
        )
    }


def _empty(sqs: Any, queue_url: str) -> None:
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_a_bad_user_item_reaches_the_dlq_at_once_with_its_reason_and_blocks_nobody(
    stack: EmbeddedStack,
) -> None:
    users, orgs, main_url, dlq_url = _names(stack)
    dynamodb, sqs = stack.client("dynamodb"), stack.client("sqs")
    user_id, other = f"auth0|{uuid.uuid4().hex[:12]}", f"auth0|{uuid.uuid4().hex[:12]}"
    _put(dynamodb, users, user_id, {"L": [{"S": "org-a"}]})
    stack.drain(timeout=30)

    _put(dynamodb, users, user_id, {"N": "7"})  # organizations must be a list or a set
    sqs.send_message(  # poison straight into the other user's message group, ahead of its change
        QueueUrl=main_url,
        MessageBody="{not json",
        MessageGroupId=f"USER#{other}",
        MessageDeduplicationId=uuid.uuid4().hex,
    )
    _put(dynamodb, users, other, {"L": [{"S": "org-c"}]})
    _put(dynamodb, users, user_id, {"L": [{"S": "org-b"}]})  # the same user's next change
    stack.drain(timeout=30)

    assert _orgs_of(dynamodb, orgs, user_id, ["org-a", "org-b"]) == {"org-b"}
    assert _orgs_of(dynamodb, orgs, other, ["org-c"]) == {"org-c"}
    dead = {message.reason: message for message in dlq.peek_messages(sqs, dlq_url)}
    assert set(dead) == {"invalid_organizations", "invalid_json"}
    assert dead["invalid_organizations"].user_id == user_id
    assert dead["invalid_organizations"].group_id == f"USER#{user_id}"
    assert dead["invalid_json"].group_id == f"USER#{other}"
    assert all(message.source_message_id for message in dead.values())
    assert check_invariant(dynamodb, users, orgs).holds


def test_redriving_a_stale_message_changes_nothing(stack: EmbeddedStack) -> None:
    users, orgs, _, dlq_url = _names(stack)
    dynamodb, sqs = stack.client("dynamodb"), stack.client("sqs")
    _empty(sqs, dlq_url)
    user_id = f"auth0|{uuid.uuid4().hex[:12]}"
    _put(dynamodb, users, user_id, {"L": [{"S": "org-old"}]})
    _put(dynamodb, users, user_id, {"L": [{"S": "org-new"}]})
    stack.drain(timeout=30)
    replication_key = {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "REPLICATION"}}
    before = dynamodb.get_item(TableName=orgs, Key=replication_key, ConsistentRead=True)["Item"]

    # The first change, as the pipe sent it, lands in the DLQ long after the second was applied.
    first = _first_stream_record(stack, f"USER#{user_id}")
    sqs.send_message(
        QueueUrl=dlq_url,
        MessageBody=encode_body(first),
        MessageGroupId=f"USER#{user_id}",
        MessageDeduplicationId=first["eventID"],
    )
    result = CliRunner().invoke(
        app,
        [
            "--endpoint-url",
            stack.endpoint_url,
            "--name-prefix",
            stack.options.parameters["NamePrefix"],
            "dlq",
            "redrive",
        ],
        env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "moved 1 message" in result.output
    stack.drain(timeout=30)

    after = dynamodb.get_item(TableName=orgs, Key=replication_key, ConsistentRead=True)["Item"]
    assert after == before
    assert _orgs_of(dynamodb, orgs, user_id, ["org-old", "org-new"]) == {"org-new"}
    assert dlq.peek_messages(sqs, dlq_url) == []


def _first_stream_record(stack: EmbeddedStack, pk: str) -> Any:
    streams = stack.client("dynamodbstreams")
    stream_arn = stack.resources.stream_arns["UsersTable"]
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for raw in streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]:
            if raw["dynamodb"]["Keys"]["pk"]["S"] == pk:
                record = to_pipe_record(raw, stream_arn=stream_arn, region="us-east-1")
                return json.loads(encode_body(record))
    raise AssertionError(f"no stream record of {pk}")
