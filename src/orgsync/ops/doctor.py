"""`orgsync doctor`: can this machine build, validate and deploy template.yaml, and in what state
is the stack it would deploy to?

Each check is a pure function of facts that injected probes gather (which executable is on PATH,
what a command printed, which credentials boto3 resolved, what DescribeStacks said), so every
rule is tested without a SAM CLI, Docker or AWS account; the CLI wires the real probes. A check
says ok, warn, fail or skip, and every line that is not ok carries the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

# python3.13 is known to the SAM CLI from 1.129.0 on (raise this with the function's runtime).
MIN_SAM_VERSION = (1, 129, 0)
DEFAULT_STACK_NAME = "orgsync"
# Docker first: it is what `sam build --use-container` looks for unless told otherwise.
CONTAINER_RUNTIMES = ("docker", "finch")

INSTALL_SAM = (
    "install the AWS SAM CLI >= {minimum} (README, 'Deploy to AWS'): "
    "python3 -m venv ~/.aws-sam-cli && ~/.aws-sam-cli/bin/pip install aws-sam-cli && "
    "mkdir -p ~/.local/bin && ln -sf ~/.aws-sam-cli/bin/sam ~/.local/bin/sam "
    "(or AWS's installer for your OS)"
)
CREDENTIALS_HINT = (
    "give boto3 credentials: AWS_PROFILE=NAME (or --profile) with a profile in ~/.aws/config, "
    "`aws sso login --profile NAME`, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
)
REGION_HINT = (
    "export AWS_REGION=eu-west-1 (or --region, or a profile region); "
    "`task` passes AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1"
)


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"  # deploying may still work, or will once the note is acted on
    FAIL = "fail"  # `task deploy` cannot succeed until the hint is followed
    SKIP = "skip"  # not checked, because a check it depends on failed


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    hint: str | None = None


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """False when any check failed: the command then exits non-zero."""
        return all(check.status is not Status.FAIL for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [
                {
                    "name": check.name,
                    "status": check.status.value,
                    "detail": check.detail,
                    "hint": check.hint,
                }
                for check in self.checks
            ],
        }


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str  # stdout and stderr together


@dataclass(frozen=True)
class FunctionBuild:
    """What `sam build` needs to know of one function: its runtime and how it is built."""

    logical_id: str
    runtime: str | None
    architecture: str
    build_method: str | None  # Metadata.BuildMethod; None = the runtime's default builder


Which = Callable[[str], str | None]
# None when the command could not be started at all.
Run = Callable[[Sequence[str]], CommandResult | None]
# The provider's name (boto3's `Credentials.method`, e.g. "env", "sso") or None: none found.
CredentialsProbe = Callable[[], str | None]
# The stack's StackStatus, or None when the stack does not exist; raises ClientError/BotoCoreError.
StackProbe = Callable[[str], str | None]


@dataclass(frozen=True)
class DoctorInputs:
    """Everything the checks look at, gathered by the caller (the CLI) from this machine."""

    functions: tuple[FunctionBuild, ...] | None  # None: the template could not be read
    template_problem: str | None
    which: Which
    run: Run
    # The interpreter src/Makefile installs wheels with ($PYTHON, else python3).
    build_python: str
    # Where the project's own tools are (.venv/bin of this orgsync), if anywhere.
    venv_bin: Path | None
    credentials: CredentialsProbe
    region: str | None
    stack_name: str
    stack: StackProbe


def run_doctor(inputs: DoctorInputs) -> DoctorReport:
    credentials = check_credentials(inputs.credentials)
    region = check_region(inputs.region)
    checks = [
        check_sam(inputs.which, inputs.run),
        check_build(
            inputs.functions,
            inputs.template_problem,
            which=inputs.which,
            run=inputs.run,
            python=inputs.build_python,
        ),
        check_task(inputs.which, inputs.venv_bin),
        credentials,
        region,
    ]
    if credentials.status is Status.FAIL or region.status is Status.FAIL:
        missing = "credentials" if credentials.status is Status.FAIL else "region"
        checks.append(
            Check(
                "stack",
                Status.SKIP,
                f"stack {inputs.stack_name} not looked up: no {missing}",
                f"follow the {missing} line's fix, then run `orgsync doctor` again",
            )
        )
    else:
        checks.append(check_stack(inputs.stack_name, inputs.stack))
    return DoctorReport(tuple(checks))


# ---------------------------------------------------------------- template facts


def functions_to_build(template: Mapping[str, Any]) -> tuple[FunctionBuild, ...]:
    """The Lambda functions of a (short-tag-free) template, with SAM's Globals applied."""
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    functions: list[FunctionBuild] = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        kind = (resource or {}).get("Type")
        if kind not in {"AWS::Serverless::Function", "AWS::Lambda::Function"}:
            continue
        properties = {**globals_, **((resource or {}).get("Properties") or {})}
        if properties.get("PackageType") == "Image":
            continue  # built from its Dockerfile, not by a language builder
        architectures = properties.get("Architectures") or ["x86_64"]
        runtime = properties.get("Runtime")
        build_method = ((resource or {}).get("Metadata") or {}).get("BuildMethod")
        functions.append(
            FunctionBuild(
                logical_id=str(logical_id),
                runtime=runtime if isinstance(runtime, str) else None,
                architecture=str(architectures[0]),
                build_method=str(build_method) if build_method else None,
            )
        )
    return tuple(functions)


# ---------------------------------------------------------------- checks


def check_sam(which: Which, run: Run) -> Check:
    hint = INSTALL_SAM.format(minimum=_dotted(MIN_SAM_VERSION))
    path = which("sam")
    if path is None:
        return Check("sam", Status.FAIL, "SAM CLI not found on PATH", hint)
    result = run([path, "--version"])
    if result is None or result.returncode != 0:
        output = _first_line(result.output) if result else "could not be started"
        return Check("sam", Status.FAIL, f"{path} --version failed: {output}", hint)
    version = _version(result.output)
    if version is None:
        return Check(
            "sam",
            Status.WARN,
            f"{path}: cannot read a version from {_first_line(result.output)!r}",
            hint,
        )
    if version < MIN_SAM_VERSION:
        return Check(
            "sam",
            Status.FAIL,
            f"SAM CLI {_dotted(version)} is older than {_dotted(MIN_SAM_VERSION)}, "
            "the first that knows the python3.13 runtime",
            hint,
        )
    return Check("sam", Status.OK, f"SAM CLI {_dotted(version)} ({path})")


def check_build(
    functions: tuple[FunctionBuild, ...] | None,
    template_problem: str | None,
    *,
    which: Which,
    run: Run,
    python: str,
) -> Check:
    """What `sam build` (no container) needs for each function, else a container runtime."""
    if functions is None:
        return Check(
            "build",
            Status.FAIL,
            template_problem or "template not read",
            "run from the directory that holds template.yaml, or pass --template PATH",
        )
    if not functions:
        return Check("build", Status.OK, "the template has no function to build")
    results = [
        _check_function_build(function, which=which, run=run, python=python)
        for function in functions
    ]
    worst = max(results, key=lambda check: _SEVERITY[check.status])
    if len(results) == 1:
        return worst
    details = "; ".join(check.detail for check in results)
    return Check("build", worst.status, details, worst.hint)


def check_task(which: Which, venv_bin: Path | None) -> Check:
    path = which("task")
    if path is not None:
        return Check("task", Status.OK, f"go-task ({path})")
    if venv_bin is not None and (venv_bin / "task").is_file():
        own = venv_bin / "task"
        return Check(
            "task",
            Status.OK,
            f"go-task ({own}; not on PATH: run it as {own}, or put {venv_bin} first on PATH)",
        )
    return Check(
        "task",
        Status.WARN,
        "go-task not found (the sam commands of Taskfile.yml still work by hand)",
        "scripts/bootstrap installs it into .venv/bin (PyPI package go-task-bin)",
    )


def check_credentials(probe: CredentialsProbe) -> Check:
    try:
        method = probe()
    except BotoCoreError as exc:  # e.g. the profile named does not exist
        return Check("credentials", Status.FAIL, _first_line(str(exc)), CREDENTIALS_HINT)
    if method is None:
        return Check(
            "credentials",
            Status.FAIL,
            "no AWS credentials found (environment, profile, SSO, container or instance role)",
            CREDENTIALS_HINT,
        )
    return Check("credentials", Status.OK, f"AWS credentials resolve (from {method})")


def check_region(region: str | None) -> Check:
    if not region:
        return Check("region", Status.FAIL, "no AWS region configured", REGION_HINT)
    return Check("region", Status.OK, f"region {region}")


def check_stack(stack_name: str, probe: StackProbe) -> Check:
    try:
        status = probe(stack_name)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        detail = f"DescribeStacks: {code}: {_first_line(str(error.get('Message', '')))}"
        return Check("stack", Status.FAIL, detail, _client_error_hint(code))
    except BotoCoreError as exc:
        return Check(
            "stack",
            Status.FAIL,
            f"DescribeStacks: {_first_line(str(exc))}",
            "check the network, the region and --endpoint-url / AWS_ENDPOINT_URL",
        )
    return stack_status_check(stack_name, status)


def stack_status_check(stack_name: str, status: str | None) -> Check:
    """What a CloudFormation StackStatus means for the next `task deploy`."""
    events = f"aws cloudformation describe-stack-events --stack-name {stack_name}"
    if status is None:
        return Check(
            "stack",
            Status.WARN,
            f"stack {stack_name} does not exist yet",
            "`task deploy` creates it (STACK_NAME=... for another name)",
        )
    if status == "ROLLBACK_COMPLETE":
        return Check(
            "stack",
            Status.FAIL,
            f"stack {stack_name} is ROLLBACK_COMPLETE: its first create failed and it can only "
            "be deleted",
            f"read why with `{events}`, then `task delete` and `task deploy`",
        )
    if status.endswith("_FAILED"):
        return Check(
            "stack",
            Status.FAIL,
            f"stack {stack_name} is {status}",
            f"read why with `{events}`; fix it in the CloudFormation console before deploying",
        )
    if status.endswith("_IN_PROGRESS"):
        return Check(
            "stack",
            Status.WARN,
            f"stack {stack_name} is {status}",
            "wait until it settles: a deploy now is refused",
        )
    if status == "UPDATE_ROLLBACK_COMPLETE":
        return Check(
            "stack",
            Status.WARN,
            f"stack {stack_name} is UPDATE_ROLLBACK_COMPLETE: the last update was rolled back "
            "(the previous version runs)",
            f"read why with `{events}`",
        )
    return Check("stack", Status.OK, f"stack {stack_name} is {status}")


# ---------------------------------------------------------------- the stack probe


class CloudFormationClient(Protocol):
    def describe_stacks(self, *, StackName: str) -> Mapping[str, Any]: ...  # noqa: N803 - boto3


def read_stack_status(cloudformation: CloudFormationClient, stack_name: str) -> str | None:
    """The stack's StackStatus, or None when CloudFormation says it does not exist."""
    try:
        response = cloudformation.describe_stacks(StackName=stack_name)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in str(
            error.get("Message", "")
        ):
            return None
        raise
    stacks = response.get("Stacks") or []
    return str(stacks[0]["StackStatus"]) if stacks else None


# ---------------------------------------------------------------- helpers

_SEVERITY = {Status.OK: 0, Status.SKIP: 1, Status.WARN: 2, Status.FAIL: 3}
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_PIP_VERSION = re.compile(r"pip (\S+) .*\(python (\S+)\)")
_PLATFORM_MACHINE = {"arm64": "aarch64", "x86_64": "x86_64"}


def _check_function_build(function: FunctionBuild, *, which: Which, run: Run, python: str) -> Check:
    if function.runtime is None:
        return Check("build", Status.SKIP, f"{function.logical_id}: no Runtime, not checked")
    container = next((tool for tool in CONTAINER_RUNTIMES if which(tool)), None)
    if function.build_method == "makefile":
        return _makefile_build(
            function, function.runtime, container, which=which, run=run, python=python
        )
    if function.runtime.startswith("python"):
        return _python_builder(function, function.runtime, container, which)
    return Check(
        "build",
        Status.SKIP,
        f"{function.logical_id}: runtime {function.runtime} is not checked by doctor",
    )


def _makefile_build(
    function: FunctionBuild,
    runtime: str,
    container: str | None,
    *,
    which: Which,
    run: Run,
    python: str,
) -> Check:
    """SAM's CustomMakeBuilder resolves only `make`; src/Makefile then needs pip, any version."""
    name = function.logical_id
    make = which("make")
    pip = _pip_of(run, python)
    if make is not None and pip is not None:
        machine = _PLATFORM_MACHINE.get(function.architecture, function.architecture)
        return Check(
            "build",
            Status.OK,
            f"{name}: BuildMethod makefile - make and {python} (pip {pip}) install {runtime} "
            f"wheels for {machine}; no {runtime} interpreter needed",
        )
    fixes = []
    if make is None:
        fixes.append("install make (apt-get install make; macOS: xcode-select --install)")
    if pip is None:
        fixes.append(
            f"give {python} pip, or run through `task`, which passes PYTHON=.venv/bin/python "
            "(scripts/bootstrap makes it)"
        )
    fix = "; ".join([*fixes, _container_hint(runtime)])
    missing = " and ".join(
        what for what, found in (("make", make), (f"pip for {python}", pip)) if found is None
    )
    detail = f"{name}: BuildMethod makefile needs {missing}"
    if container is not None:
        return Check("build", Status.WARN, f"{detail}; {container} is on PATH", fix)
    return Check("build", Status.FAIL, detail, fix)


def _python_builder(
    function: FunctionBuild, runtime: str, container: str | None, which: Which
) -> Check:
    """SAM's own Python builder validates a local interpreter of the function's runtime."""
    name = function.logical_id
    interpreter = which(runtime)
    if interpreter is not None:
        return Check("build", Status.OK, f"{name}: {runtime} ({interpreter}) builds it")
    detail = f"{name}: SAM's Python builder needs {runtime} on PATH, and it is not"
    fix = f"install Python {runtime.removeprefix('python')}; {_container_hint(runtime)}"
    if container is not None:
        return Check("build", Status.WARN, f"{detail}; {container} is", fix)
    return Check("build", Status.FAIL, detail, fix)


def _container_hint(runtime: str) -> str:
    return (
        f"or build in AWS's {runtime} image: `task deploy BUILD_FLAGS=--use-container` "
        "(needs a running Docker or Finch)"
    )


def _pip_of(run: Run, python: str) -> str | None:
    result = run([python, "-m", "pip", "--version"])
    if result is None or result.returncode != 0:
        return None
    match = _PIP_VERSION.search(result.output)
    return match.group(1) if match else "?"


def _client_error_hint(code: str) -> str:
    if code in {"AccessDenied", "AccessDeniedException"}:
        return "these credentials may not call cloudformation:DescribeStacks; deploy needs more"
    if code in {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId"}:
        return "refresh the credentials (e.g. `aws sso login`), then run doctor again"
    return "check the credentials, the region and --stack-name"


def _version(text: str) -> tuple[int, int, int] | None:
    match = _VERSION.search(text)
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""
