"""The function's runtime: its handler imported the way Lambda resolves it, and its environment.

The environment is process-global on purpose: the handler reads os.environ, as in Lambda, and
the local stack runs its function in this process.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from orgsync.local.errors import HandlerImportError

if TYPE_CHECKING:
    from orgsync.local.template.model import FunctionModel

Handler = Callable[[dict[str, Any], Any], Any]


def import_handler(dotted_path: str, *, fresh: bool = False) -> Handler:
    """Import `package.module.function` the way Lambda resolves a Handler setting.

    `fresh` executes the handler's module anew, as a cold start in a new execution environment
    would: whatever it cached at module level (clients bound to an endpoint that an earlier local
    stack of this process used) starts empty. Modules it imports are shared as usual.
    """
    module_name, _, attribute = dotted_path.rpartition(".")
    if not module_name:
        raise HandlerImportError(f"handler {dotted_path!r} is not of the form module.function")
    try:
        module = importlib.import_module(module_name)
        if fresh:
            module = _execute_anew(module_name, module)
    except Exception as exc:  # whatever the module raises while loading is an init error
        raise HandlerImportError(f"cannot import handler module {module_name}: {exc}") from exc
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise HandlerImportError(f"{module_name} has no callable {attribute}")
    result: Handler = handler
    return result


def _execute_anew(module_name: str, previous: ModuleType) -> ModuleType:
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module spec for {module_name}")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as a normal import does (dataclasses look it up there).
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules[module_name] = previous
        raise
    return module


def lambda_environment(
    function: FunctionModel,
    *,
    endpoint_url: str | None,
    region: str,
    emit_metrics: bool = False,
) -> dict[str, str | None]:
    """Variables to put in os.environ for the handler (None: leave whatever is there).

    The function's own variables and the endpoint/region win, as in Lambda. Credentials are only
    defaulted (any value works against the embedded store; real ones are kept for real
    endpoints). Powertools metrics are off unless asked for: EMF lines on stdout would bury the
    console, and nothing collects them locally. Tracing is off: there is no X-Ray daemon.
    """
    environment: dict[str, str | None] = dict(function.environment)
    environment.update(
        {
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        }
    )
    if endpoint_url is not None:
        environment["AWS_ENDPOINT_URL"] = endpoint_url
    defaults = {
        "AWS_ACCESS_KEY_ID": "orgsynclocal",
        "AWS_SECRET_ACCESS_KEY": "orgsynclocal",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "false" if emit_metrics else "true",
    }
    for name, value in defaults.items():
        if name not in os.environ or (name == "POWERTOOLS_METRICS_DISABLED" and emit_metrics):
            environment[name] = value
    return environment


def apply_environment(environment: Mapping[str, str | None]) -> dict[str, str | None]:
    """Set the variables in os.environ; return what they were (None: unset), for restoring.

    Process-global on purpose: the handler reads os.environ, as in Lambda, and a local stack runs
    its function in this process. Two stacks running at once in one process would share these
    variables; one after the other is fine, since stopping a poller restores them.
    """
    previous: dict[str, str | None] = {}
    for name, value in environment.items():
        if value is not None:
            previous[name] = os.environ.get(name)
            os.environ[name] = value
    return previous


def restore_environment(previous: Mapping[str, str | None]) -> None:
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
