"""The DLQ has an end, on the whole local pipeline: a poison user item is dead-lettered, the user
is fixed by a new valid put, and the DLQ empties — by `orgsync dlq discard --stale`, or by
`orgsync dlq redrive`, whose redriven message the consumer acknowledges as stale.

Before, the only way out was `aws sqs purge-queue`: a redriven poison record went straight back
to the DLQ, and the DLQ alarm never cleared.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dynamodb_local import require_dynamodb_local
from typer.testing import CliRunner

from orgsync.cli import app
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
        parameters={"NamePrefix": f"s{uuid.uuid4().hex[:6]}-", "LogLevel": "ERROR"},
        pipe_poll_interval=0.05,
    )
    with EmbeddedStack(options) as running:
        yield running


def _orgsync(stack: EmbeddedStack, *args: str) -> Any:
    """The operator's command line against the running stack, as a user types it."""
    result = CliRunner().invoke(
        app,
        [
            "--endpoint-url",
            stack.endpoint_url,
            "--name-prefix",
            stack.options.parameters["NamePrefix"],
            *args,
        ],
        env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "COLUMNS": "80"},
    )
    assert result.exit_code == 0, result.output
    return result


def _put(stack: EmbeddedStack, user_id: str, organizations: dict[str, Any]) -> None:
    stack.client("dynamodb").put_item(
        TableName=stack.model.table("UsersTable").name,
        Item={
            "pk": {"S": f"USER#{user_id}"},
            "sk": {"S": "METADATA"},
            "email": {"S": "someone@example.org"},
            "status": {"S": "ACTIVE"},
            "organizations": organizations,
        },
    )


def _orgs_of(stack: EmbeddedStack, user_id: str, candidates: list[str]) -> set[str]:
    dynamodb = stack.client("dynamodb")
    table = stack.model.table("OrganizationsTable").name
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


def _dlq(stack: EmbeddedStack) -> list[dlq.DlqMessage]:
    return dlq.peek_messages(
        stack.client("sqs"), stack.resources.queue_urls["UserStreamDeadLetterQueue"]
    )


def _dlq_depth(stack: EmbeddedStack) -> int:
    return dlq.count_messages(
        stack.client("sqs"), stack.resources.queue_urls["UserStreamDeadLetterQueue"]
    )


def _poisoned_then_fixed(stack: EmbeddedStack) -> str:
    """A user whose poison change is in the DLQ, and whose later valid change is applied."""
    assert _dlq_depth(stack) == 0
    user_id = f"auth0|{uuid.uuid4().hex[:12]}"
    _put(stack, user_id, {"L": [{"S": "org-a"}]})
    stack.drain(timeout=30)
    _put(stack, user_id, {"N": "7"})  # poison: organizations must be a list or a set
    stack.drain(timeout=30)
    (dead,) = _dlq(stack)
    assert (dead.reason, dead.user_id) == ("invalid_organizations", user_id)

    _put(stack, user_id, {"L": [{"S": "org-b"}]})  # the fix: a new, valid put
    stack.drain(timeout=30)
    assert _orgs_of(stack, user_id, ["org-a", "org-b"]) == {"org-b"}
    assert _dlq_depth(stack) == 1  # fixing the user does not, by itself, empty the DLQ
    return user_id


def test_discard_stale_drops_the_poison_of_a_fixed_user_and_the_dlq_is_empty(
    stack: EmbeddedStack,
) -> None:
    user_id = _poisoned_then_fixed(stack)

    result = _orgsync(stack, "dlq", "discard", "--stale")

    assert "discarded 1 stale message(s)" in result.stdout
    assert user_id in result.stdout
    assert _dlq_depth(stack) == 0
    assert _orgs_of(stack, user_id, ["org-a", "org-b"]) == {"org-b"}
    assert "nothing needs an operator" in _orgsync(stack, "status").stdout


def test_a_redriven_poison_of_a_fixed_user_is_acknowledged_as_stale_and_the_dlq_is_empty(
    stack: EmbeddedStack,
) -> None:
    user_id = _poisoned_then_fixed(stack)
    organizations = stack.model.table("OrganizationsTable").name
    replication_key = {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "REPLICATION"}}
    dynamodb = stack.client("dynamodb")
    before = dynamodb.get_item(TableName=organizations, Key=replication_key, ConsistentRead=True)
    failed_before = stack.poller.stats().messages_failed

    result = _orgsync(stack, "dlq", "redrive")
    assert "moved 1 message(s)" in result.stdout
    assert "(copy)" in result.stdout
    stack.drain(timeout=30)

    assert _dlq_depth(stack) == 0  # not forwarded back: the consumer acknowledged it as stale
    assert stack.poller.stats().messages_failed == failed_before
    after = dynamodb.get_item(TableName=organizations, Key=replication_key, ConsistentRead=True)
    assert after["Item"] == before["Item"]
    assert _orgs_of(stack, user_id, ["org-a", "org-b"]) == {"org-b"}
    assert check_invariant(dynamodb, stack.model.table("UsersTable").name, organizations).holds
