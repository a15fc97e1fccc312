"""orgsync's operator command line: Typer wiring and Rich rendering, nothing else.

Imports every command module so each registers on the apps of `root`; the work is in orgsync.ops.
"""

from __future__ import annotations

# Imported for their registrations; this order is the order `orgsync --help` lists them in.
# isort: off
from orgsync.cli import users, orgs, dlq, status, reconcile, local, demo, bench  # noqa: F401
from orgsync.cli import doctor  # noqa: F401

# isort: on
from orgsync.cli.root import app, describe_error

__all__ = ["app", "describe_error"]
