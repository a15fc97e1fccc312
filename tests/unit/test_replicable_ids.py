"""What the pipeline can carry: the one rule (`schema.users.replication_problem`) that writers
ask before writing a user, against SQS's message group id limits and DynamoDB's key limits."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from orgsync.local.template.cloudformation import load_template
from orgsync.schema.keys import (
    MAX_MESSAGE_GROUP_ID_CHARS,
    MAX_USER_ID_CHARS,
    USER_PREFIX,
    org_id_problem,
    user_id_problem,
    user_key,
)
from orgsync.schema.users import replication_problem

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def test_the_user_id_budget_is_what_the_pipes_group_id_leaves() -> None:
    # The budget is right only while the pipe groups by the users table's pk, USER#<id>.
    pipe = load_template(TEMPLATE)["Resources"]["UserTablePipe"]["Properties"]
    group_id = pipe["TargetParameters"]["SqsQueueParameters"]["MessageGroupId"]
    assert group_id == "$.dynamodb.Keys.pk.S"
    assert user_key("u")["pk"]["S"] == f"{USER_PREFIX}u"
    assert MAX_USER_ID_CHARS == MAX_MESSAGE_GROUP_ID_CHARS - len(USER_PREFIX) == 123


def test_a_user_id_of_123_characters_passes_and_of_124_does_not() -> None:
    assert user_id_problem("a" * 123) is None
    problem = user_id_problem("a" * 124)
    assert problem is not None
    assert "124 characters" in problem
    assert "123" in problem


def test_every_ascii_letter_digit_and_punctuation_mark_passes() -> None:
    allowed = string.ascii_letters + string.digits + string.punctuation
    for start in range(0, len(allowed), MAX_USER_ID_CHARS):
        assert user_id_problem(allowed[start : start + MAX_USER_ID_CHARS]) is None
    assert user_id_problem("auth0|66199504eddfc16953adc92e") is None


@pytest.mark.parametrize(
    ("user_id", "named"),
    [
        (" leading", "U+0020 (a space) at character 1"),
        ("a\tb", "U+0009 (a tab) at character 2"),
        ("caf\u00e9", "U+00E9 at character 4"),
        ("\U0001f600", "U+1F600 at character 1"),
        ("a\x7f", "U+007F at character 2"),
    ],
)
def test_characters_sqs_forbids_in_a_group_id_are_named_by_code_point(
    user_id: str, named: str
) -> None:
    problem = user_id_problem(user_id)
    assert problem is not None
    assert named in problem
    assert user_id not in problem  # ids may be PII: the reason names no value


def test_an_empty_user_id_is_no_user() -> None:
    assert user_id_problem("") is not None


def test_org_ids_may_hold_anything_but_nothing_or_too_much() -> None:
    assert org_id_problem("org-\u00e9t\u00e9 #1|x") is None
    assert org_id_problem("") == "an org id is empty"
    assert org_id_problem("o" * 2035) is None  # ORGANIZATION# + 2035 = 2048 bytes
    assert org_id_problem("o" * 2036) is not None
    assert org_id_problem("\u00e9" * 1018) is not None  # 2 bytes each in UTF-8


def test_replication_problem_judges_the_user_id_then_each_org() -> None:
    assert replication_problem("auth0|42", ("org-a", "org-b")) is None
    assert replication_problem("auth0|42", ()) is None
    assert replication_problem("", ("",)) == user_id_problem("")
    assert replication_problem("auth0|42", ("org-a", "")) == "an org id is empty"
