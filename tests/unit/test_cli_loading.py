"""`orgsync --help` lists every command without importing one, and lists them as they are.

The root group defers each command to its module (`cli.root._COMMANDS`): these tests check that
the help imports none of the heavy libraries, that the deferred lines are the commands' own,
and that nothing registered is left out of the list.
"""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys

import typer.main
from typer.testing import CliRunner

from orgsync.cli import app
from orgsync.cli.root import _COMMANDS

# What a command may need, and the help never does.
_HEAVY = (
    "boto3",
    "botocore",
    "moto",
    "aws_lambda_powertools",
    "yaml",
    "rich.progress",
    "orgsync.local",
    "orgsync.ops",
    "orgsync.bench",
)
_COMMAND_MODULES = tuple(sorted({module for module, _ in _COMMANDS.values()}))

_PROBE = """
import json, sys
from orgsync.cli import app
try:
    app(["--help"], prog_name="orgsync")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def test_the_help_imports_no_command_module_nor_aws_library() -> None:
    # A process of its own: this one has imported half of orgsync already.
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    modules = json.loads(done.stderr.strip().splitlines()[-1])
    loaded = [
        name
        for name in modules
        if any(name == heavy or name.startswith(f"{heavy}.") for heavy in _HEAVY)
        or name in _COMMAND_MODULES
    ]
    assert loaded == []
    assert "status" in done.stdout
    assert "local" in done.stdout


def test_every_registered_command_is_listed_with_its_own_help_line() -> None:
    for module in _COMMAND_MODULES:
        importlib.import_module(module)
    root = typer.main.get_group(app)
    registered = root.registered
    assert root.list_commands(None) == list(_COMMANDS)  # --help's order
    assert set(registered) == set(_COMMANDS)
    for name, (_module, line) in _COMMANDS.items():
        first_paragraph = inspect.cleandoc(registered[name].help or "").split("\n\n")[0]
        assert line == " ".join(first_paragraph.split()), name


def test_a_deferred_command_runs_as_its_module_registered_it() -> None:
    result = CliRunner().invoke(app, ["users", "put", "--status", " "])
    assert result.exit_code == 2, result.output
    assert "--status is empty" in result.output


def test_a_mistyped_command_is_still_matched_to_the_listed_ones() -> None:
    result = CliRunner().invoke(app, ["stat"])
    assert result.exit_code == 2
    assert "Did you mean 'status'?" in result.output
