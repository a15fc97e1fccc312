"""`orgsync dlq discard --stale` against a real moto server: exactly what the fence makes obsolete
leaves the DLQ; everything else stays, visible at once."""

from __future__ import annotations

import json
import uuid
from typing import Any

from integration_stack import CLEAN_CLI_ENV, AwsStack, UsersWriter, consume
from stream_records import body, stream_record
from typer.testing import CliRunner

from orgsync.cli import app


def _invoke(aws: AwsStack, *args: str, columns: int = 250) -> Any:
    prefix = aws.users_table.removesuffix("poc-users")
    return CliRunner().invoke(
        app,
        ["--endpoint-url", aws.endpoint_url, "--name-prefix", prefix, *args],
        env={**CLEAN_CLI_ENV, "COLUMNS": str(columns)},
    )


def _to_dlq(aws: AwsStack, message_body: str, group: str, reason: str | None = None) -> None:
    attributes = {}
    if reason is not None:  # forwarded by the consumer; else moved by SQS after 5 receives
        attributes = {"OrgsyncReason": {"DataType": "String", "StringValue": reason}}
    aws.sqs.send_message(
        QueueUrl=aws.dead_letter_queue_url,
        MessageBody=message_body,
        MessageGroupId=group,
        MessageDeduplicationId=uuid.uuid4().hex,
        MessageAttributes=attributes,
    )


def _poison(user_id: str, seq: int) -> str:
    image = {
        "pk": {"S": f"USER#{user_id}"},
        "sk": {"S": "METADATA"},
        "email": {"S": "someone@example.org"},
        "organizations": {"N": "7"},
    }
    return body(stream_record(user_id, seq, new_image=image))


def _left_in_dlq(aws: AwsStack) -> list[str]:
    """The bodies still in the DLQ, all visible now (a discard releases what it keeps)."""
    attributes = aws.sqs.get_queue_attributes(
        QueueUrl=aws.dead_letter_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    bodies: list[str] = []
    while batch := aws.sqs.receive_message(
        QueueUrl=aws.dead_letter_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30
    ).get("Messages", []):
        bodies.extend(message["Body"] for message in batch)
    return bodies


def test_discard_stale_deletes_exactly_the_messages_the_fence_makes_obsolete(
    aws: AwsStack,
) -> None:
    writer = UsersWriter(aws)
    fixed = writer.put("auth0|fixed", ["org-a"])
    consume(aws, fixed)
    applied = int(fixed["dynamodb"]["SequenceNumber"])
    _to_dlq(aws, _poison("auth0|fixed", applied - 7), "USER#auth0|fixed", "invalid_organizations")
    _to_dlq(aws, _poison("auth0|fixed", applied), "USER#auth0|fixed", "invalid_organizations")
    older_valid = body(stream_record("auth0|fixed", applied - 14, ["org-z"]))
    _to_dlq(aws, older_valid, "USER#auth0|fixed")  # valid, but SQS gave up on it long ago
    newer = _poison("auth0|fixed", applied + 7)  # newer than what is applied: still matters
    _to_dlq(aws, newer, "USER#auth0|fixed", "invalid_organizations")
    never_applied = _poison("auth0|new", 5)
    _to_dlq(aws, never_applied, "USER#auth0|new", "invalid_organizations")
    _to_dlq(aws, "{not json", "USER#auth0|x", "invalid_json")

    result = _invoke(aws, "dlq", "discard", "--stale", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["discarded_count"] == 3
    assert sorted((m["user_id"], m["seq"], m["reason"]) for m in report["discarded"]) == [
        ("auth0|fixed", applied - 14, "max_receives_exceeded"),
        ("auth0|fixed", applied - 7, "invalid_organizations"),
        ("auth0|fixed", applied, "invalid_organizations"),
    ]
    assert {m["applied_seq"] for m in report["discarded"]} == {applied}
    assert (report["kept"], report["unreadable"], report["not_examined"]) == (2, 1, 0)
    assert sorted(_left_in_dlq(aws)) == sorted([newer, never_applied, "{not json"])


def test_discard_stale_prints_what_it_dropped_as_a_table_that_fits_80_columns(
    aws: AwsStack,
) -> None:
    writer = UsersWriter(aws)
    user_id = "auth0|66199504eddfc16953adc92e"
    fixed = writer.put(user_id, ["org-a"])
    consume(aws, fixed)
    applied = int(fixed["dynamodb"]["SequenceNumber"])
    _to_dlq(aws, _poison(user_id, applied - 7), f"USER#{user_id}", "invalid_organizations")
    _to_dlq(aws, "{not json", "USER#auth0|x", "invalid_json")

    result = _invoke(aws, "dlq", "discard", "--stale", columns=80)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    (row,) = [line for line in lines if line.startswith("│")]  # the header row has ┃
    # Ids are cut at their end, sequence numbers at their start (they differ at the end).
    assert "auth0|66199504eddfc" in row
    assert str(applied - 7)[-8:] in row
    assert "invalid_organizations" in row
    assert "discarded 1 stale message(s)" in result.stdout
    assert "1 without a readable user id" in result.stdout
    assert _left_in_dlq(aws) == ["{not json"]


def test_discard_without_stale_refuses_and_deletes_nothing(aws: AwsStack) -> None:
    _to_dlq(aws, _poison("auth0|a", 1), "USER#auth0|a", "invalid_organizations")
    result = _invoke(aws, "dlq", "discard")
    assert result.exit_code == 2
    assert "--stale" in result.stderr
    assert len(_left_in_dlq(aws)) == 1
