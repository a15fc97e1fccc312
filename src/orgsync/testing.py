"""pytest plugin: a running local orgsync stack for a test session, and a `drain` to wait on it.

Loaded in every pytest run through the `pytest11` entry point, so importing this module must stay
cheap: the stack (moto, boto3, the template) is imported inside the fixtures only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from orgsync.local.chaos import Chaos
    from orgsync.local.stack import EmbeddedStack

__all__ = ["orgsync_chaos", "orgsync_drain", "orgsync_stack", "pytest_addoption"]

_STORE_ENV = "ORGSYNC_TEST_STORE"
_CHAOS_ENV = "ORGSYNC_TEST_CHAOS"
# With chaos, unacknowledged messages should come back within a test's patience (local only).
_CHAOS_VISIBILITY_TIMEOUT = 2
_DYNAMODB_LOCAL_ENV = "ORGSYNC_DYNAMODB_LOCAL_DIR"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("orgsync", "orgsync local stack")
    group.addoption(
        "--orgsync-store",
        choices=("moto", "dynamodb-local"),
        default=None,
        help=f"store behind the orgsync_stack fixture (default: ${_STORE_ENV} or moto)",
    )
    group.addoption(
        "--orgsync-template",
        default=None,
        help="template.yaml for the orgsync_stack fixture (default: ./template.yaml)",
    )
    group.addoption(
        "--orgsync-chaos",
        default=None,
        metavar="SPEC",
        help="inject faults into the orgsync_stack fixture, e.g. seed=7,duplicate=0.1,crash=0.05 "
        f"(default: ${_CHAOS_ENV}; keys in docs/chaos.md); its queue's visibility timeout "
        f"becomes {_CHAOS_VISIBILITY_TIMEOUT}s",
    )


def _template_path(config: pytest.Config) -> Path:
    option = config.getoption("--orgsync-template")
    if option:
        return Path(str(option))
    for base in (Path.cwd(), config.rootpath):
        if (base / "template.yaml").is_file():
            return base / "template.yaml"
    raise pytest.UsageError("no template.yaml found: pass --orgsync-template PATH")


@pytest.fixture(scope="session")
def orgsync_stack(request: pytest.FixtureRequest) -> Iterator[EmbeddedStack]:
    """The template's stack on a free port (moto by default), pipe and poller running.

    Its moto backends are this process's: tests that start their own moto servers in the same
    session share that state, so they should use other resource names (or a NamePrefix).
    """
    from orgsync.local.chaos import ChaosSpec  # noqa: PLC0415
    from orgsync.local.errors import DynamoDBLocalNotFoundError  # noqa: PLC0415
    from orgsync.local.stack import EmbeddedStack, StackOptions  # noqa: PLC0415

    store = request.config.getoption("--orgsync-store") or os.environ.get(_STORE_ENV) or "moto"
    chaos = request.config.getoption("--orgsync-chaos") or os.environ.get(_CHAOS_ENV)
    dynamodb_local_dir = os.environ.get(_DYNAMODB_LOCAL_ENV)
    options = StackOptions(
        template_path=_template_path(request.config),
        port=0,
        store="dynamodb-local" if store == "dynamodb-local" else "moto",
        dynamodb_local_dir=Path(dynamodb_local_dir) if dynamodb_local_dir else None,
        # Faster than Pipes' ~4 polls a second, so that each drain() costs tests less.
        pipe_poll_interval=0.1,
        chaos=ChaosSpec.parse(chaos) if chaos else None,
        visibility_timeout_seconds=_CHAOS_VISIBILITY_TIMEOUT if chaos else None,
    )
    stack = EmbeddedStack(options)
    try:
        stack.start()
    except DynamoDBLocalNotFoundError as exc:
        pytest.skip(f"orgsync_stack needs DynamoDB Local: {exc}")
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def orgsync_drain(orgsync_stack: EmbeddedStack) -> Callable[..., None]:
    """`orgsync_drain(timeout=30.0)`: return once the stream is read and the queue is quiet."""
    return orgsync_stack.drain


@pytest.fixture
def orgsync_chaos(orgsync_stack: EmbeddedStack) -> Chaos:
    """The session stack's fault injectors (`--orgsync-chaos`): `reconfigure(spec)`, `counts()`.

    Skips the test when the session runs without chaos.
    """
    if orgsync_stack.chaos is None:
        pytest.skip("the orgsync_stack runs without faults: pass --orgsync-chaos SPEC")
    return orgsync_stack.chaos
