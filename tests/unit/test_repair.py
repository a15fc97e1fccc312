"""Repair planning for `orgsync reconcile`: one user's drift, judged and fixed with plain values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orgsync.domain.invariant import DriftKind
from orgsync.domain.model import Membership, ReplicationState, UserState
from orgsync.domain.repair import RecordDriftKind, audit_user, plan_repair
from orgsync.domain.rule import Plan, fingerprint


def user(orgs=(), *, status="ACTIVE", email="p@example.org") -> UserState:
    return UserState(email=email, status=status, organizations=frozenset(orgs))


def record_of(state: UserState | None, *, seq=7, revision=3, **extra) -> ReplicationState:
    """The record the consumer leaves once it has replicated `state` exactly."""
    values = {
        "seq": seq,
        "revision": revision,
        "orgs": state.organizations if state else frozenset(),
        "fingerprint": fingerprint(state) if state else None,
        "deleted": state is None,
    }
    values.update(extra)
    return ReplicationState(**values)


def member(org_id: str, state: UserState, *, user_id="u", seq=7) -> Membership:
    return Membership(org_id, user_id, state.email, state.status, seq)


def members(state: UserState, *, user_id="u") -> list[Membership]:
    return [member(org, state, user_id=user_id) for org in sorted(state.organizations)]


def test_an_exactly_replicated_user_needs_no_plan():
    state = user(["a", "b"])
    audit = audit_user("u", state, record_of(state), members(state))
    assert (audit.plan, audit.memberships, audit.record) == (None, (), None)


def test_a_deleted_user_with_its_tombstone_and_no_memberships_needs_no_plan():
    assert plan_repair("u", None, record_of(None), []) is None


def test_a_user_never_replicated_is_backfilled_with_seq_zero_and_no_fence():
    state = user(["a", "b"])
    audit = audit_user("u", state, None, [])
    assert audit.record is RecordDriftKind.UNREPLICATED
    assert {d.kind for d in audit.memberships} == {DriftKind.MISSING}
    plan = audit.plan
    assert isinstance(plan, Plan)
    assert (plan.seq, plan.expected, plan.deletes) == (0, None, ())
    assert [(m.org_id, m.source_seq) for m in plan.puts] == [("a", 0), ("b", 0)]


def test_a_user_without_orgs_and_without_record_still_gets_a_record():
    plan = plan_repair("u", user([]), None, [])
    assert plan is not None
    assert (plan.puts, plan.deletes, plan.desired_orgs) == ((), (), frozenset())


def test_a_missing_membership_is_repaired_keeping_the_records_seq_and_fence():
    state = user(["a", "b"])
    record = record_of(state, seq=42, revision=9)
    audit = audit_user("u", state, record, members(state)[:1])
    assert [(d.kind, d.org_id) for d in audit.memberships] == [(DriftKind.MISSING, "b")]
    assert audit.record is None
    plan = audit.plan
    assert plan is not None
    assert (plan.seq, plan.expected) == (42, record)
    # Every desired membership is rewritten: the scan that saw "a" as fine is older than the fence.
    assert [m.org_id for m in plan.puts] == ["a", "b"]
    assert all(m.source_seq == 42 for m in plan.puts)


def test_a_stray_membership_is_extra_and_deleted():
    state = user(["a"])
    found = [*members(state), member("z", state)]
    audit = audit_user("u", state, record_of(state), found)
    assert [(d.kind, d.org_id) for d in audit.memberships] == [(DriftKind.EXTRA, "z")]
    assert audit.plan is not None
    assert audit.plan.deletes == ("z",)


def test_an_edited_membership_is_stale_and_rewritten_with_the_users_attributes():
    state = user(["a"], status="SUSPENDED")
    found = [Membership("a", "u", "p@example.org", "ACTIVE", 7)]
    audit = audit_user("u", state, record_of(state), found)
    assert [d.kind for d in audit.memberships] == [DriftKind.STALE_ATTRIBUTES]
    assert audit.plan is not None
    assert [(m.org_id, m.status) for m in audit.plan.puts] == [("a", "SUSPENDED")]


def test_memberships_of_a_user_that_does_not_exist_are_orphans_and_deleted():
    found = [member("a", user(["a"])), member("b", user(["b"]))]
    audit = audit_user("u", None, None, found)
    assert {d.kind for d in audit.memberships} == {DriftKind.ORPHAN}
    plan = audit.plan
    assert plan is not None
    assert (plan.state, plan.puts, plan.deletes, plan.seq) == (None, (), ("a", "b"), 0)


def test_a_record_whose_orgs_disagree_is_rewritten_and_its_orgs_cleaned_up():
    state = user(["a"])
    record = record_of(state, orgs=frozenset({"a", "gone"}))
    audit = audit_user("u", state, record, members(state))
    assert (audit.record, audit.memberships) == (RecordDriftKind.RECORD_MISMATCH, ())
    assert audit.plan is not None
    # "gone" may still hold an item the scan did not see: deleting an absent item is harmless.
    assert audit.plan.deletes == ("gone",)


def test_a_record_with_a_stale_fingerprint_is_a_mismatch():
    state = user(["a"], email="new@example.org")
    record = record_of(user(["a"], email="old@example.org"))
    audit = audit_user("u", state, record, members(state))
    assert audit.record is RecordDriftKind.RECORD_MISMATCH


def test_a_record_still_live_for_a_deleted_user_is_a_mismatch():
    state = user(["a"])
    audit = audit_user("u", None, record_of(state), [])
    assert audit.record is RecordDriftKind.RECORD_MISMATCH
    assert audit.plan is not None
    assert (audit.plan.state, audit.plan.deletes) == (None, ("a",))


def test_a_tombstone_for_a_user_that_exists_again_is_a_mismatch():
    state = user(["a"])
    audit = audit_user("u", state, record_of(None, seq=9), members(state))
    assert audit.record is RecordDriftKind.RECORD_MISMATCH
    assert audit.plan is not None
    assert audit.plan.seq == 9


def test_an_interrupted_chunked_commit_is_finished_against_orgs_and_dirty_keeping_seq():
    old, new = user(["a", "b"]), user(["c"])
    record = record_of(old, seq=5, pending_seq=8, dirty=frozenset({"c", "d"}))
    audit = audit_user("u", new, record, [member("a", old), member("c", new)])
    assert audit.record is RecordDriftKind.INTERRUPTED_COMMIT
    plan = audit.plan
    assert plan is not None
    # seq stays 5, so the redelivery of change 8 is still applied when it comes.
    assert (plan.seq, [m.org_id for m in plan.puts], plan.deletes) == (5, ["c"], ("a", "b", "d"))


org_ids = st.sampled_from(["a", "b", "c", "d", "e"])
states = st.none() | st.builds(
    user,
    st.frozensets(org_ids),
    status=st.sampled_from(["ACTIVE", "SUSPENDED", None]),
    email=st.sampled_from(["p@example.org", "q@example.org", None]),
)
records = st.none() | st.builds(
    ReplicationState,
    seq=st.integers(0, 100),
    revision=st.integers(0, 5),
    orgs=st.frozensets(org_ids),
    fingerprint=st.none() | st.sampled_from([fingerprint(user()), "0123456789abcdef"]),
    deleted=st.booleans(),
    pending_seq=st.none() | st.integers(0, 200),
    dirty=st.frozensets(org_ids),
)
found_sets = st.lists(
    st.builds(
        Membership,
        org_id=org_ids,
        user_id=st.just("u"),
        email=st.sampled_from(["p@example.org", "x@example.org", None]),
        status=st.sampled_from(["ACTIVE", "SUSPENDED", None]),
        source_seq=st.integers(0, 100),
    ),
    unique_by=lambda m: m.org_id,
)


@given(states, records, found_sets)
def test_committing_any_repair_plan_leaves_nothing_to_repair(state, record, found):
    plan = plan_repair("u", state, record, found)
    if plan is None:
        return
    # What DynamoReplicationStore leaves behind after committing the plan.
    after = {m.org_id: m for m in found if m.org_id not in plan.deletes}
    after.update({m.org_id: m for m in plan.puts})
    revision = record.revision + 1 if record else 1
    written = ReplicationState(
        seq=plan.seq,
        revision=revision,
        orgs=plan.desired_orgs,
        fingerprint=plan.fingerprint,
        deleted=plan.state is None,
    )
    assert plan.seq == (record.seq if record else 0)
    assert plan.expected == record
    assert plan_repair("u", state, written, after.values()) is None
