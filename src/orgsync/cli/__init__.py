"""orgsync's operator command line: Typer wiring and Rich rendering, nothing else.

Each command module registers on the apps of `root` when it is imported, and `root` imports it
only for the command that runs: `orgsync --help` imports none of them. The work is in orgsync.ops.
"""

from __future__ import annotations

from orgsync.cli.root import app, describe_error

__all__ = ["app", "describe_error"]
