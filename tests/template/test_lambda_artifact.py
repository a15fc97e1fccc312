"""The functions' artifacts as `sam build` makes them (src/Makefile): each handler's closure.

The consumer's copy must hold errors, domain, schema, store and consumer and nothing else of
orgsync; the reconciler's errors, domain, schema, store, ops.reconcile and reconciler. Each
handler must import and answer from its copy alone, with only its requirements beside it.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_CLOSURE = {"domain", "schema", "store", "consumer"}
NEVER_IN_THE_ARTIFACT = {"cli", "local", "ops", "bench", "testing"}
RECONCILER_CLOSURE = {"domain", "schema", "store", "ops", "reconciler"}
NEVER_IN_THE_RECONCILER = {"cli", "local", "bench", "testing", "consumer"}
NOT_ON_LAMBDA = {"moto", "typer", "rich", "yaml", "werkzeug"}

HANDLER_SCRIPT = """
import json, sys
sys.path[:0] = json.loads(sys.argv[1])
from orgsync.consumer.handler import lambda_handler

class Context:
    function_name = "poc-user-stream-consumer"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:poc-user-stream-consumer"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

# A record of an item that is not a user: ignored, so the handler needs no AWS call to answer.
record = {"eventID": "e1", "eventName": "INSERT", "dynamodb": {
    "Keys": {"pk": {"S": "ORGANIZATION#acme"}, "sk": {"S": "METADATA"}},
    "NewImage": {}, "SequenceNumber": "1"}}
event = {"Records": [{
    "messageId": "m1", "receiptHandle": "r1", "body": json.dumps(record),
    "attributes": {"MessageGroupId": "ORGANIZATION#acme", "ApproximateReceiveCount": "1"},
    "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
    "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:user-dynamo-stream.fifo",
    "awsRegion": "us-east-1"}]}
response = lambda_handler(event, Context())
modules = {name: getattr(module, "__file__", None) for name, module in sys.modules.items()
           if name == "orgsync" or name.startswith("orgsync.")}
third_party = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"response": response, "modules": modules, "third_party": third_party}))
"""


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("artifact")
    subprocess.run(
        ["make", "-s", "-C", str(ROOT / "src"), "lambda-code", f"ARTIFACTS_DIR={target}"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return target


def test_the_artifact_holds_only_the_handlers_import_closure(artifact: Path):
    package = artifact / "orgsync"
    packages = {path.name for path in package.iterdir() if path.is_dir()}
    modules = {path.name for path in package.iterdir() if path.is_file()}
    assert packages == LAMBDA_CLOSURE
    assert modules == {"__init__.py", "errors.py", "py.typed"}
    assert not list(package.rglob("__pycache__"))
    shipped = {path.relative_to(package).parts[0] for path in package.rglob("*.py")}
    assert not shipped & NEVER_IN_THE_ARTIFACT


def test_the_handler_imports_and_answers_from_the_artifact_alone(artifact: Path, tmp_path: Path):
    # -S: no site processing, so the editable install's path hook cannot lend the checkout's
    # orgsync; the third-party packages (boto3, powertools) come from the site directories.
    search_path = [str(artifact), *site.getsitepackages()]
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "ORGANIZATIONS_TABLE_NAME": "poc-organizations",
        "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/0/dlq.fifo",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    completed = subprocess.run(
        [sys.executable, "-S", "-c", HANDLER_SCRIPT, json.dumps(search_path)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["response"] == {"batchItemFailures": []}
    for name, path in result["modules"].items():
        assert path is None or path.startswith(str(artifact)), (name, path)
    loaded = {name.split(".")[1] for name in result["modules"] if "." in name}
    assert loaded <= LAMBDA_CLOSURE | {"errors"}
    assert not NOT_ON_LAMBDA & set(result["third_party"])


RECONCILER_SCRIPT = """
import json, sys
sys.path[:0] = json.loads(sys.argv[1])
from orgsync.reconciler.handler import lambda_handler

class Context:
    function_name = "poc-reconciler"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:poc-reconciler"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

# A slice the code refuses before any AWS call: the answer is a ValueError naming the field.
try:
    lambda_handler({"action": "slice", "pass": "users", "segment": 4, "total_segments": 4,
                    "repair": False}, Context())
    answer = "accepted"
except ValueError as exc:
    answer = f"{type(exc).__name__}: {exc}"
modules = {name: getattr(module, "__file__", None) for name, module in sys.modules.items()
           if name == "orgsync" or name.startswith("orgsync.")}
third_party = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"answer": answer, "modules": modules, "third_party": third_party}))
"""


@pytest.fixture(scope="module")
def reconciler_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("reconciler-artifact")
    subprocess.run(
        ["make", "-s", "-C", str(ROOT / "src"), "reconciler-code", f"ARTIFACTS_DIR={target}"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return target


def test_the_reconciler_artifact_holds_its_closure_and_of_ops_only_reconcile(
    reconciler_artifact: Path,
):
    package = reconciler_artifact / "orgsync"
    assert {path.name for path in package.iterdir() if path.is_dir()} == RECONCILER_CLOSURE
    assert {path.name for path in package.iterdir() if path.is_file()} == {
        "__init__.py",
        "errors.py",
        "py.typed",
    }
    assert {path.name for path in (package / "ops").iterdir()} == {"__init__.py", "reconcile"}
    assert not list(package.rglob("__pycache__"))
    shipped = {path.relative_to(package).parts[0] for path in package.rglob("*.py")}
    assert not shipped & NEVER_IN_THE_RECONCILER


def test_the_reconciler_imports_and_answers_from_its_artifact_alone(
    reconciler_artifact: Path, tmp_path: Path
):
    search_path = [str(reconciler_artifact), *site.getsitepackages()]
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "USERS_TABLE_NAME": "poc-users",
        "ORGANIZATIONS_TABLE_NAME": "poc-organizations",
        "RESULTS_BUCKET_NAME": "orgsync-reconcile-results",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    completed = subprocess.run(
        [sys.executable, "-S", "-c", RECONCILER_SCRIPT, json.dumps(search_path)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["answer"] == "BadEventError: bad slice: segment must be 0 to 3"
    for name, path in result["modules"].items():
        assert path is None or path.startswith(str(reconciler_artifact)), (name, path)
    loaded = {name.split(".")[1] for name in result["modules"] if "." in name}
    assert loaded <= RECONCILER_CLOSURE | {"errors"}
    assert {"reconciler", "ops"} <= loaded
    assert not NOT_ON_LAMBDA & set(result["third_party"])
