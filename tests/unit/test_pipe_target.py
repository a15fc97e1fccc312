"""SqsTarget and the wire record: SendMessageBatch entries, JSON-path target parameters."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orgsync.local.pipes.delivery import refused_for_size
from orgsync.local.pipes.errors import PipeSettingsError, TargetParameterError
from orgsync.local.pipes.record import to_pipe_record
from orgsync.local.pipes.settings import PipeSettings
from orgsync.local.pipes.target import SqsTarget, TargetParameter

STREAM_ARN = (
    "arn:aws:dynamodb:eu-west-1:123456789012:table/poc-users/stream/2024-01-01T00:00:00.000"
)


def record(pk: str = "USER#auth0|66199504eddfc16953adc92e") -> dict[str, Any]:
    return {
        "eventID": "7de3041dd709b024af6f29e4fa13d34c",
        "eventName": "MODIFY",
        "dynamodb": {"Keys": {"pk": {"S": pk}, "sk": {"S": "METADATA"}}, "SequenceNumber": "42"},
    }


def test_a_dollar_dot_value_is_a_path_resolved_per_record():
    group = TargetParameter.parse("$.dynamodb.Keys.pk.S")
    assert group.resolve(record("USER#1")) == "USER#1"
    assert group.resolve(record("USER#2")) == "USER#2"
    assert (
        TargetParameter.parse("$.eventID").resolve(record()) == "7de3041dd709b024af6f29e4fa13d34c"
    )


def test_any_other_value_is_a_literal():
    assert TargetParameter.parse("all-users").resolve(record()) == "all-users"
    assert TargetParameter.parse("$notapath").resolve(record()) == "$notapath"


def test_a_path_to_nothing_fails_the_record():
    with pytest.raises(TargetParameterError, match="resolves to nothing"):
        TargetParameter.parse("$.dynamodb.Keys.missing.S").resolve(record())
    with pytest.raises(TargetParameterError, match="resolves to nothing"):
        TargetParameter.parse("$.eventID.deeper").resolve(record())


def test_a_path_to_an_object_or_an_overlong_value_fails_the_record():
    with pytest.raises(TargetParameterError, match="non-scalar"):
        TargetParameter.parse("$.dynamodb.Keys.pk").resolve(record())
    with pytest.raises(TargetParameterError, match="128"):
        TargetParameter.parse("$.dynamodb.Keys.pk.S").resolve(record("USER#" + "x" * 200))


@pytest.mark.parametrize(
    ("pk", "named"),
    [
        ("USER#jane doe@example.com", "a space (U+0020) at character 10"),
        ("USER#jos\u00e9@example.com", "a non-ASCII character (U+00E9) at character 9"),
        ("USER#tab\there", "a control character (U+0009) at character 9"),
        ("USER#\u7528\u6237", "a non-ASCII character (U+7528) at character 6"),
    ],
    ids=["space", "accent", "control", "cjk"],
)
def test_a_group_id_with_a_character_sqs_refuses_fails_the_record_naming_only_its_code_point(
    pk: str, named: str
):
    with pytest.raises(TargetParameterError) as refused:
        SqsTarget.from_settings("$.dynamodb.Keys.pk.S", None).build_entry("0", record(pk))
    assert str(refused.value) == (
        f"MessageGroupId: path $.dynamodb.Keys.pk.S resolves to a value that holds {named}; "
        "SQS allows only ASCII letters, digits and punctuation"
    )
    assert pk[len("USER#") :] not in str(refused.value)


def test_every_ascii_letter_digit_and_punctuation_mark_and_128_characters_are_accepted():
    allowed = string.ascii_letters + string.digits + string.punctuation
    group = TargetParameter.parse("$.dynamodb.Keys.pk.S")
    assert group.resolve(record(allowed)) == allowed
    assert group.resolve(record("x" * 128)) == "x" * 128
    with pytest.raises(TargetParameterError, match="has 129 characters; SQS allows 128"):
        group.resolve(record("x" * 129))


def test_a_literal_sqs_would_refuse_fails_each_record_as_on_aws():
    # CreatePipe accepts it; the records then fail at the target stage, one by one.
    for literal, problem in (("all users", "a space"), ("y" * 129, "129 characters")):
        target = SqsTarget.from_settings(None, literal)
        with pytest.raises(
            TargetParameterError, match=f"MessageDeduplicationId: the literal .*{problem}"
        ):
            target.build_entry("0", record())


def client_error(code: str, message: str, query_code: str | None = None) -> ClientError:
    error = {"Code": code, "Message": message}
    if query_code:
        error["QueryErrorCode"] = query_code
    return ClientError({"Error": error}, "SendMessageBatch")


def test_size_refusals_are_told_from_other_sqs_errors():
    too_long = "Batch requests cannot be longer than 1048576 bytes. You have sent 1200000 bytes."
    assert refused_for_size(
        client_error("AWS.SimpleQueueService.BatchRequestTooLong", too_long, "BatchRequestTooLong")
    )
    assert refused_for_size(client_error("BatchRequestTooLong", too_long))
    assert refused_for_size(
        client_error(
            "InvalidParameterValue",
            "One or more parameters are invalid. Reason: Message must be shorter than 1024 bytes.",
        )
    )
    assert not refused_for_size(client_error("InvalidParameterValue", "DelaySeconds is invalid"))
    assert not refused_for_size(client_error("AWS.SimpleQueueService.NonExistentQueue", "gone"))
    assert not refused_for_size(client_error("RequestThrottled", "slow down"))


def test_a_path_with_an_empty_key_is_refused():
    with pytest.raises(TargetParameterError):
        TargetParameter.parse("$.dynamodb..pk")


def test_an_entry_carries_the_compact_record_body_group_and_dedup_ids():
    target = SqsTarget.from_settings("$.dynamodb.Keys.pk.S", "$.eventID")
    entry = target.build_entry("3", record())
    assert entry == {
        "Id": "3",
        "MessageBody": json.dumps(record(), separators=(",", ":")),
        "MessageGroupId": "USER#auth0|66199504eddfc16953adc92e",
        "MessageDeduplicationId": "7de3041dd709b024af6f29e4fa13d34c",
    }


def test_an_entry_without_target_parameters_has_only_id_and_body():
    entry = SqsTarget.from_settings(None, None).build_entry("0", record())
    assert set(entry) == {"Id", "MessageBody"}


def test_the_wire_record_has_lambda_keys_epoch_seconds_and_base64_binaries():
    raw = {
        "eventID": "e1",
        "eventName": "REMOVE",
        "eventVersion": "1.0",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
            "Keys": {"pk": {"S": "USER#1"}, "sk": {"S": "METADATA"}},
            "OldImage": {"blob": {"B": b"\x00\x01"}, "m": {"M": {"bs": {"BS": [b"\xff"]}}}},
            "SequenceNumber": "1100000000017454423009",
            "SizeBytes": 40,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "userIdentity": {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"},
    }
    wire = to_pipe_record(raw, stream_arn=STREAM_ARN, region="eu-west-1")
    assert wire["eventVersion"] == "1.1"
    assert wire["eventSourceARN"] == STREAM_ARN
    assert wire["dynamodb"]["ApproximateCreationDateTime"] == 1714564800
    assert wire["dynamodb"]["OldImage"] == {
        "blob": {"B": "AAE="},
        "m": {"M": {"bs": {"BS": ["/w=="]}}},
    }
    assert wire["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    json.dumps(wire)


def test_settings_refuse_what_createpipe_refuses():
    base = {"name": "p", "stream_arn": STREAM_ARN, "target_queue_url": "http://q"}
    with pytest.raises(PipeSettingsError, match="batch_size"):
        PipeSettings(**base, batch_size=11)
    with pytest.raises(PipeSettingsError, match="starting_position"):
        PipeSettings(**base, starting_position="AT_TIMESTAMP")
    assert PipeSettings(**base).region == "eu-west-1"
