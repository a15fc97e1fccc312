"""orgsync as another team meets it: a wheel installed in a fresh venv, used from another project.

The venv gets orgsync from its wheel only (its dependencies through a .pth to this checkout's
venv, so the test needs no network), and runs in a directory outside this checkout: no
template.yaml there, no conftest of ours. The project's own suite holds two tests that would
see each other's data without the per-test reset, one that uses moto's `mock_aws()` (which
resets moto's backends in its process), and one that sends moto's reset to the stack.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

CHECKOUT = Path(__file__).resolve().parents[2]
_PIP = (sys.executable, "-m", "pip")

_PROJECT_TESTS = '''
"""A team's own tests of its own writer code, against the orgsync stack."""

import json
import urllib.request

import boto3
from moto import mock_aws


def add_member(dynamodb, user_id, org_id):
    """The team's writer: one user item, in orgsync's users-table format."""
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


def members(dynamodb, org_id):
    items = dynamodb.query(
        TableName="poc-organizations",
        KeyConditionExpression="pk = :pk AND begins_with(sk, :member)",
        ExpressionAttributeValues={
            ":pk": {"S": f"ORGANIZATION#{org_id}"},
            ":member": {"S": "MEMBERSHIP#"},
        },
        ConsistentRead=True,
    )["Items"]
    return sorted(item["sk"]["S"].removeprefix("MEMBERSHIP#") for item in items)


def test_alice_joins_the_org(orgsync_stack, orgsync_drain):
    dynamodb = orgsync_stack.client("dynamodb")
    add_member(dynamodb, "alice", "org-shared")
    orgsync_drain()
    assert members(dynamodb, "org-shared") == ["alice"]


def test_a_suite_of_our_own_that_uses_moto_mocks():
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        client.create_queue(QueueName="our-own-queue")
        assert len(client.list_queues()["QueueUrls"]) == 1


def test_bob_joins_the_org(orgsync_stack, orgsync_drain):
    dynamodb = orgsync_stack.client("dynamodb")
    add_member(dynamodb, "bob", "org-shared")
    orgsync_drain()
    assert members(dynamodb, "org-shared") == ["bob"]


def test_a_moto_reset_sent_to_the_stack_leaves_it_running(orgsync_stack, orgsync_drain):
    request = urllib.request.Request(orgsync_stack.endpoint_url + "/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).read()
    dynamodb = orgsync_stack.client("dynamodb")
    add_member(dynamodb, "carol", "org-shared")
    orgsync_drain()
    assert members(dynamodb, "org-shared") == ["carol"]


def test_the_session_stack_keeps_what_tests_wrote(orgsync_session_stack, orgsync_drain):
    dynamodb = orgsync_session_stack.client("dynamodb")
    add_member(dynamodb, "dave", "org-kept")
    orgsync_drain()
    assert members(dynamodb, "org-kept") == ["dave"]
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding orgsync from its wheel; returns the venv's bin directory."""
    root = tmp_path_factory.mktemp("adoption")
    # Built from a copy: setuptools leaves build/ and *.egg-info where it builds, and a stale
    # build/lib in the checkout would put deleted modules into the wheel.
    source = root / "source"
    shutil.copytree(
        CHECKOUT / "src",
        source / "src",
        symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("pyproject.toml", "README.md", "template.yaml"):
        shutil.copy2(CHECKOUT / name, source / name)
    wheels = root / "wheels"
    subprocess.run(
        [*_PIP, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(source)],
        check=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("orgsync-*.whl")
    environment = root / "venv"
    venv.create(environment, with_pip=False)
    bin_dir = environment / "bin"
    purelib = subprocess.run(
        [str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # orgsync's dependencies come from this checkout's venv, after the wheel's own files.
    Path(purelib, "zz-orgsync-dependencies.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n"
    )
    subprocess.run(
        [*_PIP, "install", "--no-deps", "-q", "--target", purelib, str(wheel)],
        check=True,
        timeout=300,
    )
    # The console script, as pip would write it into the venv.
    script = bin_dir / "orgsync"
    script.write_text(
        f"#!{bin_dir / 'python'}\nimport sys\nfrom orgsync.cli import app\nsys.exit(app())\n"
    )
    script.chmod(0o755)
    return bin_dir


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Another team's project: its own tests, no template.yaml, nothing of this checkout."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_memberships.py").write_text(textwrap.dedent(_PROJECT_TESTS))
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')
    return tmp_path


def _environment() -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "ORGSYNC_", "PYTEST_"))
    }
    return environment | {"COLUMNS": "200", "NO_COLOR": "1"}


def _run(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_wheel_imports_orgsync_from_itself_not_from_this_checkout(
    installed: Path, tmp_path: Path
) -> None:
    found = _run(
        [str(installed / "python"), "-c", "import orgsync.testing as t; print(t.__file__)"],
        cwd=tmp_path,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    assert not found.stdout.strip().startswith(str(CHECKOUT)), found.stdout


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_project_tests_its_own_writer_with_the_fixtures(
    installed: Path, project: Path, workers: list[str]
) -> None:
    result = _run(
        [str(installed / "python"), "-m", "pytest", "-p", "no:randomly", "-q", *workers],
        cwd=project,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "5 passed" in result.stdout, result.stdout[-2000:]


def test_orgsync_demo_runs_from_another_directory(installed: Path, tmp_path: Path) -> None:
    result = _run([str(installed / "orgsync"), "demo"], cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
