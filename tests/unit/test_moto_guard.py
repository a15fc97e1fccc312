"""The one door to moto's internals refuses a moto it was not tested with, and says what to do."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from orgsync.local import moto_patches
from orgsync.local.moto_patches.guard import (
    TESTED_MOTO_RANGE,
    MotoPatchError,
    check_attributes,
    check_moto_version,
)

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@pytest.mark.parametrize("outside", ["5.1.9", "5.3.0", "5.3.0rc1", "6.0.0", "4.2.14", "nightly"])
def test_a_moto_outside_the_tested_range_is_refused_with_what_to_install(outside: str):
    with pytest.raises(MotoPatchError, match=r"not a release .* tested with \(>=5\.2,<5\.3\)"):
        check_moto_version(outside)
    with pytest.raises(MotoPatchError, match="pip install"):
        moto_patches.check(outside)


@pytest.mark.parametrize("inside", ["5.2.0", "5.2.5", "5.2.99", "5.2.6.dev3"])
def test_a_moto_inside_the_tested_range_is_accepted(inside: str):
    check_moto_version(inside)


def test_the_installed_moto_is_one_the_patches_are_tested_with():
    # CI fails here (and every embedded store refuses to start) when an install drifts.
    moto_patches.check()
    check_moto_version(version("moto"))


def test_the_package_pins_moto_to_exactly_the_tested_range():
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (moto,) = [spec for spec in dependencies if spec.startswith("moto[")]
    assert moto.endswith("]" + TESTED_MOTO_RANGE)


def test_a_patched_attribute_that_moved_is_named_in_the_refusal():
    with pytest.raises(MotoPatchError, match=r"moto\.dynamodb\.models:DynamoDBBackend\.renamed"):
        check_attributes(
            [
                "moto.dynamodb.models:DynamoDBBackend.transact_write_items",
                "moto.dynamodb.models:DynamoDBBackend.renamed",
            ]
        )
    with pytest.raises(MotoPatchError, match=r"moto\.nonexistent"):
        check_attributes(["moto.nonexistent:anything"])
