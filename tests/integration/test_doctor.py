"""`orgsync doctor` as a user runs it: the installed command in a subprocess with a PATH that has no
SAM CLI, and the stack line against a real CloudFormation API (moto server over HTTP)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from integration_stack import CLEAN_CLI_ENV
from typer.testing import CliRunner

from orgsync.cli import app

ROOT = Path(__file__).resolve().parents[2]
ORGSYNC = Path(sys.executable).parent / "orgsync"


def run_doctor(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # An empty directory for PATH: no sam, make, docker or python3; HOME without ~/.aws.
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    environment = {
        "PATH": str(empty),
        "HOME": str(tmp_path),
        "NO_COLOR": "1",
        "COLUMNS": "400",
    }
    return subprocess.run(
        [str(ORGSYNC), "doctor", "--template", str(ROOT / "template.yaml"), *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_without_sam_on_path_doctor_fails_the_sam_line_with_the_install_command(
    tmp_path: Path,
) -> None:
    result = run_doctor(tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    (index,) = [i for i, line in enumerate(lines) if line.split()[:2] == ["fail", "sam"]]
    assert lines[index].endswith("SAM CLI not found on PATH")
    fix = lines[index + 1].strip()
    assert fix.startswith("fix: install the AWS SAM CLI >= 1.129.0")
    assert "pip install aws-sam-cli" in fix
    assert lines[-1] == "not ready: fix the lines marked fail"


def test_doctor_json_names_each_check_with_its_status_and_hint(tmp_path: Path) -> None:
    result = run_doctor(tmp_path, "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    checks = {check["name"]: check for check in report["checks"]}
    assert list(checks) == ["sam", "build", "task", "credentials", "region", "stack"]
    assert checks["sam"]["status"] == "fail"
    assert "aws-sam-cli" in checks["sam"]["hint"]
    # No make, pip or container runtime on this PATH either; no credentials in this HOME.
    assert checks["build"]["status"] == "fail"
    assert checks["credentials"]["status"] == "fail"
    assert checks["stack"]["status"] == "skip"
    assert "no credentials" in checks["stack"]["detail"]


def test_a_template_that_is_not_there_fails_the_build_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ORGSYNC), "doctor", "--json"],
        cwd=tmp_path,  # no template.yaml here
        env={"PATH": "", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    assert checks["build"]["status"] == "fail"
    assert "cannot read template template.yaml" in checks["build"]["detail"]
    assert "--template" in checks["build"]["hint"]


# ---------------------------------------------------------------- the stack, over HTTP


@pytest.fixture
def cloudformation(moto_endpoint: str) -> Any:
    return boto3.client(
        "cloudformation",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def doctor_stack_line(endpoint: str, stack_name: str) -> dict[str, Any]:
    environment = {
        **CLEAN_CLI_ENV,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }
    result = CliRunner().invoke(
        app,
        [
            "--endpoint-url",
            endpoint,
            "doctor",
            "--stack-name",
            stack_name,
            "--template",
            str(ROOT / "template.yaml"),
            "--json",
        ],
        env=environment,
    )
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    assert checks["credentials"] == {
        "name": "credentials",
        "status": "ok",
        "detail": "AWS credentials resolve (from env)",
        "hint": None,
    }
    return checks["stack"]


def test_a_stack_not_created_yet_is_a_warning_pointing_at_task_deploy(moto_endpoint: str) -> None:
    stack = doctor_stack_line(moto_endpoint, f"orgsync-{uuid.uuid4().hex[:8]}")
    assert stack["status"] == "warn"
    assert stack["detail"].endswith("does not exist yet")
    assert "task deploy" in stack["hint"]


def test_a_created_stack_is_ok_with_its_status(moto_endpoint: str, cloudformation: Any) -> None:
    name = f"orgsync-{uuid.uuid4().hex[:8]}"
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}),
    )
    stack = doctor_stack_line(moto_endpoint, name)
    assert stack == {
        "name": "stack",
        "status": "ok",
        "detail": f"stack {name} is CREATE_COMPLETE",
        "hint": None,
    }
