"""`orgsync dlq list|redrive|discard|purge` against a real moto server over HTTP (moto has no
move task)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from integration_stack import CLEAN_CLI_ENV
from typer.testing import CliRunner

from orgsync.cli import app
from orgsync.ops import dlq


@dataclass(frozen=True)
class Queues:
    endpoint: str
    prefix: str
    sqs: Any
    main_url: str
    dlq_url: str

    def invoke(self, *args: str, columns: int = 250, input: str | None = None) -> Any:
        return CliRunner().invoke(
            app,
            ["--endpoint-url", self.endpoint, "--name-prefix", self.prefix, *args],
            env={**CLEAN_CLI_ENV, "COLUMNS": str(columns)},
            input=input,
        )

    def depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


def _make_queues(endpoint: str, *, main_max_message_size: int | None = None) -> Queues:
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    sqs = boto3.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    ).client("sqs", endpoint_url=endpoint)
    dlq_url = sqs.create_queue(
        QueueName=f"{prefix}user-dynamo-stream-deadletter.fifo",
        Attributes={"FifoQueue": "true"},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    attributes = {
        "FifoQueue": "true",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}),
    }
    if main_max_message_size is not None:
        attributes["MaximumMessageSize"] = str(main_max_message_size)
    main_url = sqs.create_queue(
        QueueName=f"{prefix}user-dynamo-stream.fifo", Attributes=attributes
    )["QueueUrl"]
    return Queues(endpoint, prefix, sqs, main_url, dlq_url)


@pytest.fixture
def queues(moto_endpoint: str) -> Queues:
    return _make_queues(moto_endpoint)


def _stream_record(user_id: str, seq: str, *, padding: str = "") -> str:
    return json.dumps(
        {
            "eventID": uuid.uuid4().hex,
            "eventName": "MODIFY",
            "eventSource": "aws:dynamodb",
            "dynamodb": {
                "Keys": {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "METADATA"}},
                "SequenceNumber": seq,
                "ApproximateCreationDateTime": 1_700_000_000,
                "NewImage": {"pk": {"S": f"USER#{user_id}"}, "note": {"S": padding}},
            },
        }
    )


def _send_forwarded(queues: Queues, user_id: str, seq: str, *, dedup: str) -> None:
    """What the consumer does with a record it can never process."""
    queues.sqs.send_message(
        QueueUrl=queues.dlq_url,
        MessageBody=_stream_record(user_id, seq),
        MessageGroupId=f"USER#{user_id}",
        MessageDeduplicationId=dedup,
        MessageAttributes={
            "OrgsyncReason": {"DataType": "String", "StringValue": "invalid_organizations"},
            "OrgsyncDetail": {"DataType": "String", "StringValue": "organizations is a number"},
            "OrgsyncSourceMessageId": {"DataType": "String", "StringValue": "src-1"},
        },
    )


def _send_plain(queues: Queues, user_id: str, seq: str, *, dedup: str, padding: str = "") -> None:
    """What SQS's own redrive leaves in the DLQ: the message, no orgsync attributes."""
    queues.sqs.send_message(
        QueueUrl=queues.dlq_url,
        MessageBody=_stream_record(user_id, seq, padding=padding),
        MessageGroupId=f"USER#{user_id}",
        MessageDeduplicationId=dedup,
    )


def _drain(queues: Queues, url: str) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    for _ in range(20):
        batch = queues.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            break
        received.extend(batch)
        for message in batch:
            queues.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return received


def test_dlq_list_shows_the_consumers_reason_and_max_receives_for_plain_messages(
    queues: Queues,
) -> None:
    _send_forwarded(queues, "auth0|bad", "100", dedup="evt-bad")
    _send_plain(queues, "auth0|slow", "200", dedup="evt-slow")

    result = queues.invoke("dlq", "list", "--json")
    assert result.exit_code == 0, result.output
    by_user = {m["user_id"]: m for m in json.loads(result.stdout)}
    assert by_user["auth0|bad"]["reason"] == "invalid_organizations"
    assert by_user["auth0|bad"]["detail"] == "organizations is a number"
    assert by_user["auth0|bad"]["source_message_id"] == "src-1"
    assert by_user["auth0|bad"]["event_name"] == "MODIFY"
    assert by_user["auth0|bad"]["sequence_number"] == "100"
    assert by_user["auth0|slow"]["reason"] == "max_receives_exceeded"
    assert by_user["auth0|slow"]["age_seconds"] >= 0

    table = queues.invoke("dlq", "list")
    assert table.exit_code == 0, table.output
    assert "invalid_organizations" in table.stdout
    assert "max_receives_exceeded" in table.stdout
    assert "2 message(s) shown" in table.stdout


def test_dlq_list_consumes_nothing_and_leaves_messages_visible(queues: Queues) -> None:
    for n in range(12):
        _send_plain(queues, f"auth0|u{n}", str(n + 1), dedup=f"evt-{n}")

    listed = queues.invoke("dlq", "list", "--limit", "5", "--json")
    assert listed.exit_code == 0, listed.output
    assert len(json.loads(listed.stdout)) == 5

    visible = queues.sqs.get_queue_attributes(
        QueueUrl=queues.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert visible == "12"
    assert len(_drain(queues, queues.dlq_url)) == 12


def test_dlq_redrive_moves_messages_back_keeping_group_and_changing_dedup_id(
    queues: Queues,
) -> None:
    _send_forwarded(queues, "auth0|bad", "100", dedup="evt-bad")
    for n in range(13):  # more than one SQS batch, two messages in one group
        _send_plain(queues, f"auth0|u{n % 12}", str(200 + n), dedup=f"evt-{n}")

    result = queues.invoke("dlq", "redrive")
    assert result.exit_code == 0, result.output
    assert "moved 14 message(s)" in result.stdout
    assert queues.depth(queues.dlq_url) == 0

    moved = _drain(queues, queues.main_url)
    assert len(moved) == 14
    for message in moved:
        body = json.loads(message["Body"])
        pk = body["dynamodb"]["Keys"]["pk"]["S"]
        attributes = message["Attributes"]
        assert attributes["MessageGroupId"] == pk
        assert attributes["MessageDeduplicationId"].startswith("evt-")
        assert "-redrive-" in attributes["MessageDeduplicationId"]
    forwarded = [m for m in moved if "OrgsyncReason" in m.get("MessageAttributes", {})]
    assert len(forwarded) == 1
    assert forwarded[0]["MessageAttributes"]["OrgsyncReason"]["StringValue"] == (
        "invalid_organizations"
    )
    # Within one group the order survives the move.
    u0 = [
        json.loads(m["Body"])["dynamodb"]["SequenceNumber"]
        for m in moved
        if m["Attributes"]["MessageGroupId"] == "USER#auth0|u0"
    ]
    assert u0 == ["200", "212"]


def test_a_redriven_message_is_not_swallowed_by_the_main_queues_dedup_window(
    queues: Queues,
) -> None:
    # The pipe sent this event to the main queue a moment ago, under its eventID, and it is
    # still there (moto deduplicates against queued messages; AWS for 5 minutes after sending).
    body = _stream_record("auth0|x", "300")
    queues.sqs.send_message(
        QueueUrl=queues.main_url,
        MessageBody=body,
        MessageGroupId="USER#auth0|x",
        MessageDeduplicationId="evt-x",
    )
    queues.sqs.send_message(
        QueueUrl=queues.dlq_url,
        MessageBody=body,
        MessageGroupId="USER#auth0|x",
        MessageDeduplicationId="evt-x",
    )

    result = queues.invoke("dlq", "redrive")
    assert result.exit_code == 0, result.output
    assert queues.depth(queues.main_url) == 2


def test_dlq_redrive_with_max_moves_only_that_many(queues: Queues) -> None:
    for n in range(5):
        _send_plain(queues, f"auth0|u{n}", str(n + 1), dedup=f"evt-{n}")

    result = queues.invoke("dlq", "redrive", "--max", "3")
    assert result.exit_code == 0, result.output
    assert "moved 3 message(s)" in result.stdout
    assert queues.depth(queues.main_url) == 3
    assert queues.depth(queues.dlq_url) == 2


def test_a_redrive_ends_even_when_every_moved_message_comes_straight_back(
    queues: Queues,
) -> None:
    """A live consumer forwards redriven poison straight back to the DLQ: the run moves what the
    DLQ held when it started, and leaves the returned copies for the next run."""
    for n in range(3):
        _send_plain(queues, f"auth0|u{n}", str(n + 1), dedup=f"evt-{n}")
    returned = iter(range(100))

    def poison_comes_back(count: int) -> None:
        for _ in range(count):
            n = next(returned)
            _send_plain(queues, f"auth0|p{n}", "1", dedup=f"back-{n}")

    result = dlq.redrive(
        queues.sqs,
        queues.dlq_url,
        queues.main_url,
        method=dlq.RedriveMethod.COPY,
        on_moved=poison_comes_back,
    )
    assert result.moved == 3
    assert queues.depth(queues.dlq_url) == 3


def test_a_redrive_whose_send_is_refused_deletes_nothing_from_the_dlq(moto_endpoint: str) -> None:
    # The main queue accepts at most 1 KiB: every copy is refused, honestly, by SQS itself.
    queues = _make_queues(moto_endpoint, main_max_message_size=1024)
    for n in range(3):
        _send_plain(queues, f"auth0|big{n}", str(n + 1), dedup=f"evt-{n}", padding="x" * 2000)

    result = queues.invoke("dlq", "redrive")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "nothing deleted" in lines[0]
    assert queues.depth(queues.main_url) == 0
    # Released at once, not left hidden for the hold period.
    visible = queues.sqs.get_queue_attributes(
        QueueUrl=queues.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert visible == "3"


def test_copying_to_a_queue_that_does_not_exist_deletes_nothing(queues: Queues) -> None:
    _send_plain(queues, "auth0|a", "1", dedup="evt-a")
    missing = queues.main_url.replace("user-dynamo-stream.fifo", "gone.fifo")

    with pytest.raises(dlq.RedriveError, match="after 0 moved"):
        dlq.copy_messages(queues.sqs, queues.dlq_url, missing)

    assert queues.depth(queues.dlq_url) == 1
    assert len(_drain(queues, queues.dlq_url)) == 1


def test_a_redrive_dedup_id_stays_within_sqs_limits() -> None:
    long_id = "e" * 128
    redriven = dlq.redrive_deduplication_id(long_id, "abc123")
    assert len(redriven) <= 128
    assert redriven.endswith("-redrive-abc123")
    assert dlq.redrive_deduplication_id("evt-1", "abc123") == "evt-1-redrive-abc123"


# -- redrive on an endpoint without StartMessageMoveTask -----------------------------------------


def test_auto_redrive_on_a_local_endpoint_copies_without_sending_a_move_task(
    queues: Queues,
) -> None:
    """moto answers StartMessageMoveTask with a traceback in the `local up` terminal: never ask."""
    sent: list[str] = []
    queues.sqs.meta.events.register("before-call.sqs", lambda model, **_: sent.append(model.name))
    _send_plain(queues, "auth0|a", "1", dedup="evt-a")

    for _ in range(2):
        result = dlq.redrive(queues.sqs, queues.dlq_url, queues.main_url)
        assert result.method is dlq.RedriveMethod.COPY
    assert "StartMessageMoveTask" not in sent
    assert queues.depth(queues.main_url) == 1

    cli = queues.invoke("dlq", "redrive")
    assert cli.exit_code == 0, cli.output
    assert "(copy)" in cli.stdout


# -- list at 80 columns -------------------------------------------------------------------------

_AWS_LENGTH_SEQ = "4421584500000000017450439091"


def _send_described(queues: Queues, user_id: str, seq: str, reason: str, detail: str) -> None:
    queues.sqs.send_message(
        QueueUrl=queues.dlq_url,
        MessageBody=_stream_record(user_id, seq),
        MessageGroupId=f"USER#{user_id}",
        MessageDeduplicationId=uuid.uuid4().hex,
        MessageAttributes={
            "OrgsyncReason": {"DataType": "String", "StringValue": reason},
            "OrgsyncDetail": {"DataType": "String", "StringValue": detail},
        },
    )


def _body_lines(output: str) -> list[str]:
    """The table's data rows: between the header rule (┡…┩) and the bottom edge (└…┘)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("┡"))
    end = next(i for i, line in enumerate(lines) if line.startswith("└"))
    return lines[start + 1 : end]


def test_dlq_list_at_80_columns_shows_each_message_on_one_line(queues: Queues) -> None:
    users = [f"auth0|66199504eddfc16953adc9{n:02d}" for n in range(3)]
    _send_described(
        queues,
        users[0],
        _AWS_LENGTH_SEQ,
        "invalid_organizations",
        "'organizations' holds non-strings or empty strings",
    )
    _send_described(
        queues,
        users[1],
        _AWS_LENGTH_SEQ[:-1] + "2",
        "key_too_long",
        "MEMBERSHIP#<user> is 1100 bytes, over DynamoDB's limit of 1024",
    )
    _send_plain(queues, users[2], _AWS_LENGTH_SEQ[:-1] + "3", dedup="evt-plain")

    result = queues.invoke("dlq", "list", columns=80)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    rows = _body_lines(result.stdout)
    assert len(rows) == 3
    assert [row.split("│")[1].strip() for row in rows] == [
        "invalid_organizations",
        "key_too_long",
        "max_receives_exceeded",
    ]
    # Cut values end (ids) or start (sequence numbers, which differ at the end) with an ellipsis.
    assert all("auth0|66199504" in row for row in rows)
    assert "…450439091" in rows[0]
    assert "message id" not in result.stdout

    wide = queues.invoke("dlq", "list", "--wide", columns=80)
    assert wide.exit_code == 0, wide.output
    assert "message id" in wide.stdout
    assert "…" not in wide.stdout


def test_dlq_list_shows_whole_values_when_the_terminal_is_wide_enough(queues: Queues) -> None:
    _send_described(
        queues,
        "auth0|66199504eddfc16953adc92e",
        _AWS_LENGTH_SEQ,
        "invalid_organizations",
        "'organizations' is a number",
    )
    result = queues.invoke("dlq", "list", columns=200)
    assert result.exit_code == 0, result.output
    (row,) = _body_lines(result.stdout)
    assert "auth0|66199504eddfc16953adc92e" in row
    assert _AWS_LENGTH_SEQ in row
    assert "'organizations' is a number" in row


# -- purge ----------------------------------------------------------------------------------------


def test_dlq_purge_asks_first_and_a_no_keeps_every_message(queues: Queues) -> None:
    for n in range(3):
        _send_plain(queues, f"auth0|u{n}", str(n + 1), dedup=f"evt-{n}")

    refused = queues.invoke("dlq", "purge", input="n\n")
    assert refused.exit_code == 1
    assert "Drop all 3 message(s)" in refused.stdout
    assert queues.depth(queues.dlq_url) == 3

    accepted = queues.invoke("dlq", "purge", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "3 message(s) were there" in accepted.stdout
    assert queues.depth(queues.dlq_url) == 0


def test_dlq_purge_with_yes_does_not_ask(queues: Queues) -> None:
    _send_plain(queues, "auth0|u", "1", dedup="evt-u")
    result = queues.invoke("dlq", "purge", "--yes")
    assert result.exit_code == 0, result.output
    assert "Drop all" not in result.stdout
    assert "1 message(s) were there" in result.stdout
    assert queues.depth(queues.dlq_url) == 0


def test_dlq_purge_of_an_empty_dlq_says_so_and_asks_nothing(queues: Queues) -> None:
    result = queues.invoke("dlq", "purge")
    assert result.exit_code == 0, result.output
    assert "empty: nothing to purge" in result.stdout
