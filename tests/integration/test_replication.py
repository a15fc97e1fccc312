"""The consumer and the DynamoDB adapter against a real moto server: the invariant, not calls."""

from __future__ import annotations

import random

import pytest
from integration_stack import UsersWriter, assert_invariant, consume, consumer_for, org_table
from stream_records import body, sqs_event, sqs_message, stream_record

from orgsync.consumer import handler
from orgsync.consumer.batch import Outcome
from orgsync.domain.apply import ApplyStatus, apply_changes
from orgsync.domain.rule import decide
from orgsync.schema.organizations import decode_membership
from orgsync.schema.stream import decode_record
from orgsync.store.replication import DynamoReplicationStore
from orgsync.store.scan import organizations_snapshot


def test_a_user_joins_moves_and_leaves(aws):
    users = UsersWriter(aws)
    consume(aws, users.put("auth0|66199504eddfc16953adc92e", ["org-acme", "org-globex"]))
    assert_invariant(aws)
    consume(aws, users.put("auth0|66199504eddfc16953adc92e", ["org-initech"]))
    assert_invariant(aws)
    consume(aws, users.delete("auth0|66199504eddfc16953adc92e"))
    assert_invariant(aws)
    snapshot = organizations_snapshot(org_table(aws))
    assert snapshot.memberships == []
    assert snapshot.replication["auth0|66199504eddfc16953adc92e"].deleted


def test_a_user_in_250_orgs_replicates_fans_out_a_status_change_and_shrinks_to_3(aws):
    users = UsersWriter(aws)
    orgs = [f"org-{i:03}" for i in range(250)]
    report = consume(aws, users.put("big", orgs))
    assert report.counters["MembershipsPut"] == 250
    assert_invariant(aws)
    report = consume(aws, users.put("big", orgs, status="SUSPENDED"))
    assert report.counters["MembershipsPut"] == 250
    assert_invariant(aws)
    report = consume(aws, users.put("big", orgs[:3], status="SUSPENDED"))
    assert (report.counters["MembershipsPut"], report.counters["MembershipsDeleted"]) == (0, 247)
    assert_invariant(aws)
    replication = organizations_snapshot(org_table(aws)).replication["big"]
    assert replication.pending_seq is None
    assert replication.dirty == frozenset()


def test_replaying_any_older_record_or_any_record_twice_changes_nothing(aws):
    users = UsersWriter(aws)
    history = [
        users.put("u1", ["a"]),
        users.put("u1", ["a", "b"]),
        users.put("u2", ["b"]),
        users.put("u1", ["c"], status="SUSPENDED"),
        users.delete("u2"),
        users.put("u1", [f"x{i}" for i in range(120)]),
        users.put("u1", ["c", "d"]),
    ]
    for record in history:
        consume(aws, record)
    assert_invariant(aws)
    settled = org_table(aws)
    shuffled = history * 2
    random.Random(7).shuffle(shuffled)
    for record in shuffled:
        report = consume(aws, record)
        assert report.counters["UserChangesApplied"] == 0
    assert org_table(aws) == settled


def test_one_batch_of_ten_distinct_users_costs_one_read_and_one_transaction(aws):
    users = UsersWriter(aws)
    records = [users.put(f"user-{i}", ["a", "b"]) for i in range(10)]
    aws.count_requests()
    report = consume(aws, *records)
    assert report.counters["UserChangesApplied"] == 10
    assert dict(aws.requests) == {"BatchGetItem": 1, "TransactWriteItems": 1}
    assert_invariant(aws)


def test_one_applied_user_change_costs_two_requests(aws):
    users = UsersWriter(aws)
    record = users.put("solo", ["a", "b", "c"])
    aws.count_requests()
    consume(aws, record)
    assert dict(aws.requests) == {"BatchGetItem": 1, "TransactWriteItems": 1}


def test_a_burst_of_updates_of_one_user_in_one_batch_costs_one_apply(aws):
    users = UsersWriter(aws)
    burst = [users.put("busy", [f"o{i}"], status=f"S{i}") for i in range(10)]
    aws.count_requests()
    report = consume(aws, *burst)
    assert report.counters["UserChangesApplied"] == 1
    assert report.counters["SupersededEvents"] == 9
    assert dict(aws.requests) == {"BatchGetItem": 1, "TransactWriteItems": 1}
    assert_invariant(aws)


def test_a_poison_message_goes_to_the_dlq_with_its_reason_and_does_not_block_its_group(aws):
    users = UsersWriter(aws)
    poison = sqs_message("{truncated", group_id="USER#u1")
    event = sqs_event(users.put("u1", ["a"]), users.put("u2", ["b"]))
    event["Records"].insert(0, poison)
    response, report = consumer_for(aws).handle(event, None)
    assert response == {"batchItemFailures": []}
    assert report.outcomes[poison["messageId"]].outcome is Outcome.DEAD_LETTERED
    assert_invariant(aws)
    dead = aws.sqs.receive_message(
        QueueUrl=aws.dead_letter_queue_url, MessageAttributeNames=["All"], AttributeNames=["All"]
    )["Messages"]
    assert [m["Body"] for m in dead] == ["{truncated"]
    assert dead[0]["MessageAttributes"]["OrgsyncReason"]["StringValue"] == "invalid_json"
    assert dead[0]["Attributes"]["MessageGroupId"] == "USER#u1"


@pytest.mark.parametrize(
    ("payload", "outcome"),
    [
        ("not json", Outcome.DEAD_LETTERED),
        ('{"hello": "world"}', Outcome.DEAD_LETTERED),
        (body(stream_record("u", 5, ["a"], event_name="DELETE")), Outcome.DEAD_LETTERED),
        (body(stream_record("u", 5, ["a"], pk="ORGANIZATION#o")), Outcome.IGNORED),
        (body(stream_record("u", 5, ["a"], sk="PROFILE")), Outcome.IGNORED),
    ],
)
def test_bad_input_gets_its_defined_outcome_through_the_consumer(aws, payload, outcome):
    event = {"Records": [sqs_message(payload, group_id="g")]}
    response, report = consumer_for(aws).handle(event, None)
    assert response == {"batchItemFailures": []}
    assert [o.outcome for o in report.outcomes.values()] == [outcome]


class CrashError(Exception):
    """Stands for the process dying between two chunks of a commit."""


def crash_after_first_chunk(user_id: str, index: int) -> None:
    raise CrashError(f"killed after chunk {index} of {user_id}")


def test_a_chunked_commit_killed_between_chunks_is_finished_by_the_redelivery(aws):
    users = UsersWriter(aws)
    consume(aws, users.put("big", [f"old-{i}" for i in range(150)]))
    change = users.put("big", [f"new-{i}" for i in range(150)])
    crashing = DynamoReplicationStore(
        aws.dynamodb, aws.organizations_table, after_chunk=crash_after_first_chunk
    )
    with pytest.raises(CrashError):
        apply_changes({"big": decode_record(change)}, crashing)
    replication = organizations_snapshot(org_table(aws)).replication["big"]
    assert replication.pending_seq is not None
    consume(aws, change)  # SQS delivers the unacknowledged message again
    assert_invariant(aws)


def test_a_newer_change_overtaking_a_crashed_chunked_commit_leaves_no_stray_membership(aws):
    users = UsersWriter(aws)
    consume(aws, users.put("big", ["keep"]))
    crashed = users.put("big", [f"new-{i}" for i in range(250)])
    crashing = DynamoReplicationStore(
        aws.dynamodb, aws.organizations_table, after_chunk=crash_after_first_chunk
    )
    with pytest.raises(CrashError):
        apply_changes({"big": decode_record(crashed)}, crashing)
    consume(aws, users.put("big", ["keep", "another"]))
    assert_invariant(aws)
    report = consume(aws, crashed)  # the crashed change arrives late: stale, no effect
    assert report.counters["StaleEventsSkipped"] == 1
    assert_invariant(aws)


def test_a_stale_fence_makes_the_loop_re_read_and_re_plan(aws):
    users = UsersWriter(aws)
    consume(aws, users.put("u", ["a"]))
    store = DynamoReplicationStore(aws.dynamodb, aws.organizations_table)
    older_view = store.read(["u"])
    consume(aws, users.put("u", ["b"]))  # a concurrent writer moves the revision on
    newest = users.put("u", ["c"])
    plan = decide(decode_record(newest), older_view["u"])
    assert store.commit([plan])["u"].status == "conflict"
    results = apply_changes({"u": decode_record(newest)}, store)
    assert results["u"].status is ApplyStatus.APPLIED
    assert_invariant(aws)


def test_the_lambda_entry_point_wires_settings_clients_and_powertools(aws, monkeypatch):
    monkeypatch.setenv("ORGANIZATIONS_TABLE_NAME", aws.organizations_table)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", aws.dead_letter_queue_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    handler._consumer.cache_clear()
    users = UsersWriter(aws)
    try:
        response = handler.lambda_handler(
            sqs_event(users.put("via-lambda", ["a"])), FakeLambdaContext()
        )
    finally:
        handler._consumer.cache_clear()
    assert response == {"batchItemFailures": []}
    assert_invariant(aws)


class FakeLambdaContext:
    function_name = "poc-user-stream-consumer"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:poc-user-stream-consumer"
    memory_limit_in_mb = 512
    aws_request_id = "req-1"
    log_group_name = "/aws/lambda/poc-user-stream-consumer"
    log_stream_name = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def test_a_record_orgsync_did_not_write_fails_its_user_only(aws):
    users = UsersWriter(aws)
    consume(aws, users.put("garbled", ["a"]))
    aws.dynamodb.put_item(  # a REPLICATION record whose seq is not a number: no fence to read
        TableName=aws.organizations_table,
        Item={"pk": {"S": "USER#garbled"}, "sk": {"S": "REPLICATION"}, "seq": {"S": "x"}},
    )
    event = sqs_event(users.put("garbled", ["b"]), users.put("fine", ["a", "b"]))
    response, report = consumer_for(aws).handle(event, None)

    # The garbled user's message fails (retried, then to the DLQ with the reason after its
    # receives); the other user of the batch is applied as if nothing happened.
    failed = [item["itemIdentifier"] for item in response["batchItemFailures"]]
    assert failed == [event["Records"][0]["messageId"]]
    assert report.counters["UserChangesApplied"] == 1
    assert report.counters["TransientFailures"] == 1
    members = [decode_membership(item) for item in org_table(aws)]
    assert {m.org_id for m in members if m is not None and m.user_id == "fine"} == {"a", "b"}
