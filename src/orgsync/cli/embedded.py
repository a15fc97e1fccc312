"""Options of the commands that start an embedded stack (`local up`, `demo`, `bench`).

Where the template comes from and which store runs it; read at the CLI edge only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import typer

from orgsync.cli.settings import CliSettings
from orgsync.errors import OrgsyncError
from orgsync.local.template.packaged import find_template

TemplateOption = Annotated[
    Path | None,
    typer.Option(
        "--template",
        help="template.yaml to run (default: ./template.yaml if there is one, else orgsync's own).",
    ),
]
StoreOption = Annotated[
    str,
    typer.Option("--store", help="Embedded store: moto (in-process) or dynamodb-local (Java)."),
]


def template_path(option: Path | None) -> Path:
    """--template, else ./template.yaml, else the template installed with orgsync."""
    return find_template(option, search=[Path.cwd()])


def store_kind(store: str) -> Literal["moto", "dynamodb-local"]:
    if store == "moto":
        return "moto"
    if store == "dynamodb-local":
        return "dynamodb-local"
    raise OrgsyncError(f"unknown store {store!r}: use moto or dynamodb-local")


def dynamodb_local_dir() -> Path | None:
    configured = os.environ.get("ORGSYNC_DYNAMODB_LOCAL_DIR")
    return Path(configured) if configured else None


def prefix_parameters(settings: CliSettings) -> dict[str, str]:
    """Template parameters for the stack the command starts: `--name-prefix` as NamePrefix."""
    return {"NamePrefix": settings.name_prefix} if settings.name_prefix else {}
