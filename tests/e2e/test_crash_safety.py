"""kill -9 of the pipe and consumer process under a sustained load loses no change.

The store runs in its own process (`orgsync local up --no-pipeline`) and outlives the pipeline
process (`orgsync --endpoint-url … local up`), which is SIGKILLed at random points and started
again. Afterwards a pipeline in this process drains what is left; every user's last write must be
replicated and the invariant must hold. The queue's visibility timeout is shortened (local only)
so messages in flight at a kill come back in a second.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from orgsync.local.servers import find_free_port
from orgsync.local.stack import EmbeddedStack, StackOptions
from orgsync.ops.dlq import RedriveMethod, redrive
from orgsync.store.scan import check_invariant

pytestmark = pytest.mark.e2e

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
KILLS = 4
USERS = 12
ORGS = [f"org-{index}" for index in range(6)]
VISIBILITY_TIMEOUT = "1"


def _orgsync(*args: str) -> list[str]:
    return [sys.executable, "-m", "orgsync", *args]


def _environment() -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "ORGSYNC_NAME_PREFIX"))
    }
    environment.update(
        AWS_ACCESS_KEY_ID="orgsynclocal",
        AWS_SECRET_ACCESS_KEY="orgsynclocal",
        AWS_REGION="us-east-1",
        NO_COLOR="1",
    )
    return environment


def _wait_for_line(log: Path, text: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise AssertionError(f"process exited early: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"no {text!r} in {timeout:g}s: {log.read_text(errors='replace')[-2000:]}")


@pytest.fixture
def store_process(tmp_path: Path) -> Iterator[str]:
    """`orgsync local up --no-pipeline` on a free port: the store that outlives the pipeline."""
    port = find_free_port()
    log = tmp_path / "store.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            _orgsync(
                "--name-prefix",
                "crash-",
                "local",
                "up",
                "--no-pipeline",
                "--port",
                str(port),
                "--template",
                str(TEMPLATE),
                "--visibility-timeout",
                VISIBILITY_TIMEOUT,
            ),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_environment(),
        )
    try:
        _wait_for_line(log, "orgsync local stack", process, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class Writer:
    """A sustained load of user writes; remembers each user's last write."""

    def __init__(self, endpoint_url: str, rng: random.Random) -> None:
        self.dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="orgsynclocal",
            aws_secret_access_key="orgsynclocal",
        )
        self.rng = rng
        self.writes = 0
        self.last: dict[str, tuple[str, ...] | None] = {}
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.run_id = uuid.uuid4().hex[:6]
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                self.write_one()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def write_one(self) -> None:
        user_id = f"auth0|{self.run_id}{self.rng.randrange(USERS):03d}"
        key = {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "METADATA"}}
        if self.rng.random() < 0.1:
            self.dynamodb.delete_item(TableName="crash-poc-users", Key=key)
            self.last[user_id] = None
        else:
            orgs = tuple(self.rng.sample(ORGS, self.rng.randrange(4)))
            self.dynamodb.put_item(
                TableName="crash-poc-users",
                Item={
                    **key,
                    "email": {"S": f"{self.writes}@example.org"},
                    "status": {"S": self.rng.choice(["ACTIVE", "SUSPENDED"])},
                    "organizations": {"L": [{"S": org} for org in orgs]},
                },
            )
            self.last[user_id] = orgs
        self.writes += 1
        time.sleep(0.01)  # a steady load rate, not a wait for anything

    def wait_for_writes(self, count: int, timeout: float = 30) -> None:
        target = self.writes + count
        deadline = time.monotonic() + timeout
        while self.writes < target and time.monotonic() < deadline and self.error is None:
            time.sleep(0.01)


def _memberships(dynamodb: Any, user_id: str) -> set[str]:
    found: set[str] = set()
    for org in ORGS:
        item = dynamodb.get_item(
            TableName="crash-poc-organizations",
            Key={"pk": {"S": f"ORGANIZATION#{org}"}, "sk": {"S": f"MEMBERSHIP#{user_id}"}},
            ConsistentRead=True,
        ).get("Item")
        if item is not None:
            found.add(org)
    return found


def test_sigkilled_pipelines_lose_no_change_and_the_invariant_holds(
    store_process: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("ORGSYNC_CRASH_SEED", random.randrange(2**31)))
    rng = random.Random(seed)
    writer = Writer(store_process, rng)
    writer.thread.start()
    try:
        for attempt in range(KILLS):
            log = tmp_path / f"pipeline-{attempt}.log"
            with log.open("wb") as output:
                pipeline = subprocess.Popen(
                    _orgsync(
                        "--endpoint-url",
                        store_process,
                        "--name-prefix",
                        "crash-",
                        "local",
                        "up",
                        "--template",
                        str(TEMPLATE),
                        "--visibility-timeout",
                        VISIBILITY_TIMEOUT,
                    ),
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=_environment(),
                )
            try:
                # Kill at a random point: sometimes while it starts, mostly while it works.
                if rng.random() < 0.8:
                    _wait_for_line(log, "orgsync local stack", pipeline, timeout=60)
                writer.wait_for_writes(rng.randrange(5, 60))
            finally:
                pipeline.send_signal(signal.SIGKILL)
                pipeline.wait(timeout=10)
            assert writer.error is None, f"seed {seed}: {writer.error!r}"
    finally:
        writer.stop.set()
        writer.thread.join(timeout=10)
    assert writer.error is None, f"seed {seed}: {writer.error!r}"

    options = StackOptions(
        template_path=TEMPLATE,
        endpoint_url=store_process,
        parameters={"NamePrefix": "crash-", "LogLevel": "WARNING"},
        pipe_poll_interval=0.05,
        visibility_timeout_seconds=int(VISIBILITY_TIMEOUT),
    )
    with EmbeddedStack(options) as stack:
        stack.drain(timeout=60)
        # A message killed in flight five times is dead-lettered: the operator redrives it.
        queues = stack.resources.queue_urls
        dead_lettered = stack.status().queue("crash-user-dynamo-stream-deadletter.fifo").visible
        if dead_lettered:
            redrive(
                stack.client("sqs"),
                queues["UserStreamDeadLetterQueue"],
                queues["UserStreamQueue"],
                method=RedriveMethod.COPY,
                max_messages=dead_lettered,
            )
            stack.drain(timeout=60)
        dynamodb = stack.client("dynamodb")
        report = check_invariant(dynamodb, "crash-poc-users", "crash-poc-organizations")
        lost = {
            user_id: (orgs, _memberships(dynamodb, user_id))
            for user_id, orgs in writer.last.items()
            if set(orgs or ()) != _memberships(dynamodb, user_id)
        }

    assert writer.writes > KILLS * 5
    assert not lost, f"seed {seed}: changes lost (expected, found): {lost}"
    assert report.holds, f"seed {seed}: {report.drift[:10]}"
