"""The Lambda SQS event source emulation against a real moto server over HTTP."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from orgsync.local.lambda_.response import decide_batch_outcome
from orgsync.local.lambda_.sqs_poller import EventSourceConfig, SqsEventSourcePoller
from orgsync.local.servers import MotoStore

REGION = "us-east-1"


@pytest.fixture(scope="module")
def endpoint(moto_endpoint: str) -> str:
    """The session's moto server (tests/integration/conftest.py)."""
    return moto_endpoint


@pytest.fixture(scope="module")
def sqs(endpoint: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


class FifoQueue:
    """A FIFO queue with a FIFO DLQ, named uniquely (moto's state is shared by the process)."""

    def __init__(self, sqs: Any, *, visibility_timeout: int = 60, max_receive_count: int = 5):
        suffix = uuid.uuid4().hex[:10]
        self.sqs = sqs
        self.dlq_url = sqs.create_queue(
            QueueName=f"dlq-{suffix}.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
        )["QueueUrl"]
        dlq_arn = self.arn_of(self.dlq_url)
        self.url = sqs.create_queue(
            QueueName=f"main-{suffix}.fifo",
            Attributes={
                "FifoQueue": "true",
                "ContentBasedDeduplication": "true",
                "VisibilityTimeout": str(visibility_timeout),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
                ),
            },
        )["QueueUrl"]
        self.arn = self.arn_of(self.url)

    def arn_of(self, url: str) -> str:
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attributes["Attributes"]["QueueArn"])

    def send(self, group: str, body: str, **extra: Any) -> str:
        response = self.sqs.send_message(
            QueueUrl=self.url, MessageBody=body, MessageGroupId=group, **extra
        )
        return str(response["MessageId"])

    def depth(self, url: str | None = None) -> tuple[int, int]:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=url or self.url, AttributeNames=names)
        return tuple(int(attributes["Attributes"][name]) for name in names)

    def release(self, event: dict[str, Any]) -> None:
        """Make the event's messages that are still in flight visible again at once."""
        for record in event["Records"]:
            with contextlib.suppress(self.sqs.exceptions.ClientError):  # deleted: succeeded
                self.sqs.change_message_visibility(
                    QueueUrl=self.url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
                )

    def visible_bodies_in_order(self) -> list[str]:
        """Read every visible message back (deleting it), group order preserved."""
        bodies: list[str] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return bodies
            for message in messages:
                bodies.append(message["Body"])
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])


def make_poller(
    sqs: Any,
    queue: FifoQueue,
    handler: Callable[[dict[str, Any], Any], Any],
    **overrides: Any,
) -> SqsEventSourcePoller:
    settings: dict[str, Any] = {
        "queue_url": queue.url,
        "queue_arn": queue.arn,
        "function_name": "test-consumer",
        "function_arn": f"arn:aws:lambda:{REGION}:123456789012:function:test-consumer",
        "region": REGION,
        "maximum_concurrency": 1,
        "timeout_seconds": 30.0,
        "memory_size_mb": 256,
    }
    settings.update(overrides)
    return SqsEventSourcePoller(EventSourceConfig(**settings), sqs=sqs, handler=handler)


def poll_until(poller: SqsEventSourcePoller, expected_messages: int) -> None:
    received = 0
    deadline = time.monotonic() + 10
    while received < expected_messages and time.monotonic() < deadline:
        received += poller.poll_once()
    assert received == expected_messages


def message_ids(event: dict[str, Any]) -> list[str]:
    return [record["messageId"] for record in event["Records"]]


def test_a_successful_batch_deletes_every_message(sqs: Any) -> None:
    queue = FifoQueue(sqs)
    for index in range(3):
        queue.send(f"user-{index % 2}", f"body-{index}")
    poller = make_poller(sqs, queue, lambda event, context: {"batchItemFailures": []})

    poll_until(poller, 3)

    assert queue.depth() == (0, 0)
    stats = poller.stats()
    assert (stats.messages_succeeded, stats.messages_failed, stats.batches_failed) == (3, 0, 0)


def test_a_partial_failure_deletes_all_but_the_listed_messages(sqs: Any) -> None:
    queue = FifoQueue(sqs)
    ids = [queue.send(f"user-{index}", f"body-{index}") for index in range(3)]

    events: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        events.append(event)
        return {"batchItemFailures": [{"itemIdentifier": ids[1]}]}

    poller = make_poller(sqs, queue, handler)
    poll_until(poller, 3)

    assert queue.depth() == (0, 1)
    for event in events:
        queue.release(event)
    assert queue.visible_bodies_in_order() == ["body-1"]
    assert poller.stats().messages_failed == 1


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"itemIdentifier": "not-a-message-of-this-batch"}]},
        {"batchItemFailures": [{"wrongKey": "x"}]},
        {"batchItemFailures": "everything"},
        "not an object",
        ["a", "list"],
    ],
    ids=["empty-id", "null-id", "unknown-id", "bad-key", "not-a-list", "string", "list"],
)
def test_a_malformed_response_deletes_nothing(sqs: Any, response: object) -> None:
    queue = FifoQueue(sqs)
    for index in range(3):
        queue.send(f"user-{index}", f"body-{index}")
    poller = make_poller(sqs, queue, lambda event, context: response)

    poll_until(poller, 3)

    assert queue.depth() == (0, 3)
    assert poller.stats().batches_failed == 1
    assert poller.stats().last_error is not None


def test_an_exception_in_the_handler_deletes_nothing(sqs: Any) -> None:
    queue = FifoQueue(sqs)
    for index in range(2):
        queue.send(f"user-{index}", f"body-{index}")

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    poller = make_poller(sqs, queue, handler)
    poll_until(poller, 2)

    assert queue.depth() == (0, 2)
    assert "RuntimeError: boom" in str(poller.stats().last_error)


def test_a_response_that_is_not_json_fails_the_whole_batch(sqs: Any) -> None:
    queue = FifoQueue(sqs)
    queue.send("user-1", "body")
    poller = make_poller(sqs, queue, lambda event, context: {"batchItemFailures": [object()]})

    poll_until(poller, 1)

    assert queue.depth() == (0, 1)


def test_without_report_batch_item_failures_any_return_deletes_everything(sqs: Any) -> None:
    queue = FifoQueue(sqs)
    ids = [queue.send(f"user-{index}", f"body-{index}") for index in range(2)]
    poller = make_poller(
        sqs,
        queue,
        lambda event, context: {"batchItemFailures": [{"itemIdentifier": ids[0]}]},
        report_batch_item_failures=False,
    )

    poll_until(poller, 2)

    assert queue.depth() == (0, 0)


def test_an_invocation_that_overruns_its_timeout_fails_the_batch(sqs: Any) -> None:
    queue = FifoQueue(sqs)
    queue.send("user-1", "body")

    def slow(event: dict[str, Any], context: Any) -> None:
        time.sleep(0.3)

    poller = make_poller(sqs, queue, slow, timeout_seconds=0.1)
    poll_until(poller, 1)

    assert queue.depth() == (0, 1)
    assert "timed out" in str(poller.stats().last_error)


def test_an_overrun_invocation_that_reports_success_deletes_nothing_and_its_message_returns(
    sqs: Any,
) -> None:
    """Lambda kills an invocation at its Timeout: what it would have returned never arrives."""
    queue = FifoQueue(sqs, visibility_timeout=1)
    message_id = queue.send("user-1", "body")
    receives: list[tuple[str, str]] = []

    def slow_but_successful(event: dict[str, Any], context: Any) -> dict[str, Any]:
        receives.extend(
            (r["messageId"], r["attributes"]["ApproximateReceiveCount"]) for r in event["Records"]
        )
        if len(receives) == 1:
            time.sleep(0.3)
        return {"batchItemFailures": []}

    poller = make_poller(sqs, queue, slow_but_successful, timeout_seconds=0.1)
    poll_until(poller, 1)

    assert queue.depth() == (0, 1)  # not deleted: in flight until its visibility timeout ends
    stats = poller.stats()
    assert (stats.messages_succeeded, stats.messages_failed, stats.batches_failed) == (0, 1, 1)
    assert "timed out" in str(stats.last_error)
    # Received again once the 1 s visibility timeout has passed; a quick invocation deletes it.
    poll_until(poller, 1)
    assert receives == [(message_id, "1"), (message_id, "2")]
    assert queue.depth() == (0, 0)
    assert poller.stats().messages_succeeded == 1


def test_the_event_and_context_have_the_shape_lambda_gives_them(sqs: Any) -> None:
    queue = FifoQueue(sqs)
    message_id = queue.send(
        "USER#auth0|abc",
        '{"eventID": "1"}',
        MessageDeduplicationId="dedup-1",
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "user"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    seen: list[tuple[dict[str, Any], Any]] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        seen.append((event, context))

    poller = make_poller(sqs, queue, handler)
    poll_until(poller, 1)

    event, context = seen[0]
    (record,) = event["Records"]
    assert record["messageId"] == message_id
    assert record["body"] == '{"eventID": "1"}'
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queue.arn
    assert record["awsRegion"] == REGION
    assert record["md5OfBody"]
    assert record["md5OfMessageAttributes"]
    attributes = record["attributes"]
    assert attributes["MessageGroupId"] == "USER#auth0|abc"
    assert attributes["MessageDeduplicationId"] == "dedup-1"
    assert attributes["ApproximateReceiveCount"] == "1"
    for name in ("SequenceNumber", "SentTimestamp", "ApproximateFirstReceiveTimestamp", "SenderId"):
        assert attributes[name], name
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "user",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert (
        record["messageAttributes"]["blob"]["binaryValue"] == base64.b64encode(b"\x00\x01").decode()
    )
    # Powertools reads the record as Lambda's would be read.
    parsed = SQSRecord(record)
    assert parsed.attributes.message_group_id == "USER#auth0|abc"
    assert parsed.message_attributes["kind"].string_value == "user"
    assert context.function_name == "test-consumer"
    assert context.function_version == "$LATEST"
    assert context.invoked_function_arn.endswith(":function:test-consumer")
    assert context.memory_limit_in_mb == 256
    assert context.log_group_name == "/aws/lambda/test-consumer"
    assert context.aws_request_id
    assert 0 < context.get_remaining_time_in_millis() <= 30_000


def test_the_powertools_fifo_processor_leaves_only_the_failing_groups_rest(sqs: Any) -> None:
    queue = FifoQueue(sqs)
    for body in ("a1", "a2", "a3"):
        queue.send("group-a", body)
    for body in ("b1", "b2"):
        queue.send("group-b", body)
    handled: list[str] = []
    events: list[dict[str, Any]] = []

    def record_handler(record: SQSRecord) -> None:
        if record.body == "a2":
            raise ValueError("a2 is poison")
        handled.append(record.body)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        events.append(event)
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )

    poller = make_poller(sqs, queue, handler)
    poll_until(poller, 5)

    assert sorted(handled) == ["a1", "b1", "b2"]
    assert queue.depth() == (0, 2)
    for event in events:
        queue.release(event)
    assert queue.visible_bodies_in_order() == ["a2", "a3"]


def test_a_message_that_always_fails_moves_to_the_dead_letter_queue_after_five_receives(
    sqs: Any,
) -> None:
    queue = FifoQueue(sqs, visibility_timeout=1, max_receive_count=5)
    queue.send("user-1", "poison")
    receive_counts: list[str] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        receive_counts.extend(r["attributes"]["ApproximateReceiveCount"] for r in event["Records"])
        raise RuntimeError("always fails")

    poller = make_poller(sqs, queue, handler)
    poller.start()
    try:
        deadline = time.monotonic() + 20
        while queue.depth(queue.dlq_url)[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        poller.stop()

    assert queue.depth(queue.dlq_url) == (1, 0)
    assert queue.depth() == (0, 0)
    assert receive_counts == ["1", "2", "3", "4", "5"]


def test_workers_run_different_groups_concurrently_but_never_one_group_twice(sqs: Any) -> None:
    queue = FifoQueue(sqs)
    for index in range(12):
        queue.send(f"user-{index % 4}", f"{index % 4}:{index}")
    lock = threading.Lock()
    running: dict[str, int] = {}
    overlap = {"max_total": 0, "same_group": 0}
    order: dict[str, list[int]] = {}

    def handler(event: dict[str, Any], context: Any) -> None:
        groups = {r["attributes"]["MessageGroupId"] for r in event["Records"]}
        with lock:
            for group in groups:
                if running.get(group):
                    overlap["same_group"] += 1
                running[group] = running.get(group, 0) + 1
            overlap["max_total"] = max(overlap["max_total"], sum(running.values()))
            for record in event["Records"]:
                group, index = record["body"].split(":")
                order.setdefault(group, []).append(int(index))
        time.sleep(0.1)
        with lock:
            for group in groups:
                running[group] -= 1

    poller = make_poller(sqs, queue, handler, batch_size=1, maximum_concurrency=4)
    poller.start()
    try:
        deadline = time.monotonic() + 15
        while queue.depth() != (0, 0) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        poller.stop()

    assert queue.depth() == (0, 0)
    assert overlap["same_group"] == 0
    assert overlap["max_total"] > 1
    assert all(indexes == sorted(indexes) for indexes in order.values())


def test_an_empty_or_null_response_is_a_success() -> None:
    for response in (None, {}, {"batchItemFailures": None}, {"batchItemFailures": []}):
        outcome = decide_batch_outcome(
            ["m1", "m2"], response=response, error=None, report_batch_item_failures=True
        )
        assert outcome.succeeded == ("m1", "m2")
        assert outcome.failed == ()


def test_a_long_poll_on_the_moto_store_does_not_hold_up_other_requests() -> None:
    store = MotoStore(port=0)
    store.start()
    try:
        sqs = boto3.client(
            "sqs",
            endpoint_url=store.endpoint_url,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        url = sqs.create_queue(QueueName=f"long-poll-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        received: list[str] = []
        waiting = threading.Thread(
            target=lambda: received.extend(
                m["Body"]
                for m in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5).get("Messages", [])
            )
        )
        polling = threading.Event()
        sqs.meta.events.register("before-send.sqs.ReceiveMessage", lambda **_: polling.set())
        waiting.start()
        assert polling.wait(timeout=5)
        # For a second of the five the receive waits, other calls must be answered at once.
        slowest = 0.0
        probing_until = time.monotonic() + 1.0
        while time.monotonic() < probing_until:
            started = time.monotonic()
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            slowest = max(slowest, time.monotonic() - started)
        sqs.send_message(QueueUrl=url, MessageBody="wake up")
        waiting.join(timeout=10)
    finally:
        store.stop()

    assert received == ["wake up"]
    assert slowest < 2


def test_a_deleted_queue_costs_one_warning_per_outage_for_all_workers(
    sqs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    queue = FifoQueue(sqs)
    poller = make_poller(sqs, queue, lambda event, context: {}, maximum_concurrency=3)
    sqs.delete_queue(QueueUrl=queue.url)
    with caplog.at_level("DEBUG", logger="orgsync.local.lambda_.sqs_poller"):
        poller.start()
        try:
            deadline = time.monotonic() + 10
            while sum("retrying" in r.getMessage() for r in caplog.records) < 4:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            poller.stop()
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert [r.levelname for r in retries].count("WARNING") == 1


def test_pausing_waits_for_running_invocations_and_blocks_new_receives(sqs: Any) -> None:
    queue = FifoQueue(sqs)
    started, release = threading.Event(), threading.Event()
    seen: list[str] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.extend(message_ids(event))
        started.set()
        release.wait(10)
        return {"batchItemFailures": []}

    poller = make_poller(sqs, queue, handler)
    queue.send("g1", "first")
    poller.start()
    try:
        assert started.wait(10)
        threading.Timer(0.3, release.set).start()
        with poller.paused():
            # Entered only once the running invocation finished and deleted its message.
            assert poller.active_invocations == 0
            queue.send("g2", "second")
            time.sleep(0.3)
            assert len(seen) == 1  # nothing received while paused
        deadline = time.monotonic() + 10
        while len(seen) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        poller.stop()
