"""The local runtime between changes: the pipe woken by writes and by drains, pollers that long-poll
yet pause at once, and the pipeline's requests skipping HTTP when the store runs in-process.

Each stack has a pipe poll interval far longer than any wait here, so that a write reaching the
consumer shows the pipe was woken, not that its poll came round. Functional checks with generous
timeouts, not timed tests: the benchmark measures the times (`orgsync bench`, runtime figures).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from orgsync.local.servers import MotoStore, serve_in_process
from orgsync.local.stack import EmbeddedStack, StackOptions

pytestmark = pytest.mark.e2e

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
NEVER = 600.0  # a pipe poll interval no test waits for


def stack(**options: Any) -> EmbeddedStack:
    prefix = f"rt{uuid.uuid4().hex[:6]}-"
    return EmbeddedStack(
        StackOptions(
            template_path=TEMPLATE,
            port=0,
            parameters={"NamePrefix": prefix, "LogLevel": "WARNING"},
            **options,
        )
    )


@pytest.fixture
def woken() -> Iterator[EmbeddedStack]:
    with stack(pipe_poll_interval=NEVER, wake_pipes_on_writes=True) as running:
        yield running


def put_user(running: EmbeddedStack, user_id: str) -> None:
    running.client("dynamodb").put_item(
        TableName=running.model.table("UsersTable").name,
        Item={
            "pk": {"S": f"USER#{user_id}"},
            "sk": {"S": "METADATA"},
            "email": {"S": "someone@example.org"},
            "status": {"S": "ACTIVE"},
            "organizations": {"L": [{"S": "org-rt"}]},
        },
    )


def member_seen(running: EmbeddedStack, user_id: str, timeout: float = 10.0) -> bool:
    dynamodb = running.client("dynamodb")
    table = running.model.table("OrganizationsTable").name
    key = {"pk": {"S": "ORGANIZATION#org-rt"}, "sk": {"S": f"MEMBERSHIP#{user_id}"}}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Item" in dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True):
            return True
        time.sleep(0.01)
    return False


def test_a_write_to_the_users_table_wakes_the_pipe_when_asked_to(woken: EmbeddedStack) -> None:
    put_user(woken, "auth0|woken")
    assert member_seen(woken, "auth0|woken")


def test_without_the_wake_up_the_pipe_keeps_its_pace_and_a_drain_wakes_it() -> None:
    with stack(pipe_poll_interval=NEVER) as running:
        running.drain(timeout=10)  # the first pass, then idle for NEVER seconds
        time.sleep(0.5)  # past the one pass a drain's last wake-up may still start
        put_user(running, "auth0|paced")
        assert not member_seen(running, "auth0|paced", timeout=1.0)
        running.drain(timeout=10)  # asks the pipe for its passes instead of waiting them out
        assert member_seen(running, "auth0|paced", timeout=1.0)


def test_a_reset_pauses_pollers_whose_long_polls_are_waiting(woken: EmbeddedStack) -> None:
    assert woken.poller.config.receive_wait_seconds == 20  # long polls, as Lambda makes them
    time.sleep(0.5)  # a receive is waiting now
    began = time.monotonic()
    woken.reset()
    assert time.monotonic() - began < 10  # ended the wait; did not sit out 20 s
    put_user(woken, "auth0|after-reset")
    assert member_seen(woken, "auth0|after-reset")


def test_the_pipeline_s_own_threads_skip_http_and_other_threads_keep_it() -> None:
    store = MotoStore()
    store.start()
    served: list[str] = []

    def application(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        served.append(threading.current_thread().name)
        start_response("200 OK", [("Content-Type", "application/x-amz-json-1.0")])
        return [b'{"TableNames": ["in-process"]}']

    stop = serve_in_process(
        store.endpoint_url,
        lambda service: application if service == "dynamodb" else None,
        routed_thread=lambda: threading.current_thread().name.startswith("routed-"),
    )
    try:
        client = boto3.session.Session().client(
            "dynamodb",
            endpoint_url=store.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        names: dict[str, list[str]] = {}

        def list_tables(name: str) -> None:
            names[name] = client.list_tables()["TableNames"]

        for name in ("routed-1", "other-1"):
            thread = threading.Thread(target=list_tables, args=(name,), name=name)
            thread.start()
            thread.join(10)
    finally:
        stop()
        store.stop()
    assert names["routed-1"] == ["in-process"]  # answered by the app, in the caller's thread
    assert "in-process" not in names["other-1"]  # moto's own answer, over HTTP
    assert served == ["routed-1"]
