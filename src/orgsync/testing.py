"""pytest plugin: a local orgsync stack, clean for every test, and a `drain` to wait on it.

One stack per session (per xdist worker), `orgsync_session_stack`; `orgsync_stack` is the same
stack emptied before each test (`EmbeddedStack.reset`), so that tests never see each other's
data, whatever the order or the scheduling. The stack runs in a process of its own
(`orgsync.local.remote`): moto's `mock_aws()` in the suite's other tests, and their boto3
clients, keep this process's moto and environment to themselves.

Loaded in every pytest run through the `pytest11` entry point, so importing this module must stay
cheap: the stack (moto, boto3, the template) is imported inside the fixtures only.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from orgsync.local.chaos import ChaosSpec
    from orgsync.local.remote import RemoteChaos, RemoteStack

__all__ = [
    "orgsync_chaos",
    "pytest_configure",
    "orgsync_drain",
    "orgsync_session_stack",
    "orgsync_stack",
    "pytest_addoption",
]

_STORE_ENV = "ORGSYNC_TEST_STORE"
_CHAOS_ENV = "ORGSYNC_TEST_CHAOS"
# With chaos, unacknowledged messages should come back within a test's patience (local only).
_CHAOS_VISIBILITY_TIMEOUT = 2
_DYNAMODB_LOCAL_ENV = "ORGSYNC_DYNAMODB_LOCAL_DIR"
_TEMPLATE_ENV = "ORGSYNC_TEMPLATE"
_TEMPLATE_OPTION = "--orgsync-template"
_TEMPLATE_INI = "orgsync_template"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("orgsync", "orgsync local stack")
    group.addoption(
        "--orgsync-store",
        choices=("moto", "dynamodb-local"),
        default=None,
        help=f"store behind the orgsync_stack fixture (default: ${_STORE_ENV} or moto)",
    )
    group.addoption(
        _TEMPLATE_OPTION,
        default=None,
        metavar="PATH",
        help=f"template.yaml for the orgsync_stack fixture, written {_TEMPLATE_OPTION}=PATH "
        f"(default: ${_TEMPLATE_ENV}, the ini's {_TEMPLATE_INI}, ./template.yaml, the "
        "rootdir's, then orgsync's own)",
    )
    group.addoption(
        "--orgsync-chaos",
        default=None,
        metavar="SPEC",
        help="inject faults into the orgsync_stack fixture, e.g. seed=7,duplicate=0.1,crash=0.05 "
        f"(default: ${_CHAOS_ENV}; keys in docs/chaos.md); its queue's visibility timeout "
        f"becomes {_CHAOS_VISIBILITY_TIMEOUT}s",
    )

    parser.addini(
        _TEMPLATE_INI,
        "template.yaml for the orgsync_stack fixture, relative to the ini file",
        type="paths",
        default=[],
    )


def pytest_configure(config: pytest.Config) -> None:
    # pytest finds its rootdir (and ini file) before plugins add their options, taking the
    # value of an unknown `--opt VALUE` for a test path: with a space, PATH would move the
    # rootdir to an ancestor and lose the project's ini. With `=` it is one token, ignored there.
    given = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))]
    if _TEMPLATE_OPTION in given:
        raise pytest.UsageError(
            f"write {_TEMPLATE_OPTION}=PATH (with a space, pytest takes PATH for a test path "
            f"and moves its rootdir), or set ${_TEMPLATE_ENV} or the ini option {_TEMPLATE_INI}"
        )


def _template_path(config: pytest.Config) -> Path:
    from orgsync.errors import OrgsyncError  # noqa: PLC0415
    from orgsync.local.template.packaged import find_template  # noqa: PLC0415

    option = config.getoption(_TEMPLATE_OPTION) or os.environ.get(_TEMPLATE_ENV)
    configured: list[Path] = config.getini(_TEMPLATE_INI)
    explicit = Path(str(option)) if option else (configured[0] if configured else None)
    try:
        return find_template(explicit, search=[Path.cwd(), config.rootpath])
    except OrgsyncError as exc:
        raise pytest.UsageError(str(exc)) from exc


def _chaos_spec(spec: str) -> ChaosSpec:
    # Imported for a run with faults only: the chaos package brings the proxy and the servers.
    from orgsync.local.chaos import ChaosSpec  # noqa: PLC0415

    return ChaosSpec.parse(spec)


@pytest.fixture(scope="session")
def orgsync_session_stack(request: pytest.FixtureRequest) -> Iterator[RemoteStack]:
    """The template's stack for the whole session, shared by its tests (state carries over).

    On a free port, moto by default, in a process of its own; pipe and poller running.
    """
    from orgsync.local.errors import DynamoDBLocalNotFoundError  # noqa: PLC0415
    from orgsync.local.options import StackOptions  # noqa: PLC0415
    from orgsync.local.remote import RemoteStack  # noqa: PLC0415

    store = request.config.getoption("--orgsync-store") or os.environ.get(_STORE_ENV) or "moto"
    chaos = request.config.getoption("--orgsync-chaos") or os.environ.get(_CHAOS_ENV)
    dynamodb_local_dir = os.environ.get(_DYNAMODB_LOCAL_ENV)
    options = StackOptions(
        template_path=_template_path(request.config),
        port=0,
        store="dynamodb-local" if store == "dynamodb-local" else "moto",
        dynamodb_local_dir=Path(dynamodb_local_dir) if dynamodb_local_dir else None,
        # A write to a streamed table wakes its pipe at once: a test's write reaches the
        # consumer in milliseconds; the poll interval is the fallback (a write via another path).
        pipe_poll_interval=0.1,
        wake_pipes_on_writes=True,
        chaos=_chaos_spec(chaos) if chaos else None,
        visibility_timeout_seconds=_CHAOS_VISIBILITY_TIMEOUT if chaos else None,
    )
    stack = RemoteStack(options)
    try:
        stack.start()
    except DynamoDBLocalNotFoundError as exc:
        pytest.skip(f"orgsync_stack needs DynamoDB Local: {exc}")
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def orgsync_stack(orgsync_session_stack: RemoteStack) -> RemoteStack:
    """The session's stack, emptied for this test: no table item, no message, counters at 0.

    What an earlier test left in flight is dropped, not delivered (`EmbeddedStack.reset`).
    """
    orgsync_session_stack.reset()
    return orgsync_session_stack


@pytest.fixture
def orgsync_drain(orgsync_session_stack: RemoteStack) -> Callable[..., None]:
    """`orgsync_drain(timeout=30.0)`: return once the stream is read and the queue is quiet."""
    return orgsync_session_stack.drain


@pytest.fixture
def orgsync_chaos(orgsync_session_stack: RemoteStack) -> RemoteChaos:
    """The session stack's fault injectors (`--orgsync-chaos`): `reconfigure(spec)`, `counts()`.

    Skips the test when the session runs without chaos.
    """
    chaos = orgsync_session_stack.chaos
    if chaos is None:
        pytest.skip("the orgsync_stack runs without faults: pass --orgsync-chaos SPEC")
    return chaos
