"""The embedded moto server's one-request-at-a-time rule keeps SQS long polls working.

Long polls are short polls under the rule, with pauses outside it: a client still sees SQS's
long poll (tests/unit/test_serialized_moto.py shows moto is never entered twice at once).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError
from integration_stack import client

_names = itertools.count()


def fifo_queue(sqs: Any, **attributes: str) -> str:
    name = f"long-poll-{next(_names)}-{uuid.uuid4().hex[:6]}.fifo"
    created = sqs.create_queue(
        QueueName=name,
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true", **attributes},
    )
    return str(created["QueueUrl"])


def send_later(sqs: Any, queue_url: str, delay: float) -> tuple[threading.Thread, list[float]]:
    """Send one message after `delay`; record how long the send itself took."""
    took: list[float] = []

    def send() -> None:
        time.sleep(delay)
        started = time.monotonic()
        sqs.send_message(QueueUrl=queue_url, MessageBody="hello", MessageGroupId="g")
        took.append(time.monotonic() - started)

    thread = threading.Thread(target=send)
    thread.start()
    return thread, took


def test_a_long_poll_gets_a_message_sent_while_it_waits(moto_endpoint: str):
    sqs = client("sqs", moto_endpoint)
    queue_url = fifo_queue(sqs)
    sender, send_took = send_later(sqs, queue_url, delay=0.3)
    received = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5)
    sender.join()
    assert [message["Body"] for message in received["Messages"]] == ["hello"]
    # The send was not held behind the waiting receive (it would have taken the whole wait).
    assert send_took[0] < 2


def test_a_long_poll_on_an_empty_queue_answers_empty_once_the_wait_is_over(moto_endpoint: str):
    sqs = client("sqs", moto_endpoint)
    queue_url = fifo_queue(sqs)
    started = time.monotonic()
    received = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)
    assert received.get("Messages", []) == []
    assert time.monotonic() - started >= 1


def test_a_receive_without_a_wait_uses_the_queues_receive_wait_time(moto_endpoint: str):
    sqs = client("sqs", moto_endpoint)
    queue_url = fifo_queue(sqs, ReceiveMessageWaitTimeSeconds="5")
    sender, _ = send_later(sqs, queue_url, delay=0.3)
    received = sqs.receive_message(QueueUrl=queue_url)
    sender.join()
    assert [message["Body"] for message in received["Messages"]] == ["hello"]


def test_an_invalid_wait_is_still_moto_s_error(moto_endpoint: str):
    sqs = client("sqs", moto_endpoint)
    queue_url = fifo_queue(sqs)
    with pytest.raises(ClientError, match="WaitTimeSeconds"):
        sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=25)
