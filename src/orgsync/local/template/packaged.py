"""Which template the local runtime runs: the one asked for, a project's own, or orgsync's own.

orgsync ships its template.yaml inside the package (a link to the repository's, resolved when
the wheel is built), so `orgsync demo`, `orgsync local up` and the pytest fixture work from any
directory after `pip install orgsync`. A project's own `template.yaml` wins over it, and an
explicit path over both. Standard library only: the pytest plugin imports this at collection.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from orgsync.errors import OrgsyncError

TEMPLATE_NAME = "template.yaml"
PACKAGED_TEMPLATE = Path(__file__).resolve().parents[2] / TEMPLATE_NAME


def find_template(explicit: Path | None, *, search: Iterable[Path] = ()) -> Path:
    """`explicit` if given (it must exist), else the first `dir/template.yaml`, else orgsync's."""
    if explicit is not None:
        if not explicit.is_file():
            raise OrgsyncError(f"template not found: {explicit}")
        return explicit
    for directory in search:
        candidate = directory / TEMPLATE_NAME
        if candidate.is_file():
            return candidate
    if PACKAGED_TEMPLATE.is_file():
        return PACKAGED_TEMPLATE
    raise OrgsyncError(
        f"orgsync's own {TEMPLATE_NAME} is missing from the installed package: "
        "reinstall orgsync, or pass the template's path"
    )
