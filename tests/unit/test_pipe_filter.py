"""RecordFilter: EventBridge pattern semantics on Lambda-shaped DynamoDB stream records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orgsync.local.pipes.errors import PipeFilterError
from orgsync.local.pipes.filter import RecordFilter

USER_PATTERN = json.dumps(
    {"dynamodb": {"Keys": {"sk": {"S": ["METADATA"]}, "pk": {"S": [{"prefix": "USER#"}]}}}}
)


def record(pk: str, sk: str, event_name: str = "INSERT", **new_image: Any) -> dict[str, Any]:
    keys = {"pk": {"S": pk}, "sk": {"S": sk}}
    dynamodb: dict[str, Any] = {"Keys": keys, "SequenceNumber": "100", "SizeBytes": 10}
    if new_image:
        dynamodb["NewImage"] = {**keys, **{k: {"S": v} for k, v in new_image.items()}}
    return {
        "eventID": "e1",
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "dynamodb": dynamodb,
    }


def test_no_pattern_matches_every_record():
    assert RecordFilter([]).matches(record("ORG#1", "MEMBER#2"))


def test_exact_value_matches_only_that_value():
    only_metadata = RecordFilter([json.dumps({"dynamodb": {"Keys": {"sk": {"S": ["METADATA"]}}}})])
    assert only_metadata.matches(record("USER#1", "METADATA"))
    assert not only_metadata.matches(record("USER#1", "PROFILE"))


def test_prefix_matches_user_keys_and_drops_org_items():
    users = RecordFilter([USER_PATTERN])
    assert users.matches(record("USER#auth0|66199504eddfc16953adc92e", "METADATA"))
    assert not users.matches(record("ORG#1", "METADATA"))
    assert not users.matches(record("USER#1", "REPLICATION"))


def test_anything_but_excludes_the_listed_values():
    not_suspended = RecordFilter(
        [
            json.dumps(
                {"dynamodb": {"NewImage": {"status": {"S": [{"anything-but": ["SUSPENDED"]}]}}}}
            )
        ]
    )
    assert not_suspended.matches(record("USER#1", "METADATA", status="ACTIVE"))
    assert not not_suspended.matches(record("USER#1", "METADATA", status="SUSPENDED"))


def test_anything_but_does_not_match_a_missing_field():
    not_suspended = RecordFilter(
        [json.dumps({"dynamodb": {"NewImage": {"status": {"S": [{"anything-but": "SUSPENDED"}]}}}})]
    )
    assert not not_suspended.matches(record("USER#1", "METADATA", event_name="REMOVE"))


def test_anything_but_prefix_excludes_keys_with_that_prefix():
    not_orgs = RecordFilter(
        [json.dumps({"dynamodb": {"Keys": {"pk": {"S": [{"anything-but": {"prefix": "ORG#"}}]}}}})]
    )
    assert not_orgs.matches(record("USER#1", "METADATA"))
    assert not not_orgs.matches(record("ORG#1", "METADATA"))


def test_exists_true_requires_the_leaf_and_exists_false_requires_its_absence():
    has_email = RecordFilter(
        [json.dumps({"dynamodb": {"NewImage": {"email": {"S": [{"exists": True}]}}}})]
    )
    no_image = RecordFilter(
        [json.dumps({"dynamodb": {"NewImage": {"pk": {"S": [{"exists": False}]}}}})]
    )
    with_email = record("USER#1", "METADATA", email="someone@example.org")
    removed = record("USER#1", "METADATA", event_name="REMOVE")
    assert has_email.matches(with_email)
    assert not has_email.matches(removed)
    assert no_image.matches(removed)
    assert not no_image.matches(with_email)


def test_exists_on_an_object_node_never_matches_as_in_eventbridge():
    # EventBridge documents exists as leaf-only; moto flattens objects, so the same holds.
    image_exists = RecordFilter([json.dumps({"dynamodb": {"NewImage": [{"exists": True}]}})])
    assert not image_exists.matches(record("USER#1", "METADATA", email="a@example.org"))


def test_several_patterns_match_when_any_of_them_matches():
    users_or_orgs = RecordFilter(
        [
            USER_PATTERN,
            json.dumps({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "ORG#"}]}}}}),
        ]
    )
    assert users_or_orgs.matches(record("USER#1", "METADATA"))
    assert users_or_orgs.matches(record("ORG#1", "MEMBER#2"))
    assert not users_or_orgs.matches(record("TEAM#1", "METADATA"))


def test_invalid_patterns_are_refused_like_createpipe_refuses_them():
    with pytest.raises(PipeFilterError):
        RecordFilter(["{not json"])
    with pytest.raises(PipeFilterError):
        RecordFilter([json.dumps({"dynamodb": {"Keys": {"sk": {"S": "METADATA"}}}})])
    with pytest.raises(PipeFilterError):
        RecordFilter(["[]"])
    with pytest.raises(PipeFilterError):
        RecordFilter([USER_PATTERN] * 6)
