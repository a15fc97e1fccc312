"""Decoding of Pipe-delivered stream records: every row of docs/bad-input.md has a test here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stream_records import body, stream_record, user_image

from orgsync.domain.model import ChangeKind, UserChange
from orgsync.schema.rejection import Rejected, RejectReason
from orgsync.schema.stream import Ignored, IgnoreReason, decode_body, decode_record

EVENTS = Path(__file__).resolve().parents[2] / "events"


def decoded(record: dict) -> UserChange:
    result = decode_body(body(record))
    assert isinstance(result, UserChange), result
    return result


def rejected(payload: str) -> Rejected:
    result = decode_body(payload)
    assert isinstance(result, Rejected), result
    return result


def test_the_sample_event_decodes_to_the_users_whole_new_state():
    record = json.loads((EVENTS / "stream-record-modify.json").read_text())
    change = decode_record(record)
    assert isinstance(change, UserChange)
    assert change.user_id == "auth0|66199504eddfc16953adc92e"
    assert change.seq == 4421584500000000017450439091
    assert change.kind is ChangeKind.UPSERT
    assert change.state is not None
    assert change.state.organizations == {"org-acme", "org-globex"}
    assert change.state.status == "ACTIVE"


def test_a_body_that_is_not_json_is_rejected():
    assert rejected("{not json").reason is RejectReason.INVALID_JSON


@pytest.mark.parametrize(
    "payload",
    ["[]", "42", '"text"', "{}", '{"dynamodb": {}}', '{"dynamodb": {"Keys": {"pk": {"N": "1"}}}}'],
)
def test_json_that_is_not_a_stream_record_is_rejected(payload):
    assert rejected(payload).reason is RejectReason.NOT_A_STREAM_RECORD


def test_an_unknown_event_name_is_rejected_and_names_the_user():
    result = rejected(body(stream_record("u1", 1, ["a"], event_name="DELETE")))
    assert result.reason is RejectReason.UNKNOWN_EVENT_NAME
    assert result.user_id == "u1"


@pytest.mark.parametrize("sequence", [None, "", "12a", "-5", "1.5", 17])
def test_a_missing_or_non_numeric_sequence_number_is_rejected(sequence):
    record = stream_record("u1", 1, ["a"])
    if sequence is None:
        del record["dynamodb"]["SequenceNumber"]
    else:
        record["dynamodb"]["SequenceNumber"] = sequence
    assert rejected(body(record)).reason is RejectReason.INVALID_SEQUENCE_NUMBER


@pytest.mark.parametrize("event_name", ["INSERT", "MODIFY"])
def test_an_insert_or_modify_without_new_image_is_rejected(event_name):
    record = stream_record("u1", 1, ["a"], event_name=event_name)
    del record["dynamodb"]["NewImage"]
    assert rejected(body(record)).reason is RejectReason.MISSING_NEW_IMAGE


@pytest.mark.parametrize(
    ("pk", "sk", "reason"),
    [
        ("ORGANIZATION#o1", "METADATA", IgnoreReason.NOT_A_USER),
        ("user#u1", "METADATA", IgnoreReason.NOT_A_USER),
        ("USER#u1", "PROFILE", IgnoreReason.NOT_A_USER),
        ("USER#", "METADATA", IgnoreReason.EMPTY_USER_ID),
    ],
)
def test_keys_that_are_not_a_user_are_ignored(pk, sk, reason):
    result = decode_body(body(stream_record("x", 1, ["a"], pk=pk, sk=sk)))
    assert result == Ignored(reason)


def test_missing_organizations_means_no_memberships():
    assert decoded(stream_record("u1", 1, None)).state.organizations == frozenset()


def test_empty_organizations_means_no_memberships():
    assert decoded(stream_record("u1", 1, [])).state.organizations == frozenset()


def test_organizations_as_a_string_set_are_accepted():
    change = decoded(stream_record("u1", 1, ["b", "a"], orgs_as_set=True))
    assert change.state.organizations == {"a", "b"}


def test_duplicate_organizations_in_a_list_count_once():
    assert decoded(stream_record("u1", 1, ["a", "a", "b"])).state.organizations == {"a", "b"}


@pytest.mark.parametrize(
    "organizations",
    [
        {"L": [{"S": "a"}, {"N": "5"}]},
        {"L": [{"S": ""}]},
        {"L": [{"M": {}}]},
        {"S": "org-acme"},
        {"N": "7"},
        {"SS": ["a", ""]},
        "org-acme",
    ],
)
def test_malformed_organizations_are_rejected(organizations):
    image = user_image("u1", ["a"])
    image["organizations"] = organizations
    record = stream_record("u1", 1, new_image=image)
    assert rejected(body(record)).reason is RejectReason.INVALID_ORGANIZATIONS


@pytest.mark.parametrize(
    ("user_id", "org_id"),
    [("auth0|66199504eddfc16953adc92e", "org#1"), ("a#b|c", "ünïcødé-org"), ("用户", "组织|#")],
)
def test_ids_with_hash_pipe_or_non_ascii_survive_intact(user_id, org_id):
    change = decoded(stream_record(user_id, 1, [org_id]))
    assert change.user_id == user_id
    assert change.state.organizations == {org_id}


def test_the_user_id_is_everything_after_the_first_user_prefix():
    assert decoded(stream_record("USER#nested", 1, ["a"])).user_id == "USER#nested"


def test_a_user_id_too_long_for_a_membership_sort_key_is_rejected():
    long_id = "u" * (1024 - len("MEMBERSHIP#") + 1)
    assert rejected(body(stream_record(long_id, 1, ["a"]))).reason is RejectReason.KEY_TOO_LONG


def test_the_longest_user_id_that_fits_a_sort_key_is_accepted():
    fitting_id = "u" * (1024 - len("MEMBERSHIP#"))
    assert decoded(stream_record(fitting_id, 1, ["a"])).user_id == fitting_id


def test_an_org_id_too_long_for_a_partition_key_is_rejected():
    long_org = "o" * (2048 - len("ORGANIZATION#") + 1)
    assert rejected(body(stream_record("u1", 1, [long_org]))).reason is RejectReason.KEY_TOO_LONG


def test_multibyte_characters_count_in_bytes_for_key_limits():
    long_id = "é" * 510  # 1020 bytes + "MEMBERSHIP#" > 1024
    assert rejected(body(stream_record(long_id, 1, ["a"]))).reason is RejectReason.KEY_TOO_LONG


def test_missing_email_and_status_replicate_as_absent_attributes():
    change = decoded(stream_record("u1", 1, ["a"], email=None, status=None))
    assert change.state.email is None
    assert change.state.status is None


def test_an_email_that_is_not_a_string_is_rejected_without_echoing_its_value():
    image = user_image("u1", ["a"])
    image["email"] = {"N": "12345"}
    result = rejected(body(stream_record("u1", 1, new_image=image)))
    assert result.reason is RejectReason.INVALID_ATTRIBUTE
    assert "12345" not in result.detail


def test_a_remove_is_a_change_to_no_state():
    change = decoded(stream_record("u1", 9, event_name="REMOVE"))
    assert change.kind is ChangeKind.REMOVE
    assert change.state is None
    assert not change.by_ttl


def test_a_ttl_deletion_is_a_remove_marked_as_made_by_ttl():
    record = stream_record("u1", 9, event_name="REMOVE")
    record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    change = decoded(record)
    assert change.kind is ChangeKind.REMOVE
    assert change.by_ttl


def test_rejections_never_carry_an_email():
    image = user_image("u1", ["a"], email="secret@example.org")
    image["organizations"] = {"L": [{"N": "1"}]}
    result = rejected(body(stream_record("u1", 1, new_image=image)))
    assert "secret@example.org" not in result.detail
