"""Taskfile.yml runs the project's own tools: `task` works on a fresh clone after
scripts/bootstrap, with nothing of .venv/bin on PATH (go-task itself is installed there).

Each test runs the real go-task of this virtualenv in a subprocess whose PATH has only the
system's directories, the way a developer who never activated the virtualenv meets it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
TASK = VENV_BIN / "task"
SYSTEM_PATH = os.pathsep.join(
    d for d in ("/usr/local/bin", "/usr/bin", "/bin") if Path(d).is_dir() and Path(d) != VENV_BIN
)


def run_task(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": SYSTEM_PATH,
        "HOME": os.environ.get("HOME", "/tmp"),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [str(TASK), "--taskfile", str(ROOT / "Taskfile.yml"), *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_go_task_is_installed_into_the_virtualenv_by_the_dev_extra() -> None:
    assert TASK.is_file(), "scripts/bootstrap installs go-task-bin into .venv/bin"


def test_put_item_runs_the_virtualenvs_orgsync_when_it_is_not_on_path() -> None:
    # Was: `"orgsync": executable file not found in $PATH`.
    result = run_task("put-item", "--", "--help")
    assert result.returncode == 0, result.stderr
    assert "orgsync users put" in result.stdout


@pytest.mark.parametrize(
    ("task", "command"),
    [
        ("put-item", "/orgsync --region us-east-1 users put"),
        ("doctor", "/orgsync --region us-east-1 doctor --stack-name orgsync"),
        ("test", "/python -m pytest"),
        ("sam-validate", "/cfn-lint template.yaml"),
    ],
)
def test_tasks_name_the_project_environments_tools(task: str, command: str) -> None:
    result = run_task("--dry", task, "AWS_REGION=us-east-1")
    assert result.returncode == 0, result.stderr
    assert f"{VENV_BIN}{command}" in result.stderr


def test_the_default_task_lists_tasks_with_the_task_binary_that_runs_it() -> None:
    result = run_task()
    assert result.returncode == 0, result.stderr
    assert "doctor:" in result.stdout
    assert "deploy:" in result.stdout


def test_sam_build_hands_the_makefile_the_virtualenvs_python_and_the_build_flags() -> None:
    result = run_task("--dry", "sam-build", "BUILD_FLAGS=--use-container")
    assert result.returncode == 0, result.stderr
    assert "sam build --use-container" in result.stderr
    taskfile = (ROOT / "Taskfile.yml").read_text(encoding="utf-8")
    build = taskfile[taskfile.index("  sam-build:") : taskfile.index("  sam-validate:")]
    assert 'PYTHON: "{{.PYTHON}}"' in build
