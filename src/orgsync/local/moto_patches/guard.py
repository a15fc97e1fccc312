"""The guard in front of moto's internals: the moto versions the patches are tested with, and a
check that every attribute they replace or read is still where they expect it.

A moto release may move or rename any private attribute; a patch that silently stops applying
would turn into wrong results (a transaction half rolled back, memory that only grows), so a
mismatch is an error at start, with what to install instead. Standard library only.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

from orgsync.local.errors import EmbeddedStackError

# The releases the patches and moto's own server-mode tests were run against; pyproject.toml
# pins the same range (a test keeps the two equal).
TESTED_MOTO_RANGE = ">=5.2,<5.3"
_LOWEST = (5, 2)
_BELOW = (5, 3)
_RELEASE = re.compile(r"^(\d+)\.(\d+)")


class MotoPatchError(EmbeddedStackError):
    """The installed moto is not one orgsync's patches are tested with, or its internals moved."""


def installed_moto_version() -> str:
    try:
        return version("moto")
    except PackageNotFoundError as exc:
        raise MotoPatchError("moto is not installed: pip install 'orgsync'") from exc


def check_moto_version(found: str) -> None:
    """Refuse a moto outside TESTED_MOTO_RANGE (compared on major.minor)."""
    match = _RELEASE.match(found)
    release = (int(match.group(1)), int(match.group(2))) if match else None
    if release is None or not _LOWEST <= release < _BELOW:
        raise MotoPatchError(
            f"moto {found} is not a release orgsync's embedded store is tested with "
            f"({TESTED_MOTO_RANGE}): pip install 'moto[server]{TESTED_MOTO_RANGE}'"
        )


def check_attributes(required: Iterable[str]) -> None:
    """Each `module:attribute.path` must be defined by its own module or class (not inherited:
    a patch of an inherited `__new__` would patch the wrong class); the error names every one
    that is not."""
    missing = [path for path in required if not _resolves(path)]
    if missing:
        raise MotoPatchError(
            f"moto {installed_moto_version()} lacks what orgsync's patches use: "
            + ", ".join(missing)
            + f"; install moto{TESTED_MOTO_RANGE}"
        )


def _resolves(path: str) -> bool:
    module_name, _, attributes = path.partition(":")
    try:
        target: object = importlib.import_module(module_name)
    except ImportError:
        return False
    for name in attributes.split(".") if attributes else ():
        if name not in vars(target):
            return False
        target = vars(target)[name]
    return True
