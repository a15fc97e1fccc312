"""SerializedApplication never lets two requests into moto at once, long polls included.

moto's SQS is not thread-safe: a ReceiveMessage beside another receive or a DeleteMessage can mark
a message in flight after it left the queue (deleted, or moved to the DLQ), and its FIFO message
group then never delivers again. A fake WSGI app stands in for moto to watch for overlap.
"""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any

from orgsync.local.servers.serialized import (
    ORIGIN_HEADER,
    RECHECK_SECONDS,
    SerializedApplication,
)


class WatchingApp:
    """Answers ReceiveMessage with no messages `empty_answers` times, then with one message."""

    def __init__(self, empty_answers: int = 0) -> None:
        self.inside = 0
        self.most_inside = 0
        self.waits_seen: list[str] = []
        self.empty_answers = empty_answers
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            time.sleep(0.005)  # long enough for another thread to barge in, were it allowed
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            answer: dict[str, Any] = {}
            if environ.get("HTTP_X_AMZ_TARGET") == "AmazonSQS.ReceiveMessage":
                self.waits_seen.append(str(json.loads(body).get("WaitTimeSeconds")))
                with self._lock:
                    found = self.empty_answers <= 0
                    self.empty_answers -= 1
                answer = {"Messages": [{"Body": "hello"}]} if found else {}
            elif b"Action=ReceiveMessage" in body:
                self.waits_seen.append(
                    dict(urllib.parse.parse_qsl(body.decode())).get("WaitTimeSeconds", "")
                )
                start_response("200 OK", [("Content-Type", "text/xml")])
                return [b"<ReceiveMessageResult><Message><Body>hello</Body></Message>"]
            start_response("200 OK", [("Content-Type", "application/x-amz-json-1.0")])
            return [json.dumps(answer).encode()]
        finally:
            with self._lock:
                self.inside -= 1


def call(application: SerializedApplication, target: str, body: bytes, **environ: str) -> bytes:
    statuses: list[str] = []
    environment = {
        "HTTP_X_AMZ_TARGET": target,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **environ,
    }
    answer = b"".join(application(environment, lambda status, _: statuses.append(status)))
    assert statuses == ["200 OK"]
    return answer


def receive(wait: float | bool | None) -> bytes:
    request: dict[str, Any] = {"QueueUrl": "http://localhost/123456789012/q.fifo"}
    if wait is not None:
        request["WaitTimeSeconds"] = wait
    return json.dumps(request).encode()


def test_long_polls_and_other_requests_never_overlap_inside_moto():
    app = WatchingApp(empty_answers=40)
    application = SerializedApplication(app)
    threads = [
        threading.Thread(
            target=call, args=(application, "AmazonSQS.ReceiveMessage", receive(wait=2))
        )
        for _ in range(4)
    ] + [
        threading.Thread(target=call, args=(application, "AmazonSQS.DeleteMessage", b"{}"))
        for _ in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert app.most_inside == 1
    assert set(app.waits_seen) == {"0"}  # moto itself is never asked to wait


def test_a_long_poll_answers_as_soon_as_a_short_poll_finds_messages():
    application = SerializedApplication(WatchingApp(empty_answers=3))
    answer = call(application, "AmazonSQS.ReceiveMessage", receive(wait=20))
    assert json.loads(answer) == {"Messages": [{"Body": "hello"}]}


def test_a_json_wait_that_is_not_an_integer_is_read_as_moto_reads_it():
    # moto takes int(1.5) == 1 and int(True) == 1: left to moto, it would wait under the lock.
    for wait in (1.5, True):
        app = WatchingApp()
        call(SerializedApplication(app), "AmazonSQS.ReceiveMessage", receive(wait=wait))
        assert app.waits_seen == ["0"]


def test_a_receive_without_a_wait_waits_as_long_as_its_queue_says():
    asked: list[tuple[str, str | None]] = []

    def queue_wait_seconds(queue_url: str, region: str | None) -> int:
        asked.append((queue_url, region))
        return 1

    application = SerializedApplication(
        WatchingApp(empty_answers=1000), queue_wait_seconds=queue_wait_seconds
    )
    started = time.monotonic()
    signature = (
        "AWS4-HMAC-SHA256 Credential=testing/20261124/eu-west-1/sqs/aws4_request, "
        "SignedHeaders=host, Signature=0"
    )
    answer = call(
        application,
        "AmazonSQS.ReceiveMessage",
        receive(wait=None),
        HTTP_AUTHORIZATION=signature,
    )
    assert json.loads(answer) == {}
    assert time.monotonic() - started >= 1
    assert asked == [("http://localhost/123456789012/q.fifo", "eu-west-1")]


def test_a_query_protocol_long_poll_is_short_polled_too():
    app = WatchingApp()
    application = SerializedApplication(app)
    form = urllib.parse.urlencode(
        {"Action": "ReceiveMessage", "QueueUrl": "http://localhost/1/q", "WaitTimeSeconds": "5"}
    ).encode()
    call(application, "", form, CONTENT_TYPE="application/x-www-form-urlencoded")
    assert app.waits_seen == ["0"]


def test_a_receive_that_does_not_wait_is_passed_on_as_it_is():
    app = WatchingApp()
    call(SerializedApplication(app), "AmazonSQS.ReceiveMessage", receive(wait=0))
    assert app.waits_seen == ["0"]


class QueueApp:
    """A one-queue stand-in for moto: a send puts a message, a receive takes what is there."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.receives = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET")
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        answer: dict[str, Any] = {}
        if target == "AmazonSQS.SendMessage":
            self.messages.append("hello")
        elif target == "AmazonSQS.ReceiveMessage":
            self.receives += 1
            if self.messages:
                answer = {"Messages": [{"Body": self.messages.pop()}]}
        start_response("200 OK", [("Content-Type", "application/x-amz-json-1.0")])
        return [json.dumps(answer).encode()]


def test_a_waiting_long_poll_answers_when_a_send_arrives_and_polls_little_meanwhile():
    app = QueueApp()
    application = SerializedApplication(app)
    answers: list[bytes] = []
    waiter = threading.Thread(
        target=lambda: answers.append(
            call(application, "AmazonSQS.ReceiveMessage", receive(wait=20))
        )
    )
    waiter.start()
    time.sleep(1.0)
    sent_at = time.monotonic()
    call(application, "AmazonSQS.SendMessage", b"{}")
    waiter.join(5)
    assert json.loads(answers[0]) == {"Messages": [{"Body": "hello"}]}
    assert time.monotonic() - sent_at < 1  # woken by the send, not by its 20 s deadline
    # Over a second of waiting: its first poll, one per RECHECK_SECONDS, and the one the send woke.
    assert app.receives <= 2 + 1.0 / RECHECK_SECONDS + 1


def test_an_interrupt_ends_the_long_polls_of_its_queue_only():
    app = QueueApp()
    application = SerializedApplication(app)
    other = json.dumps(
        {"QueueUrl": "http://localhost/123456789012/other.fifo", "WaitTimeSeconds": 2}
    )
    ended: dict[str, float] = {}

    def wait(name: str, body: bytes) -> None:
        began = time.monotonic()
        call(application, "AmazonSQS.ReceiveMessage", body)
        ended[name] = time.monotonic() - began

    waiters = [
        threading.Thread(target=wait, args=("ours", receive(wait=20))),
        threading.Thread(target=wait, args=("other", other.encode())),
    ]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.3)
    SerializedApplication.interrupt("http://127.0.0.1:9/123456789012/q.fifo")  # any host: by name
    waiters[0].join(5)
    assert ended["ours"] < 2
    waiters[1].join(5)
    assert ended["other"] >= 2  # it waited its whole wait


def test_the_store_counts_its_cpu_by_the_origin_a_request_names():
    application = SerializedApplication(QueueApp())
    before = SerializedApplication.cpu_seconds()
    for _ in range(20):
        call(application, "AmazonSQS.SendMessage", b"{}", HTTP_X_ORGSYNC_ORIGIN="bench-writer")
    after = SerializedApplication.cpu_seconds()
    assert after["bench-writer"] > before.get("bench-writer", 0.0)
    assert ORIGIN_HEADER == "X-Orgsync-Origin"  # what HTTP_X_ORGSYNC_ORIGIN comes from


def test_watchers_hear_of_accepted_writes_to_their_tables_only():
    application = SerializedApplication(QueueApp())
    heard: list[str] = []
    unwatch = SerializedApplication.writes.watch(["users"], lambda: heard.append("users"))
    try:
        put = json.dumps({"TableName": "users", "Item": {}}).encode()
        call(application, "DynamoDB_20120810.PutItem", put)
        call(application, "DynamoDB_20120810.PutItem", json.dumps({"TableName": "orgs"}).encode())
        call(application, "DynamoDB_20120810.GetItem", put)
    finally:
        unwatch()
    call(application, "DynamoDB_20120810.PutItem", put)
    assert heard == ["users"]
