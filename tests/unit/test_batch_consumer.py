"""BatchConsumer against fakes of its two ports: one test per outcome a message can have.

The outcomes are those of docs/bad-input.md; here each is reached without any AWS emulator, and
judged by what the fakes hold and by the partial batch response Lambda would read.
"""

from __future__ import annotations

import json
import logging

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from fakes import FakeDeadLetterSink, FakeReplicationStore
from stream_records import body, sqs_event, sqs_message, stream_record

from orgsync.consumer.batch import BatchConsumer, Outcome
from orgsync.domain.model import ReplicationState
from orgsync.store.errors import StoreUnavailableError


@pytest.fixture
def store() -> FakeReplicationStore:
    return FakeReplicationStore()


@pytest.fixture
def sink() -> FakeDeadLetterSink:
    return FakeDeadLetterSink()


@pytest.fixture
def consumer(store: FakeReplicationStore, sink: FakeDeadLetterSink) -> BatchConsumer:
    return BatchConsumer(store, sink, clock=lambda: 1764000000.5)


def failed_ids(response: dict) -> list[str]:
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def outcomes(report) -> dict[str, Outcome]:
    return {message_id: result.outcome for message_id, result in report.outcomes.items()}


def test_a_new_users_change_is_applied_and_its_lag_measured(consumer, store):
    event = sqs_event(stream_record("u1", 10, ["acme", "globex"]))
    response, report = consumer.handle(event, None)
    assert failed_ids(response) == []
    assert list(outcomes(report).values()) == [Outcome.APPLIED]
    assert store.orgs_of("u1") == {"acme", "globex"}
    assert store.records["u1"].seq == 10
    assert report.counters["UserChangesApplied"] == 1
    assert report.counters["MembershipsPut"] == 2
    assert report.lags_ms == [500.0]


def test_a_change_not_newer_than_what_is_applied_is_stale_and_writes_nothing(consumer, store):
    store.records["u1"] = ReplicationState(seq=20, revision=3, orgs=frozenset({"acme"}))
    response, report = consumer.handle(sqs_event(stream_record("u1", 20, ["globex"])), None)
    assert failed_ids(response) == []
    assert list(outcomes(report).values()) == [Outcome.STALE]
    assert store.commits == 0
    assert store.records["u1"].revision == 3
    assert report.counters["StaleEventsSkipped"] == 1


def test_older_changes_of_a_user_in_the_same_batch_are_superseded_by_the_newest(consumer, store):
    older, newer = stream_record("u1", 5, ["acme"]), stream_record("u1", 6, ["globex"])
    event = sqs_event(older, newer)
    response, report = consumer.handle(event, None)
    first, second = (record["messageId"] for record in event["Records"])
    assert failed_ids(response) == []
    assert outcomes(report) == {first: Outcome.SUPERSEDED, second: Outcome.APPLIED}
    assert store.orgs_of("u1") == {"globex"}
    assert store.commits == 1
    assert report.counters["SupersededEvents"] == 1


def test_an_item_that_is_not_a_user_is_ignored_with_its_reason_counted(consumer, store):
    event = sqs_event(stream_record("x", 7, pk="ORGANIZATION#acme"))
    response, report = consumer.handle(event, None)
    assert failed_ids(response) == []
    assert list(outcomes(report).values()) == [Outcome.IGNORED]
    assert store.reads == 0
    assert report.counters["Ignored.not_a_user"] == 1


def test_a_record_that_can_never_succeed_is_dead_lettered_with_its_reason_and_group(
    consumer, store, sink
):
    poison = sqs_message("{not json", group_id="USER#u1", message_id="m-poison")
    good = sqs_message(body(stream_record("u2", 3, ["acme"])), group_id="USER#u2")
    response, report = consumer.handle({"Records": [poison, good]}, None)
    assert failed_ids(response) == []
    assert outcomes(report)["m-poison"] is Outcome.DEAD_LETTERED
    (forwarded,) = sink.forwarded
    assert (forwarded.message_id, forwarded.group_id, forwarded.reason) == (
        "m-poison",
        "USER#u1",
        "invalid_json",
    )
    assert forwarded.body == "{not json"
    assert store.orgs_of("u2") == {"acme"}
    assert report.counters["PermanentFailures"] == 1


def test_a_failed_commit_fails_its_message_and_the_rest_of_its_group_only(consumer, store):
    store.failures_to_inject.add("u1")
    # u1's newest change comes first; its older one after it would be superseded (a success),
    # but FIFO order means nothing after a failure in a group may be acknowledged.
    event = sqs_event(
        stream_record("u1", 9, ["acme"]),
        stream_record("u1", 5, ["globex"]),
        stream_record("u2", 5, ["acme"]),
    )
    response, report = consumer.handle(event, None)
    u1_newest, u1_older, u2 = (record["messageId"] for record in event["Records"])
    assert failed_ids(response) == [u1_newest, u1_older]
    assert outcomes(report)[u1_newest] is Outcome.FAILED
    assert outcomes(report)[u2] is Outcome.APPLIED
    assert store.orgs_of("u1") == set()
    assert store.orgs_of("u2") == {"acme"}
    assert report.counters["TransientFailures"] == 1


def test_a_poison_record_whose_dead_letter_forward_fails_is_left_for_a_retry(consumer, sink):
    sink.refuse.add("m-poison")
    poison = sqs_message(json.dumps({"dynamodb": {}}), group_id="USER#u1", message_id="m-poison")
    good = sqs_message(body(stream_record("u2", 3, ["acme"])), group_id="USER#u2")
    response, report = consumer.handle({"Records": [poison, good]}, None)
    assert failed_ids(response) == ["m-poison"]
    result = report.outcomes["m-poison"]
    assert result.outcome is Outcome.FAILED
    assert "DLQ forward failed" in (result.reason or "")
    assert sink.forwarded == []


def test_a_store_that_cannot_be_read_fails_the_whole_batch_for_lambda_to_retry(consumer, store):
    store.read_error = StoreUnavailableError("throttled past our retries")
    event = sqs_event(stream_record("u1", 5, ["acme"]), stream_record("u2", 5, ["acme"]))
    # Every record failed: Powertools raises, and Lambda retries the whole batch.
    with pytest.raises(BatchProcessingError):
        consumer.handle(event, None)
    assert store.memberships == {}


def poison_record(user_id: str, seq: int, problem: str = "invalid_organizations") -> dict:
    """A record of `user_id` whose content fails validation but whose keys and seq are fine."""
    if problem == "unknown_event_name":
        return stream_record(user_id, seq, ["acme"], event_name="DELETE")
    if problem == "missing_new_image":
        record = stream_record(user_id, seq, ["acme"])
        del record["dynamodb"]["NewImage"]
        return record
    image = {
        "pk": {"S": f"USER#{user_id}"},
        "sk": {"S": "METADATA"},
        "email": {"S": "poison.person@example.org"},
        "organizations": {"N": "7"},
    }
    return stream_record(user_id, seq, new_image=image)


@pytest.mark.parametrize(
    "problem", ["invalid_organizations", "unknown_event_name", "missing_new_image"]
)
def test_a_rejected_record_not_newer_than_the_applied_change_is_stale_not_dead_lettered(
    consumer, store, sink, problem
):
    """A redriven poison record whose user was fixed since: acknowledged, never back to the DLQ."""
    store.records["u1"] = ReplicationState(seq=20, revision=3, orgs=frozenset({"acme"}))
    for seq in (20, 10):
        response, report = consumer.handle(sqs_event(poison_record("u1", seq, problem)), None)
        assert failed_ids(response) == []
        (result,) = report.outcomes.values()
        assert (result.outcome, result.user_id, result.seq) == (Outcome.STALE, "u1", seq)
        assert result.reason is not None
        assert result.reason.startswith(problem)
        assert report.counters["StaleEventsSkipped"] == 1
        assert report.counters[f"StaleRejected.{problem}"] == 1
        assert report.counters["PermanentFailures"] == 0
    assert sink.forwarded == []
    assert store.commits == 0
    assert store.records["u1"].revision == 3


def test_a_rejected_record_newer_than_the_applied_change_is_still_dead_lettered(
    consumer, store, sink
):
    store.records["u1"] = ReplicationState(seq=20, revision=3, orgs=frozenset({"acme"}))
    response, report = consumer.handle(sqs_event(poison_record("u1", 21)), None)
    assert failed_ids(response) == []
    assert list(outcomes(report).values()) == [Outcome.DEAD_LETTERED]
    assert [rejection.reason for rejection in sink.forwarded] == ["invalid_organizations"]
    assert report.counters["StaleEventsSkipped"] == 0


def test_a_rejected_record_of_a_user_never_applied_is_dead_lettered(consumer, store, sink):
    _response, report = consumer.handle(sqs_event(poison_record("u1", 5)), None)
    assert list(outcomes(report).values()) == [Outcome.DEAD_LETTERED]
    assert len(sink.forwarded) == 1
    assert store.reads == 1


def test_a_rejected_record_older_than_a_claimed_change_is_stale(consumer, store, sink):
    store.records["u1"] = ReplicationState(
        seq=5, revision=2, orgs=frozenset(), pending_seq=30, dirty=frozenset({"acme"})
    )
    _response, report = consumer.handle(sqs_event(poison_record("u1", 12)), None)
    assert list(outcomes(report).values()) == [Outcome.STALE]
    assert sink.forwarded == []


def test_the_fence_of_rejected_records_is_read_with_the_batchs_changes_in_one_read(
    consumer, store, sink
):
    store.records["u1"] = ReplicationState(seq=20, revision=3, orgs=frozenset({"acme"}))
    event = sqs_event(
        poison_record("u1", 10), stream_record("u2", 3, ["acme"]), poison_record("u3", 4)
    )
    stale, applied, dead = (record["messageId"] for record in event["Records"])
    response, report = consumer.handle(event, None)
    assert failed_ids(response) == []
    assert outcomes(report) == {
        stale: Outcome.STALE,
        applied: Outcome.APPLIED,
        dead: Outcome.DEAD_LETTERED,
    }
    assert store.reads == 1
    assert [rejection.message_id for rejection in sink.forwarded] == [dead]


def test_records_without_a_readable_user_and_sequence_number_skip_the_fence(consumer, store, sink):
    no_seq = poison_record("u1", 10)
    del no_seq["dynamodb"]["SequenceNumber"]
    event = {
        "Records": [
            sqs_message("{not json", group_id="USER#u1"),
            sqs_message(body(no_seq), group_id="USER#u1"),
        ]
    }
    _response, report = consumer.handle(event, None)
    assert set(outcomes(report).values()) == {Outcome.DEAD_LETTERED}
    assert len(sink.forwarded) == 2
    assert store.reads == 0


def test_when_the_fence_cannot_be_read_a_rejected_record_is_dead_lettered(consumer, store, sink):
    store.read_error = StoreUnavailableError("throttled past our retries")
    store.records["u1"] = ReplicationState(seq=20, revision=3, orgs=frozenset({"acme"}))
    response, report = consumer.handle(sqs_event(poison_record("u1", 10)), None)
    assert failed_ids(response) == []
    assert list(outcomes(report).values()) == [Outcome.DEAD_LETTERED]
    assert len(sink.forwarded) == 1


def test_a_stale_rejected_record_is_logged_by_ids_without_its_content(consumer, store, caplog):
    store.records["u1"] = ReplicationState(seq=20, revision=3, orgs=frozenset({"acme"}))
    with caplog.at_level(logging.INFO, logger="orgsync.consumer.batch"):
        consumer.handle(sqs_event(poison_record("u1", 10)), None)
    (line,) = caplog.records
    assert (line.outcome, line.user_id, line.sequence_number) == ("stale", "u1", 10)
    assert "@" not in repr(vars(line))
