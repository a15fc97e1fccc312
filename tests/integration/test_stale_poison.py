"""The consumer judges a record that fails validation by the fence before dead-lettering it, on
a real moto server: a redriven poison record whose user was fixed since is acknowledged."""

from __future__ import annotations

from integration_stack import AwsStack, UsersWriter, consume
from stream_records import stream_record

from orgsync.consumer.batch import Outcome
from orgsync.ops import dlq


def _poison(user_id: str, seq: int) -> dict:
    image = {
        "pk": {"S": f"USER#{user_id}"},
        "sk": {"S": "METADATA"},
        "email": {"S": "someone@example.org"},
        "organizations": {"N": "7"},
    }
    return stream_record(user_id, seq, new_image=image)


def test_a_poison_record_older_than_the_applied_change_is_stale_in_the_batchs_one_read(
    aws: AwsStack,
) -> None:
    writer = UsersWriter(aws)
    fixed = writer.put("auth0|fixed", ["org-a"])
    consume(aws, fixed)
    applied = int(fixed["dynamodb"]["SequenceNumber"])
    other = writer.put("auth0|other", ["org-b"])

    aws.count_requests()
    report = consume(aws, _poison("auth0|fixed", applied - 7), other)

    assert sorted(result.outcome for result in report.outcomes.values()) == [
        Outcome.APPLIED,
        Outcome.STALE,
    ]
    assert report.counters["StaleRejected.invalid_organizations"] == 1
    assert aws.requests["BatchGetItem"] == 1
    assert dlq.peek_messages(aws.sqs, aws.dead_letter_queue_url) == []


def test_a_poison_record_newer_than_the_applied_change_still_goes_to_the_dlq(
    aws: AwsStack,
) -> None:
    writer = UsersWriter(aws)
    fixed = writer.put("auth0|fixed", ["org-a"])
    consume(aws, fixed)
    applied = int(fixed["dynamodb"]["SequenceNumber"])

    report = consume(aws, _poison("auth0|fixed", applied + 7))

    assert [result.outcome for result in report.outcomes.values()] == [Outcome.DEAD_LETTERED]
    (dead,) = dlq.peek_messages(aws.sqs, aws.dead_letter_queue_url)
    assert (dead.reason, dead.user_id) == ("invalid_organizations", "auth0|fixed")
