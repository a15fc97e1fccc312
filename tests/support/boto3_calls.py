"""The AWS calls a module's import closure makes, read from the source, as IAM actions.

tests/template pins the consumer role to exactly this set, so a boto3 call added to the Lambda
closure without a permission (or a permission left behind by a call removed) fails a test. The
reading is static: every attribute named like an operation of a service the closure builds a
client for counts as a call of it (`client.batch_get_item(...)`, `call(client.transact_write_items,
...)`), and a TransactWriteItems counts as the item actions its request shapes hold.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import botocore.session
from botocore import xform_name

SRC = Path(__file__).resolve().parents[2] / "src"
# TransactWriteItems is authorised per action it holds; these are the request shapes' keys.
TRANSACT_WRITE_KINDS = {
    "Put": "PutItem",
    "Delete": "DeleteItem",
    "Update": "UpdateItem",
    "ConditionCheck": "ConditionCheckItem",
}


def module_file(module: str, src: Path = SRC) -> Path | None:
    base = src.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def import_closure(root: str, package: str = "orgsync", src: Path = SRC) -> dict[str, ast.Module]:
    """Every module of `package` that importing `root` can import, parents included, parsed."""
    parsed: dict[str, ast.Module] = {}
    pending = [root]
    while pending:
        module = pending.pop()
        if module in parsed:
            continue
        path = module_file(module, src)
        if path is None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        parsed[module] = tree
        parts = module.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                pending.extend(a.name for a in node.names if a.name.split(".")[0] == package)
            elif (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and node.module
                and node.module.split(".")[0] == package
            ):
                pending.append(node.module)
                pending.extend(f"{node.module}.{a.name}" for a in node.names)
    return parsed


def client_services(trees: Iterable[ast.Module]) -> set[str]:
    """The services of `….client("name", …)` calls."""
    services: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "client"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                services.add(node.args[0].value)
    return services


def iam_actions(trees: Iterable[ast.Module], services: Iterable[str]) -> set[str]:
    trees = list(trees)
    session = botocore.session.get_session()
    operations: dict[str, list[tuple[str, str]]] = {}
    for service in services:
        for operation in session.get_service_model(service).operation_names:
            operations.setdefault(xform_name(operation), []).append((service, operation))
    called = {
        pair
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        for pair in operations.get(node.attr, ())
    }
    actions: set[str] = set()
    for service, operation in called:
        actions |= _actions_of(service, operation, trees)
    return actions


def _actions_of(service: str, operation: str, trees: list[ast.Module]) -> set[str]:
    if service == "dynamodb" and operation == "TransactWriteItems":
        kinds = {
            key.value
            for tree in trees
            for node in ast.walk(tree)
            if isinstance(node, ast.Dict)
            for key in node.keys
            if isinstance(key, ast.Constant) and key.value in TRANSACT_WRITE_KINDS
        }
        return {f"dynamodb:{TRANSACT_WRITE_KINDS[kind]}" for kind in kinds}
    if service == "dynamodb" and operation == "TransactGetItems":
        return {"dynamodb:GetItem"}
    # SQS authorises its batch calls as the single ones (SendMessageBatch as SendMessage).
    if service == "sqs" and operation.endswith("Batch"):
        return {f"sqs:{operation.removesuffix('Batch')}"}
    return {f"{service}:{operation}"}


def handler_iam_actions(handler_module: str = "orgsync.consumer.handler") -> set[str]:
    trees = list(import_closure(handler_module).values())
    return iam_actions(trees, client_services(trees))
