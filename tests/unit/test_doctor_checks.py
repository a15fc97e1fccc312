"""`orgsync doctor`'s rules (orgsync.ops.doctor), fed facts through its injected probes: what is on
PATH, what a command printed, which credentials resolved, what state the stack is in.

The real CLI, with the real PATH and a real endpoint, is driven in tests/integration/test_doctor.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, ProfileNotFound

from orgsync.local.template.cloudformation import load_template
from orgsync.ops.doctor import (
    CommandResult,
    DoctorInputs,
    FunctionBuild,
    Status,
    check_build,
    check_credentials,
    check_region,
    check_sam,
    check_stack,
    check_task,
    functions_to_build,
    run_doctor,
    stack_status_check,
)

ROOT = Path(__file__).resolve().parents[2]
CONSUMER = FunctionBuild("StreamConsumerFunction", "python3.13", "arm64", "makefile")
RECONCILER = FunctionBuild("ReconcileFunction", "python3.13", "arm64", "makefile")
PIP_OUTPUT = "pip 24.0 from /x/site-packages/pip (python 3.11)"


def on_path(*names: str):
    return lambda name: f"/usr/bin/{name}" if name in names else None


def answers(outputs: dict[str, CommandResult | None]):
    """`run` that answers by the command's last word (`--version`) or its module (`pip`)."""

    def run(argv: Sequence[str]) -> CommandResult | None:
        key = "pip" if "pip" in argv else Path(argv[0]).name
        return outputs.get(key)

    return run


SAM_OK = CommandResult(0, "SAM CLI, version 1.170.0\n")
PIP_OK = CommandResult(0, PIP_OUTPUT)


def inputs(**overrides: Any) -> DoctorInputs:
    base = DoctorInputs(
        functions=(CONSUMER,),
        template_problem=None,
        which=on_path("sam", "make", "task"),
        run=answers({"sam": SAM_OK, "pip": PIP_OK}),
        build_python="/repo/.venv/bin/python",
        venv_bin=None,
        credentials=lambda: "env",
        region="eu-west-1",
        stack_name="orgsync",
        stack=lambda name: "UPDATE_COMPLETE",
    )
    return dataclasses.replace(base, **overrides)


# ---------------------------------------------------------------- the whole report


def test_a_machine_with_everything_is_ready_and_every_line_is_ok() -> None:
    report = run_doctor(inputs())
    assert [check.name for check in report.checks] == [
        "sam",
        "build",
        "task",
        "credentials",
        "region",
        "stack",
    ]
    assert {check.status for check in report.checks} == {Status.OK}
    assert report.ok
    assert report.to_json()["ok"] is True


def test_one_failing_check_makes_the_report_not_ok_and_warnings_do_not() -> None:
    missing_stack = run_doctor(inputs(stack=lambda name: None))
    assert missing_stack.ok  # a stack not created yet is what the first deploy is for
    assert run_doctor(inputs(which=on_path("make", "task"))).ok is False


def test_without_credentials_the_stack_is_skipped_with_a_note() -> None:
    def never(name: str) -> str | None:
        raise AssertionError("the stack must not be looked up without credentials")

    report = run_doctor(inputs(credentials=lambda: None, stack=never))
    stack = report.checks[-1]
    assert stack.status is Status.SKIP
    assert "no credentials" in stack.detail
    assert not report.ok


def test_without_a_region_the_stack_is_skipped_too() -> None:
    report = run_doctor(inputs(region=None, stack=lambda name: "CREATE_COMPLETE"))
    assert report.checks[-1].status is Status.SKIP
    assert "no region" in report.checks[-1].detail


# ---------------------------------------------------------------- sam


def test_a_missing_sam_cli_fails_with_the_install_command() -> None:
    check = check_sam(on_path(), answers({}))
    assert check.status is Status.FAIL
    assert check.detail == "SAM CLI not found on PATH"
    assert check.hint is not None
    assert "pip install aws-sam-cli" in check.hint
    assert ">= 1.129.0" in check.hint


def test_a_sam_cli_too_old_for_python_3_13_fails() -> None:
    check = check_sam(
        on_path("sam"), answers({"sam": CommandResult(0, "SAM CLI, version 1.120.0")})
    )
    assert check.status is Status.FAIL
    assert "1.120.0 is older than 1.129.0" in check.detail


def test_a_current_sam_cli_is_ok_with_its_version() -> None:
    check = check_sam(on_path("sam"), answers({"sam": SAM_OK}))
    assert (check.status, check.detail) == (Status.OK, "SAM CLI 1.170.0 (/usr/bin/sam)")
    assert check.hint is None


@pytest.mark.parametrize("result", [None, CommandResult(1, "Traceback (most recent call last)")])
def test_a_sam_that_does_not_run_fails(result: CommandResult | None) -> None:
    check = check_sam(on_path("sam"), answers({"sam": result}))
    assert check.status is Status.FAIL
    assert "--version failed" in check.detail


def test_a_sam_version_that_cannot_be_read_only_warns() -> None:
    check = check_sam(on_path("sam"), answers({"sam": CommandResult(0, "SAM CLI, dev build")}))
    assert check.status is Status.WARN


# ---------------------------------------------------------------- build


def test_the_real_template_is_built_by_the_makefile_for_python_3_13_on_arm64() -> None:
    assert functions_to_build(load_template(ROOT / "template.yaml")) == (CONSUMER, RECONCILER)


def test_globals_give_a_function_its_runtime_and_image_functions_are_not_built() -> None:
    template = {
        "Globals": {"Function": {"Runtime": "python3.12"}},
        "Resources": {
            "Fn": {"Type": "AWS::Serverless::Function", "Properties": {"Handler": "a.b"}},
            "Image": {"Type": "AWS::Serverless::Function", "Properties": {"PackageType": "Image"}},
            "Queue": {"Type": "AWS::SQS::Queue"},
        },
    }
    assert functions_to_build(template) == (FunctionBuild("Fn", "python3.12", "x86_64", None),)


def test_the_makefile_build_needs_make_and_pip_but_no_python_3_13() -> None:
    check = check_build(
        (CONSUMER,), None, which=on_path("make"), run=answers({"pip": PIP_OK}), python="python3"
    )
    assert check.status is Status.OK
    assert "pip 24.0" in check.detail
    assert "no python3.13 interpreter needed" in check.detail


def test_without_make_a_container_runtime_turns_the_build_into_a_warning() -> None:
    check = check_build(
        (CONSUMER,),
        None,
        which=on_path("finch"),
        run=answers({"pip": PIP_OK}),
        python="python3",
    )
    assert check.status is Status.WARN
    assert "needs make" in check.detail
    assert check.hint is not None
    assert "BUILD_FLAGS=--use-container" in check.hint


def test_without_make_pip_or_a_container_the_build_fails() -> None:
    check = check_build(
        (CONSUMER,),
        None,
        which=on_path(),
        run=answers({"pip": CommandResult(1, "No module named pip")}),
        python="python3",
    )
    assert check.status is Status.FAIL
    assert "needs make and pip for python3" in check.detail
    assert check.hint is not None
    assert "apt-get install make" in check.hint
    assert "PYTHON=.venv/bin/python" in check.hint


@pytest.mark.parametrize(
    ("tools", "status"),
    [(("python3.12",), Status.OK), (("docker",), Status.WARN), ((), Status.FAIL)],
)
def test_sams_python_builder_needs_the_runtimes_interpreter_or_a_container(
    tools: tuple[str, ...], status: Status
) -> None:
    function = FunctionBuild("Fn", "python3.12", "x86_64", None)
    check = check_build((function,), None, which=on_path(*tools), run=answers({}), python="p")
    assert check.status is status


def test_an_unreadable_template_fails_the_build_line_with_where_to_run() -> None:
    check = check_build(
        None, "cannot read template x.yaml", which=on_path(), run=answers({}), python="p"
    )
    assert check.status is Status.FAIL
    assert check.detail == "cannot read template x.yaml"
    assert check.hint is not None
    assert "--template" in check.hint


# ---------------------------------------------------------------- task, credentials, region


def test_go_task_in_the_virtualenv_is_found_off_path(tmp_path: Path) -> None:
    (tmp_path / "task").write_text("")
    check = check_task(on_path(), tmp_path)
    assert check.status is Status.OK
    assert str(tmp_path / "task") in check.detail


def test_no_go_task_anywhere_warns_with_the_bootstrap_script() -> None:
    check = check_task(on_path(), None)
    assert check.status is Status.WARN
    assert check.hint is not None
    assert "scripts/bootstrap" in check.hint


def test_credentials_name_their_provider_never_their_keys() -> None:
    check = check_credentials(lambda: "shared-credentials-file")
    assert (check.status, check.detail) == (
        Status.OK,
        "AWS credentials resolve (from shared-credentials-file)",
    )


def test_a_profile_that_does_not_exist_fails_the_credentials_line() -> None:
    def missing_profile() -> str | None:
        raise ProfileNotFound(profile="nope")

    check = check_credentials(missing_profile)
    assert check.status is Status.FAIL
    assert "nope" in check.detail


def test_no_region_fails_with_how_to_set_one() -> None:
    check = check_region(None)
    assert check.status is Status.FAIL
    assert check.hint is not None
    assert "AWS_REGION" in check.hint


# ---------------------------------------------------------------- stack


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (None, Status.WARN),
        ("CREATE_COMPLETE", Status.OK),
        ("UPDATE_COMPLETE", Status.OK),
        ("UPDATE_ROLLBACK_COMPLETE", Status.WARN),
        ("UPDATE_IN_PROGRESS", Status.WARN),
        ("ROLLBACK_COMPLETE", Status.FAIL),
        ("CREATE_FAILED", Status.FAIL),
        ("UPDATE_ROLLBACK_FAILED", Status.FAIL),
    ],
)
def test_each_stack_state_says_what_the_next_deploy_meets(
    status: str | None, verdict: Status
) -> None:
    check = stack_status_check("orgsync", status)
    assert check.status is verdict
    assert (check.hint is None) == (verdict is Status.OK)


def test_a_rolled_back_first_create_must_be_deleted_before_deploying_again() -> None:
    check = stack_status_check("orgsync", "ROLLBACK_COMPLETE")
    assert check.hint is not None
    assert "task delete" in check.hint


def test_access_denied_on_describe_stacks_fails_naming_the_permission() -> None:
    def denied(name: str) -> str | None:
        raise ClientError(
            {"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "DescribeStacks"
        )

    check = check_stack("orgsync", denied)
    assert check.status is Status.FAIL
    assert check.detail == "DescribeStacks: AccessDenied: not authorized"
    assert check.hint is not None
    assert "cloudformation:DescribeStacks" in check.hint
