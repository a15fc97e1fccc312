"""The pytest plugin as a suite uses it: a clean stack per test, options that keep the rootdir."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orgsync.local import remote
from orgsync.local.errors import EmbeddedStackError
from orgsync.local.options import StackOptions
from orgsync.local.remote import RemoteStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def _put_user(stack: RemoteStack, user_id: str, org_id: str) -> None:
    stack.client("dynamodb").put_item(
        TableName="poc-users",
        Item={
            "pk": {"S": f"USER#{user_id}"},
            "sk": {"S": "METADATA"},
            "email": {"S": f"{user_id}@example.org"},
            "status": {"S": "ACTIVE"},
            "organizations": {"L": [{"S": org_id}]},
        },
    )


def _count(stack: RemoteStack, table: str) -> int:
    return int(stack.client("dynamodb").scan(TableName=table, ConsistentRead=True)["Count"])


def test_reset_empties_the_stack_and_drops_what_was_not_delivered(
    orgsync_stack: RemoteStack,
) -> None:
    _put_user(orgsync_stack, "delivered", "org-r")
    orgsync_stack.drain()
    _put_user(orgsync_stack, "not-yet-delivered", "org-r")  # no drain: still in the stream

    orgsync_stack.reset()

    assert _count(orgsync_stack, "poc-users") == 0
    assert _count(orgsync_stack, "poc-organizations") == 0
    status = orgsync_stack.status()
    assert all(q.visible == q.in_flight == q.delayed == 0 for q in status.queues)
    assert status.pollers[0].stats.messages_received == 0
    assert status.pipes[0].metrics.sent == 0
    _put_user(orgsync_stack, "next-test", "org-r")
    orgsync_stack.drain()
    # Only the write made after the reset was replicated: its REPLICATION record and membership.
    assert _count(orgsync_stack, "poc-organizations") == 2
    assert orgsync_stack.status().pipes[0].metrics.sent == 1


def _run_pytest(project: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-s", *arguments],
        check=False,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "project" / "tests").mkdir(parents=True)
    (tmp_path / "project" / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = "-p no:randomly"\n'
    )
    (tmp_path / "project" / "tests" / "test_root.py").write_text(
        "def test_root(pytestconfig):\n    print('ROOTDIR', pytestconfig.rootpath)\n"
    )
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "template.yaml").write_text(TEMPLATE.read_text())
    return tmp_path / "project"


def test_a_template_option_written_with_equals_keeps_the_rootdir(project: Path) -> None:
    template = project.parent / "elsewhere" / "template.yaml"
    result = _run_pytest(project, "tests", f"--orgsync-template={template}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ROOTDIR {project}\n" in result.stdout


def test_a_template_option_with_a_space_is_refused_before_it_moves_the_rootdir(
    project: Path,
) -> None:
    template = project.parent / "elsewhere" / "template.yaml"
    result = _run_pytest(project, "tests", "--orgsync-template", str(template))
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "write --orgsync-template=PATH" in result.stderr


def test_a_call_left_unanswered_stops_the_stack_process_instead_of_desynchronising_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = RemoteStack(StackOptions(template_path=TEMPLATE, port=0))
    stack.start()
    try:
        assert stack.status().queues  # answered in time
        monkeypatch.setattr(remote, "_CALL_MARGIN_SECONDS", 0.0)  # no call can be answered now
        with pytest.raises(EmbeddedStackError, match="did not answer status"):
            stack.status()
        monkeypatch.undo()
        # Its late answer can no longer be taken for this call's: the stack is gone.
        with pytest.raises(EmbeddedStackError, match="not running"):
            stack.status()
    finally:
        stack.stop()
