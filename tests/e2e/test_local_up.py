"""`orgsync local up` as an operator runs it: it keeps running, and it keeps quiet.

Each test starts the real command in a subprocess on a free port and talks to it as any other
client would, over HTTP.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from integration_stack import client

from orgsync.local.servers import find_free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
_LOCAL_UP = (sys.executable, "-m", "orgsync", "local", "up")


def _environment() -> dict[str, str]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "ORGSYNC_"))
    }
    return environment | {"COLUMNS": "120", "NO_COLOR": "1"}


@contextmanager
def local_up(
    tmp_path: Path, *options: str, environment: dict[str, str] | None = None
) -> Iterator[tuple[str, Path]]:
    """`orgsync local up OPTIONS` on a free port; yields (endpoint, file of its terminal output)."""
    output = tmp_path / "terminal.txt"
    with output.open("wb") as terminal:
        process = subprocess.Popen(
            # Port 0: the store binds a free one itself, and the banner names it.
            [*_LOCAL_UP, "--port", "0", "--template", str(TEMPLATE), *options],
            stdout=terminal,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_environment() | (environment or {}),
        )
    try:
        _wait_until(lambda: "export AWS_ENDPOINT_URL=" in output.read_text(), process, output)
        banner = re.search(r"AWS_ENDPOINT_URL=(http://127\.0\.0\.1:\d+)", output.read_text())
        assert banner is not None, output.read_text()
        yield banner.group(1), output
        assert process.poll() is None, f"local up ended: {output.read_text()[-3000:]}"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until(
    condition: Callable[[], bool],
    process: subprocess.Popen[bytes],
    output: Path,
    timeout: float = 60,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            raise AssertionError(f"local up ended: {output.read_text()[-3000:]}")
        time.sleep(0.1)
    raise AssertionError(f"condition not met in {timeout:g}s: {output.read_text()[-3000:]}")


def _put_user(dynamodb: Any, user_id: str, org_id: str) -> None:
    dynamodb.put_item(
        TableName="poc-users",
        Item={
            "pk": {"S": f"USER#{user_id}"},
            "sk": {"S": "METADATA"},
            "email": {"S": f"{user_id}@example.org"},
            "status": {"S": "ACTIVE"},
            "organizations": {"L": [{"S": org_id}]},
        },
    )


def _is_member(dynamodb: Any, user_id: str, org_id: str) -> bool:
    item = dynamodb.get_item(
        TableName="poc-organizations",
        Key={"pk": {"S": f"ORGANIZATION#{org_id}"}, "sk": {"S": f"MEMBERSHIP#{user_id}"}},
        ConsistentRead=True,
    )
    return "Item" in item


def _queue_exists(sqs: Any, name: str) -> bool:
    try:
        sqs.get_queue_url(QueueName=name)
    except ClientError:
        return False
    return True


def test_a_deleted_queue_does_not_end_local_up(tmp_path: Path) -> None:
    with local_up(tmp_path) as (endpoint, output):
        sqs = client("sqs", endpoint)
        url = sqs.get_queue_url(QueueName="user-table-dynamo-pipe-dlq")["QueueUrl"]
        sqs.delete_queue(QueueUrl=url)
        time.sleep(5)  # two status refreshes: each used to end the process
        dynamodb = client("dynamodb", endpoint)
        _put_user(dynamodb, "after-delete", "org-a")
        deadline = time.monotonic() + 30
        while not _is_member(dynamodb, "after-delete", "org-a"):
            assert time.monotonic() < deadline, output.read_text()[-3000:]
            time.sleep(0.2)
    assert "cannot read the depth" not in output.read_text()


def test_local_up_recreates_deleted_resources_when_asked(tmp_path: Path) -> None:
    with local_up(tmp_path, "--recreate-missing") as (endpoint, output):
        sqs, dynamodb = client("sqs", endpoint), client("dynamodb", endpoint)
        url = sqs.get_queue_url(QueueName="user-dynamo-stream.fifo")["QueueUrl"]
        sqs.delete_queue(QueueUrl=url)
        dynamodb.delete_table(TableName="poc-users")
        deadline = time.monotonic() + 30
        while not (_queue_exists(sqs, "user-dynamo-stream.fifo") and _tables(dynamodb)):
            assert time.monotonic() < deadline, output.read_text()[-3000:]
            time.sleep(0.2)
        # The pipe follows the recreated table's new stream.
        _put_user(dynamodb, "after-recreate", "org-b")
        while not _is_member(dynamodb, "after-recreate", "org-b"):
            assert time.monotonic() < deadline + 30, output.read_text()[-3000:]
            time.sleep(0.2)
    assert "recreated" in output.read_text()


def _tables(dynamodb: Any) -> bool:
    return "poc-users" in dynamodb.list_tables()["TableNames"]


def test_the_terminal_gets_warnings_and_the_log_file_the_rest(tmp_path: Path) -> None:
    log_file = tmp_path / "orgsync.log"
    with local_up(tmp_path, "--log-file", str(log_file)) as (endpoint, output):
        dynamodb = client("dynamodb", endpoint)
        for index in range(5):
            _put_user(dynamodb, f"quiet-{index}", "org-q")
        deadline = time.monotonic() + 30
        while not all(_is_member(dynamodb, f"quiet-{index}", "org-q") for index in range(5)):
            assert time.monotonic() < deadline, output.read_text()[-3000:]
            time.sleep(0.2)
    terminal = output.read_text()
    assert '"level"' not in terminal, terminal[-3000:]
    assert "record applied" not in terminal
    # What deploys to AWS and does not run here is named once, in the banner.
    banner = next(line for line in terminal.splitlines() if "not emulated:" in line)
    for logical_id in ("ReconcileStateMachine", "ReconcileFunction", "ReconcileResultsBucket"):
        assert logical_id in banner
    applied = [
        json.loads(line) for line in log_file.read_text().splitlines() if '"record applied"' in line
    ]
    assert len(applied) >= 5
    assert all("@" not in json.dumps(record) for record in applied)  # no emails in logs


def test_state_dir_with_the_moto_store_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [*_LOCAL_UP, "--port", "0", "--state-dir", str(tmp_path / "state")],
        check=False,
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "moto store keeps its state in memory only" in result.stderr
    assert not (tmp_path / "state").exists()


def test_an_exported_endpoint_does_not_stop_local_up_from_serving_its_own(tmp_path: Path) -> None:
    # What the banner of another `local up` tells a shell to export; here a closed port.
    elsewhere = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{find_free_port()}"}
    with local_up(tmp_path, environment=elsewhere) as (endpoint, output):
        dynamodb = client("dynamodb", endpoint)
        _put_user(dynamodb, "own-store", "org-e")
        deadline = time.monotonic() + 30
        while not _is_member(dynamodb, "own-store", "org-e"):
            assert time.monotonic() < deadline, output.read_text()[-3000:]
            time.sleep(0.2)
    assert "(store moto)" in output.read_text()
