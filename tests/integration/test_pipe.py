"""The local Pipe against a real moto server over HTTP: stream → filter → SQS FIFO, checkpoints.

moto's stream has one shard that never closes, so shard lineage, expired iterators and trimming
are exercised with `FakeStreams` (a stand-in for the Streams API) while SQS and the checkpoint
table stay real.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError
from integration_stack import client

from orgsync.local.pipes.runner import PipeRunner
from orgsync.local.pipes.settings import PipeSettings
from orgsync.local.pipes.thread import PipeThread

USER_FILTER = json.dumps(
    {"dynamodb": {"Keys": {"sk": {"S": ["METADATA"]}, "pk": {"S": [{"prefix": "USER#"}]}}}}
)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def endpoint(moto_endpoint: str) -> str:
    """The session's moto server (tests/integration/conftest.py)."""
    return moto_endpoint


@pytest.fixture(scope="module")
def dynamodb(endpoint: str) -> Any:
    return client("dynamodb", endpoint)


@pytest.fixture(scope="module")
def streams(endpoint: str) -> Any:
    return client("dynamodbstreams", endpoint)


@pytest.fixture(scope="module")
def sqs(endpoint: str) -> Any:
    return client("sqs", endpoint)


@pytest.fixture
def users_table(dynamodb: Any) -> tuple[str, str]:
    """A fresh users table with a NEW_AND_OLD_IMAGES stream: (table name, stream ARN)."""
    name = f"users-{uuid.uuid4().hex[:8]}"
    created = dynamodb.create_table(
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
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return name, created["TableDescription"]["LatestStreamArn"]


@pytest.fixture
def queue_url(sqs: Any) -> str:
    return sqs.create_queue(
        QueueName=f"user-stream-{uuid.uuid4().hex[:8]}.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]


@pytest.fixture
def checkpoint_table() -> str:
    return f"pipe-checkpoints-{uuid.uuid4().hex[:8]}"


def settings_for(
    stream_arn: str, queue_url: str, checkpoint_table: str, **overrides: Any
) -> PipeSettings:
    values: dict[str, Any] = {
        "name": "user-table-dynamo-pipe",
        "stream_arn": stream_arn,
        "target_queue_url": queue_url,
        "filter_patterns": (USER_FILTER,),
        "message_group_id": "$.dynamodb.Keys.pk.S",
        "message_deduplication_id": "$.eventID",
        "checkpoint_table": checkpoint_table,
    }
    values.update(overrides)
    return PipeSettings(**values)


def new_runner(
    settings: PipeSettings, dynamodb: Any, streams: Any, sqs: Any, **options: float
) -> PipeRunner:
    runner = PipeRunner(
        settings, streams=streams, sqs=sqs, dynamodb=dynamodb, poll_interval=0.01, **options
    )
    runner.ensure_checkpoint_table()
    return runner


def put_user(dynamodb: Any, table: str, user_id: str, **attributes: str) -> None:
    item = {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "METADATA"}}
    item.update({k: {"S": v} for k, v in attributes.items()})
    dynamodb.put_item(TableName=table, Item=item)


def put_org_item(dynamodb: Any, table: str, org_id: str, sk: str) -> None:
    dynamodb.put_item(
        TableName=table, Item={"pk": {"S": f"ORG#{org_id}"}, "sk": {"S": sk}, "name": {"S": "x"}}
    )


def receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Drain a FIFO queue: deleting each batch unblocks its groups for the next receive."""
    messages: list[dict[str, Any]] = []
    for _ in range(200):
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ],
        )
    raise AssertionError("queue never drained")


def bodies(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in messages]


# ---------------------------------------------------------------------------- moto stream


def test_inserts_modifies_and_removes_reach_the_queue_as_pipe_records(
    dynamodb, streams, sqs, users_table, queue_url, checkpoint_table
):
    table, stream_arn = users_table
    put_user(dynamodb, table, "auth0|66199504eddfc16953adc92e", status="ACTIVE")
    put_user(dynamodb, table, "auth0|66199504eddfc16953adc92e", status="SUSPENDED")
    dynamodb.delete_item(
        TableName=table,
        Key={"pk": {"S": "USER#auth0|66199504eddfc16953adc92e"}, "sk": {"S": "METADATA"}},
    )
    runner = new_runner(
        settings_for(stream_arn, queue_url, checkpoint_table), dynamodb, streams, sqs
    )

    assert runner.run_once() == 3
    assert not runner.is_caught_up()
    assert runner.run_once() == 0
    assert runner.is_caught_up()

    messages = receive_all(sqs, queue_url)
    records = bodies(messages)
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    for message, record in zip(messages, records, strict=True):
        assert message["Attributes"]["MessageGroupId"] == "USER#auth0|66199504eddfc16953adc92e"
        assert message["Attributes"]["MessageDeduplicationId"] == record["eventID"]
        assert record["eventVersion"] == "1.1"
        assert record["eventSource"] == "aws:dynamodb"
        assert record["eventSourceARN"] == stream_arn
        assert record["awsRegion"] == "us-east-1"
        assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int | float)
        assert record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert record["dynamodb"]["Keys"] == {
            "pk": {"S": "USER#auth0|66199504eddfc16953adc92e"},
            "sk": {"S": "METADATA"},
        }
    insert, modify, remove = records
    assert insert["dynamodb"]["NewImage"]["status"] == {"S": "ACTIVE"}
    assert "OldImage" not in insert["dynamodb"]
    assert modify["dynamodb"]["OldImage"]["status"] == {"S": "ACTIVE"}
    assert modify["dynamodb"]["NewImage"]["status"] == {"S": "SUSPENDED"}
    assert remove["dynamodb"]["OldImage"]["status"] == {"S": "SUSPENDED"}
    assert "NewImage" not in remove["dynamodb"]
    sequence_numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequence_numbers == sorted(sequence_numbers)
    [position] = runner.position()
    assert position.sequence_number == records[-1]["dynamodb"]["SequenceNumber"]
    assert runner.metrics.sent == 3
    assert runner.metrics.batches == 1


def test_the_filter_drops_non_user_items_and_still_moves_the_checkpoint(
    dynamodb, streams, sqs, users_table, queue_url, checkpoint_table
):
    table, stream_arn = users_table
    put_org_item(dynamodb, table, "acme", "METADATA")
    put_user(dynamodb, table, "u1", status="ACTIVE")
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "USER#u1"}, "sk": {"S": "REPLICATION"}})
    put_org_item(dynamodb, table, "acme", "MEMBERSHIP#u1")
    runner = new_runner(
        settings_for(stream_arn, queue_url, checkpoint_table), dynamodb, streams, sqs
    )

    assert runner.run_once() == 1

    [record] = bodies(receive_all(sqs, queue_url))
    assert record["dynamodb"]["Keys"]["pk"] == {"S": "USER#u1"}
    assert runner.metrics.records_read == 4
    assert runner.metrics.filtered_out == 3
    restarted = new_runner(
        settings_for(stream_arn, queue_url, checkpoint_table), dynamodb, streams, sqs
    )
    assert restarted.run_once() == 0
    assert restarted.metrics.records_read == 0


def test_a_restarted_pipe_resumes_after_its_checkpoint_without_resending(
    dynamodb, streams, sqs, users_table, queue_url, checkpoint_table
):
    table, stream_arn = users_table
    settings = settings_for(stream_arn, queue_url, checkpoint_table, batch_size=2)
    for n in range(3):
        put_user(dynamodb, table, f"u{n}", status="ACTIVE")
    first = new_runner(settings, dynamodb, streams, sqs)
    assert first.run_once() == 3
    first.persist_checkpoints()  # what its stop does (PipeRunner.run, at the end)
    for n in range(3, 5):
        put_user(dynamodb, table, f"u{n}", status="ACTIVE")

    restarted = new_runner(settings, dynamodb, streams, sqs)

    assert restarted.run_once() == 2
    records = bodies(receive_all(sqs, queue_url))
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in records] == [f"USER#u{n}" for n in range(5)]


class SimulatedKillError(BaseException):
    """Not an Exception: nothing in the pipe may catch it, as nothing catches SIGKILL."""


class FakeCrashingDynamoDB:
    """Passes calls to a real client but dies on the n-th PutItem, like a kill -9 before it."""

    def __init__(self, real: Any, crash_on_put: int) -> None:
        self._real = real
        self._puts = 0
        self._crash_on_put = crash_on_put
        self.exceptions = real.exceptions

    @property
    def puts(self) -> int:
        return self._puts

    def put_item(self, **kwargs: Any) -> Any:
        self._puts += 1
        if self._puts == self._crash_on_put:
            raise SimulatedKillError("killed between send and checkpoint")
        return self._real.put_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_pipe_killed_between_send_and_checkpoint_resends_only_that_batch(
    dynamodb, streams, sqs, users_table, queue_url, checkpoint_table
):
    table, stream_arn = users_table
    settings = settings_for(stream_arn, queue_url, checkpoint_table, batch_size=2)
    for n in range(5):
        put_user(dynamodb, table, f"u{n}", status="ACTIVE")
    # A checkpoint after every batch: the kill comes between batch 2's send and its checkpoint.
    doomed = new_runner(
        settings,
        FakeCrashingDynamoDB(dynamodb, crash_on_put=2),
        streams,
        sqs,
        checkpoint_interval=0,
    )
    with pytest.raises(SimulatedKillError):
        doomed.run_once()
    assert doomed.metrics.sent == 4  # batch 2 reached the queue, its checkpoint did not

    restarted = new_runner(settings, dynamodb, streams, sqs)

    # Batch 2 again (u2, u3), then u4: never batch 1.
    assert restarted.run_once() == 3
    records = bodies(receive_all(sqs, queue_url))
    # The re-sent batch carries the same MessageDeduplicationId, so FIFO drops the copies.
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in records] == [f"USER#u{n}" for n in range(5)]
    assert len({r["eventID"] for r in records}) == 5


def test_checkpoints_are_written_on_a_timer_and_a_kill_resends_only_what_followed_the_last(
    dynamodb, streams, sqs, users_table, queue_url, checkpoint_table
):
    table, stream_arn = users_table
    settings = settings_for(stream_arn, queue_url, checkpoint_table, batch_size=2)
    for n in range(2):
        put_user(dynamodb, table, f"u{n}", status="ACTIVE")
    counting = FakeCrashingDynamoDB(dynamodb, crash_on_put=0)  # never crashes: counts
    first = new_runner(settings, counting, streams, sqs, checkpoint_interval=60)
    assert first.run_once() == 2
    assert counting.puts == 1  # the first pass's checkpoint (nothing was written before)
    for n in range(2, 7):
        put_user(dynamodb, table, f"u{n}", status="ACTIVE")
    assert first.run_once() == 5
    assert counting.puts == 1  # three batches sent; the next checkpoint is not due for 60 s
    # Killed now (never stopped): no checkpoint for u2..u6 was written.

    restarted = new_runner(settings, dynamodb, streams, sqs)

    # Everything after the last checkpoint again (u2..u6), never u0 or u1.
    assert restarted.run_once() == 5
    records = bodies(receive_all(sqs, queue_url))
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in records] == [f"USER#u{n}" for n in range(7)]
    assert len({r["eventID"] for r in records}) == 7
    assert restarted.run_once() == 0  # an idle pass writes the position at once
    assert new_runner(settings, dynamodb, streams, sqs).run_once() == 0


def test_a_record_whose_group_path_resolves_to_nothing_is_dead_lettered_and_skipped(
    dynamodb, streams, sqs, users_table, queue_url, checkpoint_table
):
    table, stream_arn = users_table
    dlq_url = sqs.create_queue(QueueName=f"pipe-dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    settings = settings_for(
        stream_arn,
        queue_url,
        checkpoint_table,
        message_group_id="$.dynamodb.NewImage.team.S",
        dead_letter_queue_url=dlq_url,
    )
    put_user(dynamodb, table, "u1", team="blue")
    put_user(dynamodb, table, "u2")
    put_user(dynamodb, table, "u3", team="red")
    runner = new_runner(settings, dynamodb, streams, sqs)

    assert runner.run_once() == 2

    records = bodies(receive_all(sqs, queue_url))
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in records] == ["USER#u1", "USER#u3"]
    [failure] = runner.failures
    assert "resolves to nothing" in failure.reason
    assert runner.metrics.failed == 1
    [dead] = bodies(sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10)["Messages"])
    assert dead["DDBStreamBatchInfo"]["startSequenceNumber"] == failure.sequence_number
    assert dead["DDBStreamBatchInfo"]["streamArn"] == stream_arn
    assert runner.position()[0].sequence_number == records[-1]["dynamodb"]["SequenceNumber"]


# ---------------------------------------------------------------------------- what SQS refuses


@pytest.fixture
def pipe_dlq_url(sqs: Any) -> str:
    """A standard queue, like the template's pipe DLQ."""
    return sqs.create_queue(QueueName=f"pipe-dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]


def put_typed_user(dynamodb: Any, table: str, user_id: str, **attributes: Any) -> None:
    """A user item with attributes already in DynamoDB's typed form ({"B": b"..."})."""
    item = {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "METADATA"}, **attributes}
    dynamodb.put_item(TableName=table, Item=item)


def pks(messages: list[dict[str, Any]]) -> list[str]:
    return [r["dynamodb"]["Keys"]["pk"]["S"] for r in bodies(messages)]


def dead_lettered(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        messages.extend(batch)
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies(messages)


# Each resolves `$.dynamodb.Keys.pk.S` (USER#<id>) to a group id SQS refuses.
UNSENDABLE_USER_IDS = {
    "a space": "jane doe@example.com",
    "a non-ASCII character": "jos\u00e9@example.com",
    "129 characters": "x" * (128 - len("USER#") + 1),
}


def test_a_group_id_sqs_refuses_sends_that_record_alone_to_the_pipe_dlq_without_logging_it(
    dynamodb, streams, sqs, users_table, queue_url, checkpoint_table, pipe_dlq_url, caplog
):
    table, stream_arn = users_table
    settings = settings_for(
        stream_arn, queue_url, checkpoint_table, dead_letter_queue_url=pipe_dlq_url
    )
    put_user(dynamodb, table, "ok-0")
    for n, user_id in enumerate(UNSENDABLE_USER_IDS.values(), start=1):
        put_user(dynamodb, table, user_id)
        put_user(dynamodb, table, f"ok-{n}")
    runner = new_runner(settings, dynamodb, streams, sqs)

    with caplog.at_level("DEBUG", logger="orgsync.local.pipes"):
        assert runner.run_once() == 4

    assert pks(receive_all(sqs, queue_url)) == [f"USER#ok-{n}" for n in range(4)]
    reasons = [failure.reason for failure in runner.failures]
    assert [reason.split(" at character")[0].split("; ")[0] for reason in reasons] == [
        "MessageGroupId: path $.dynamodb.Keys.pk.S resolves to a value that holds a space (U+0020)",
        "MessageGroupId: path $.dynamodb.Keys.pk.S resolves to a value that holds a non-ASCII "
        "character (U+00E9)",
        "MessageGroupId: path $.dynamodb.Keys.pk.S resolves to a value that has 129 characters",
    ]
    dead = dead_lettered(sqs, pipe_dlq_url)
    assert [d["DDBStreamBatchInfo"]["startSequenceNumber"] for d in dead] == [
        failure.sequence_number for failure in runner.failures
    ]
    assert [d["context"]["reason"] for d in dead] == reasons
    # The ids may be emails: neither the log nor the DLQ quotes them.
    logged = " ".join(record.getMessage() for record in caplog.records) + json.dumps(dead)
    for user_id in UNSENDABLE_USER_IDS.values():
        assert user_id not in logged
    assert runner.metrics.failed == 3
    # The shard moved past them: nothing is re-sent, and what is written next is delivered.
    put_user(dynamodb, table, "next")
    assert runner.run_once() == 1
    assert pks(receive_all(sqs, queue_url)) == ["USER#next"]
    assert runner.metrics.failed == 3


# DynamoDB's item limit is 400 KB; moto refuses an item past 405,000 bytes.
NEAR_ITEM_LIMIT = 399_000


def test_a_batch_past_the_1_mib_request_limit_is_bisected_and_delivered_in_order(
    dynamodb, streams, sqs, users_table, queue_url, checkpoint_table, pipe_dlq_url
):
    table, stream_arn = users_table
    settings = settings_for(
        stream_arn, queue_url, checkpoint_table, dead_letter_queue_url=pipe_dlq_url
    )
    for n in range(10):
        put_typed_user(dynamodb, table, f"big-{n}", profile={"S": str(n) * NEAR_ITEM_LIMIT})
    put_user(dynamodb, table, "small-after")
    runner = new_runner(settings, dynamodb, streams, sqs)

    assert runner.run_once() == 11

    messages = receive_all(sqs, queue_url)
    assert pks(messages) == [f"USER#big-{n}" for n in range(10)] + ["USER#small-after"]
    assert all(len(m["Body"]) > NEAR_ITEM_LIMIT for m in messages[:10])
    # 10 → 5 + 5, each 5 → 3 + 2, each 3 → 2 + 1: two ~400 KB records fit in one request.
    assert runner.metrics.bisections == 5
    assert (runner.metrics.failed, runner.metrics.batches) == (0, 2)
    assert dead_lettered(sqs, pipe_dlq_url) == []
    assert (
        runner.position()[0].sequence_number == bodies(messages)[-1]["dynamodb"]["SequenceNumber"]
    )


def test_a_record_larger_than_one_sqs_message_goes_to_the_pipe_dlq_and_the_shard_moves_on(
    dynamodb, streams, sqs, users_table, queue_url, checkpoint_table, pipe_dlq_url
):
    table, stream_arn = users_table
    settings = settings_for(
        stream_arn, queue_url, checkpoint_table, dead_letter_queue_url=pipe_dlq_url
    )
    blob = {"B": b"\x01" * NEAR_ITEM_LIMIT}
    put_user(dynamodb, table, "before")
    put_typed_user(dynamodb, table, "big", avatar=blob)
    # A MODIFY carries both images, each base64-encoded: ~1.06 MB, past SQS's 1 MiB.
    put_typed_user(dynamodb, table, "big", avatar=blob, status={"S": "SUSPENDED"})
    put_user(dynamodb, table, "after")
    runner = new_runner(settings, dynamodb, streams, sqs)

    assert runner.run_once() == 3

    delivered = bodies(receive_all(sqs, queue_url))
    assert [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in delivered] == [
        ("INSERT", "USER#before"),
        ("INSERT", "USER#big"),
        ("INSERT", "USER#after"),
    ]
    [failure] = runner.failures
    assert "BatchRequestTooLong" in failure.reason
    assert failure.reason.startswith("a message of 10")  # bytes: past 1,048,576
    [dead] = dead_lettered(sqs, pipe_dlq_url)
    assert dead["DDBStreamBatchInfo"]["startSequenceNumber"] == failure.sequence_number
    assert int(delivered[1]["dynamodb"]["SequenceNumber"]) < int(failure.sequence_number)
    assert runner.metrics.bisections == 2  # [before, big] + [MODIFY, after]; then [MODIFY] alone
    put_user(dynamodb, table, "next")
    assert runner.run_once() == 1
    assert pks(receive_all(sqs, queue_url)) == ["USER#next"]


def test_a_message_past_the_queues_maximum_message_size_goes_alone_to_the_pipe_dlq(
    dynamodb, streams, sqs, users_table, checkpoint_table, pipe_dlq_url
):
    table, stream_arn = users_table
    small_queue = sqs.create_queue(
        QueueName=f"small-{uuid.uuid4().hex[:8]}.fifo",
        Attributes={
            "FifoQueue": "true",
            "ContentBasedDeduplication": "true",
            "MaximumMessageSize": "1024",  # the least SQS allows
        },
    )["QueueUrl"]
    settings = settings_for(
        stream_arn, small_queue, checkpoint_table, dead_letter_queue_url=pipe_dlq_url
    )
    put_user(dynamodb, table, "a")
    put_user(dynamodb, table, "long", status="x" * 2000)
    put_user(dynamodb, table, "b")
    runner = new_runner(settings, dynamodb, streams, sqs)

    assert runner.run_once() == 2

    assert pks(receive_all(sqs, small_queue)) == ["USER#a", "USER#b"]
    [failure] = runner.failures
    assert "Message must be shorter than 1024 bytes" in failure.reason
    assert len(dead_lettered(sqs, pipe_dlq_url)) == 1
    assert runner.metrics.bisections == 2  # [a, long] + [b]; then [a] + [long]


def test_latest_starting_position_skips_what_was_written_before_the_pipe_started(
    dynamodb, streams, sqs, users_table, queue_url, checkpoint_table
):
    table, stream_arn = users_table
    put_user(dynamodb, table, "before")
    runner = new_runner(
        settings_for(stream_arn, queue_url, checkpoint_table, starting_position="LATEST"),
        dynamodb,
        streams,
        sqs,
    )
    assert runner.run_once() == 0
    put_user(dynamodb, table, "after")

    assert runner.run_once() == 1
    [record] = bodies(receive_all(sqs, queue_url))
    assert record["dynamodb"]["Keys"]["pk"]["S"] == "USER#after"


class FakeFlakySQS:
    """Real SQS behind it, but the first SendMessageBatch accepts only its first entry."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.calls = 0

    def send_message_batch(self, **kwargs: Any) -> Any:
        self.calls += 1
        entries = kwargs["Entries"]
        if self.calls > 1:
            return self._real.send_message_batch(**kwargs)
        accepted = self._real.send_message_batch(QueueUrl=kwargs["QueueUrl"], Entries=entries[:1])
        accepted["Failed"] = [
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"}
            for e in entries[1:]
        ]
        return accepted

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_entries_sqs_fails_are_retried_until_accepted(
    dynamodb, streams, sqs, users_table, queue_url, checkpoint_table
):
    table, stream_arn = users_table
    for n in range(4):
        put_user(dynamodb, table, f"u{n}")
    flaky = FakeFlakySQS(sqs)
    runner = new_runner(
        settings_for(stream_arn, queue_url, checkpoint_table), dynamodb, streams, flaky
    )

    assert runner.run_once() == 4

    assert runner.metrics.send_retries == 3
    assert flaky.calls == 2
    assert len(receive_all(sqs, queue_url)) == 4


def test_run_in_a_thread_follows_new_writes_and_stops_when_asked(
    dynamodb, streams, sqs, users_table, queue_url, checkpoint_table
):
    table, stream_arn = users_table
    runner = PipeRunner(
        settings_for(stream_arn, queue_url, checkpoint_table),
        streams=streams,
        sqs=sqs,
        dynamodb=dynamodb,
        poll_interval=0.02,
    )
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    try:
        put_user(dynamodb, table, "live", status="ACTIVE")
        deadline = time.monotonic() + 10
        while runner.metrics.sent < 1 or not runner.is_caught_up():
            assert time.monotonic() < deadline, "pipe never caught up"
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    [record] = bodies(receive_all(sqs, queue_url))
    assert record["dynamodb"]["Keys"]["pk"]["S"] == "USER#live"


# ---------------------------------------------------------------------------- shard lineage


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


class FakeStreams:
    """The DynamoDB Streams API over in-memory shards, one shard per DescribeStream page.

    Shards map to (parent id, closed, records); each GetRecords returns at most `page` records,
    so a test can see a pass end before a parent is finished.
    """

    def __init__(self, page: int = 1) -> None:
        self.shards: dict[str, dict[str, Any]] = {}
        self.page = page
        self.reads: list[str] = []
        self.expire_next_read = False
        self.trimmed_below: int | None = None

    def add_shard(
        self, shard_id: str, sequences: list[int], *, parent: str | None = None, closed: bool
    ) -> None:
        self.shards[shard_id] = {"parent": parent, "closed": closed, "sequences": sequences}

    # Keyword names as boto3 spells them.
    def describe_stream(self, **request: Any) -> Any:
        ids = list(self.shards)
        cursor = request.get("ExclusiveStartShardId")
        start = ids.index(cursor) + 1 if cursor else 0
        page = ids[start : start + 1]
        shards = []
        for shard_id in page:
            shard = self.shards[shard_id]
            seq_range = {"StartingSequenceNumber": "1"}
            if shard["closed"]:
                seq_range["EndingSequenceNumber"] = str(max(shard["sequences"], default=1))
            described = {"ShardId": shard_id, "SequenceNumberRange": seq_range}
            if shard["parent"]:
                described["ParentShardId"] = shard["parent"]
            shards.append(described)
        description: dict[str, Any] = {"StreamArn": request["StreamArn"], "Shards": shards}
        if start + 1 < len(ids):
            description["LastEvaluatedShardId"] = page[-1]
        return {"StreamDescription": description}

    def get_shard_iterator(self, **request: Any) -> Any:
        shard_id, kind = request["ShardId"], request["ShardIteratorType"]
        sequence = int(request.get("SequenceNumber", "0"))
        sequences = self.shards[shard_id]["sequences"]
        if kind == "TRIM_HORIZON":
            index = 0
        elif kind == "LATEST":
            index = len(sequences)
        else:
            if self.trimmed_below is not None and sequence < self.trimmed_below:
                raise client_error("TrimmedDataAccessException", "GetShardIterator")
            after = kind == "AFTER_SEQUENCE_NUMBER"
            index = next(
                (
                    i
                    for i, s in enumerate(sequences)
                    if s > sequence or (not after and s == sequence)
                ),
                len(sequences),
            )
        return {"ShardIterator": f"{shard_id}@{index}"}

    def get_records(self, **request: Any) -> Any:
        shard_id, index = request["ShardIterator"].split("@")
        if self.expire_next_read:
            self.expire_next_read = False
            raise client_error("ExpiredIteratorException", "GetRecords")
        self.reads.append(shard_id)
        shard = self.shards[shard_id]
        start = int(index)
        chunk = shard["sequences"][start : start + min(request["Limit"], self.page)]
        end = start + len(chunk)
        response: dict[str, Any] = {"Records": [self._record(shard_id, s) for s in chunk]}
        if not (shard["closed"] and end >= len(shard["sequences"])):
            response["NextShardIterator"] = f"{shard_id}@{end}"
        return response

    @staticmethod
    def _record(shard_id: str, sequence: int) -> dict[str, Any]:
        return {
            "eventID": f"{shard_id}-{sequence}",
            "eventName": "MODIFY",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "Keys": {"pk": {"S": "USER#same"}, "sk": {"S": "METADATA"}},
                "NewImage": {"pk": {"S": "USER#same"}, "sk": {"S": "METADATA"}},
                "SequenceNumber": str(sequence),
                "SizeBytes": 10,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
        }


FAKE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/fake/stream/2024-01-01T00:00:00.000"


def sequences_received(sqs: Any, url: str) -> list[int]:
    return [int(r["dynamodb"]["SequenceNumber"]) for r in bodies(receive_all(sqs, url))]


def test_a_child_shard_is_read_only_after_its_parent_is_finished(
    dynamodb, sqs, queue_url, checkpoint_table
):
    fake = FakeStreams(page=1)
    # Listed child first: order must come from lineage, not from DescribeStream.
    fake.add_shard("shardId-child", [100, 101], parent="shardId-parent", closed=False)
    fake.add_shard("shardId-parent", [98, 99], closed=True)
    runner = new_runner(settings_for(FAKE_ARN, queue_url, checkpoint_table), dynamodb, fake, sqs)

    runner.run_once()
    assert fake.reads == ["shardId-parent"]
    for _ in range(10):
        runner.run_once()
        if runner.is_caught_up():
            break

    assert sequences_received(sqs, queue_url) == [98, 99, 100, 101]
    parent, child = runner.position()
    assert (parent.shard_id, parent.finished, parent.sequence_number) == (
        "shardId-parent",
        True,
        "99",
    )
    assert (child.shard_id, child.finished, child.sequence_number) == (
        "shardId-child",
        False,
        "101",
    )


def test_a_restart_finds_finished_parents_and_new_shards_from_the_checkpoint_table(
    dynamodb, sqs, queue_url, checkpoint_table
):
    fake = FakeStreams(page=1000)
    fake.add_shard("shardId-parent", [5, 6], closed=True)
    settings = settings_for(FAKE_ARN, queue_url, checkpoint_table)
    new_runner(settings, dynamodb, fake, sqs).run_once()
    fake.add_shard("shardId-child", [7, 8], parent="shardId-parent", closed=False)

    restarted = new_runner(settings, dynamodb, fake, sqs)
    restarted.run_once()

    assert sequences_received(sqs, queue_url) == [5, 6, 7, 8]
    assert fake.reads == ["shardId-parent", "shardId-child"]


def test_an_expired_iterator_is_reopened_after_the_last_record_read(
    dynamodb, sqs, queue_url, checkpoint_table
):
    fake = FakeStreams(page=1)
    fake.add_shard("shardId-only", [9, 10, 11], closed=False)
    runner = new_runner(settings_for(FAKE_ARN, queue_url, checkpoint_table), dynamodb, fake, sqs)
    runner.run_once()

    fake.expire_next_read = True
    for _ in range(5):
        runner.run_once()

    assert sequences_received(sqs, queue_url) == [9, 10, 11]


def test_a_trimmed_checkpoint_restarts_the_shard_at_trim_horizon(
    dynamodb, sqs, queue_url, checkpoint_table
):
    fake = FakeStreams(page=1000)
    fake.add_shard("shardId-only", [1, 2], closed=False)
    settings = settings_for(FAKE_ARN, queue_url, checkpoint_table)
    new_runner(settings, dynamodb, fake, sqs).run_once()
    assert sequences_received(sqs, queue_url) == [1, 2]
    # 24 h later: 1 and 2 are trimmed, 50 and 51 were written meanwhile.
    fake.shards["shardId-only"]["sequences"] = [50, 51]
    fake.trimmed_below = 50

    restarted = new_runner(settings, dynamodb, fake, sqs)
    restarted.run_once()

    assert sequences_received(sqs, queue_url) == [50, 51]


# ---------------------------------------------------------------------------- a test's clean slate


def test_skip_to_end_consumes_pending_and_unread_records_without_sending_them(
    dynamodb: Any,
    streams: Any,
    sqs: Any,
    users_table: tuple[str, str],
    queue_url: str,
    checkpoint_table: str,
) -> None:
    table, stream_arn = users_table
    # A long batching window: the first records stay pending in the runner, unsent.
    settings = settings_for(
        stream_arn, queue_url, checkpoint_table, maximum_batching_window_seconds=300
    )
    runner = new_runner(settings, dynamodb, streams, sqs)
    put_user(dynamodb, table, "pending", status="ACTIVE")
    runner.run_once()
    put_user(dynamodb, table, "unread", status="ACTIVE")

    assert runner.skip_to_end() == 1  # the unread one; the pending one was read before

    put_user(dynamodb, table, "after", status="ACTIVE")
    fresh = new_runner(
        settings_for(stream_arn, queue_url, checkpoint_table), dynamodb, streams, sqs
    )
    fresh.run_once()  # a new runner knows only the checkpoints: they are past what was skipped
    bodies = [
        json.loads(message["Body"])["dynamodb"]["Keys"]["pk"]["S"]
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
    ]
    assert bodies == ["USER#after"]
    assert runner.metrics.sent == 0


def test_a_pass_that_keeps_failing_warns_once_per_outage(
    dynamodb: Any,
    streams: Any,
    sqs: Any,
    queue_url: str,
    checkpoint_table: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = "arn:aws:dynamodb:us-east-1:123456789012:table/gone/stream/2026-01-01T00:00:00.000"
    runner = new_runner(settings_for(gone, queue_url, checkpoint_table), dynamodb, streams, sqs)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    with caplog.at_level("DEBUG", logger="orgsync.local.pipes.runner"):
        thread.start()
        deadline = time.monotonic() + 10
        while runner.metrics.errors < 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        stop.set()
        thread.join(timeout=10)
    failures = [r for r in caplog.records if "pass failed" in r.getMessage()]
    assert len(failures) >= 3
    assert [r.levelname for r in failures].count("WARNING") == 1


def test_a_restart_while_paused_leaves_the_pauser_the_only_user_of_the_runner(
    dynamodb: Any,
    streams: Any,
    sqs: Any,
    users_table: tuple[str, str],
    queue_url: str,
    checkpoint_table: str,
) -> None:
    _, stream_arn = users_table
    settings = settings_for(stream_arn, queue_url, checkpoint_table)
    runner = new_runner(settings, dynamodb, streams, sqs)
    thread = PipeThread(runner)
    thread.start()
    try:
        thread.pause()
        # What the chaos restarter would do mid-reset: it must not start a second runner.
        thread.restart(lambda: new_runner(settings, dynamodb, streams, sqs))
        assert thread.runner is runner
        assert [t.name for t in threading.enumerate()].count(f"orgsync-pipe-{settings.name}") == 0
        thread.resume()
        assert [t.name for t in threading.enumerate()].count(f"orgsync-pipe-{settings.name}") == 1
    finally:
        thread.stop(timeout=10)
