"""The replication rule: staleness, diffs, claim continuation, coalescing, the apply loop."""

from __future__ import annotations

from fakes import FakeReplicationStore

from orgsync.domain.apply import ApplyStatus, apply_changes
from orgsync.domain.coalesce import coalesce
from orgsync.domain.model import ChangeKind, ReplicationState, UserChange, UserState
from orgsync.domain.rule import Plan, Stale, decide, fingerprint


def change(
    user_id: str, seq: int, orgs=(), *, status="ACTIVE", email="p@example.org"
) -> UserChange:
    state = UserState(email=email, status=status, organizations=frozenset(orgs))
    return UserChange(
        user_id=user_id, seq=seq, event_id=f"e{seq}", kind=ChangeKind.UPSERT, state=state
    )


def removal(user_id: str, seq: int) -> UserChange:
    return UserChange(
        user_id=user_id, seq=seq, event_id=f"e{seq}", kind=ChangeKind.REMOVE, state=None
    )


def replicated(seq: int, orgs=(), *, status="ACTIVE", revision=1, **extra) -> ReplicationState:
    state = UserState(email="p@example.org", status=status, organizations=frozenset(orgs))
    return ReplicationState(
        seq=seq, revision=revision, orgs=frozenset(orgs), fingerprint=fingerprint(state), **extra
    )


def plan_of(decision) -> Plan:
    assert isinstance(decision, Plan), decision
    return decision


def test_a_first_change_puts_every_membership():
    plan = plan_of(decide(change("u", 5, ["a", "b"]), None))
    assert [m.org_id for m in plan.puts] == ["a", "b"]
    assert plan.deletes == ()
    assert all(m.source_seq == 5 for m in plan.puts)


def test_an_older_or_equal_change_is_stale():
    assert isinstance(decide(change("u", 5, ["a"]), replicated(5, ["b"])), Stale)
    assert isinstance(decide(change("u", 4, ["a"]), replicated(5, ["b"])), Stale)


def test_sequence_numbers_compare_as_integers_not_strings():
    # "9" > "10" as strings; as stream sequence numbers 10 is newer.
    assert isinstance(decide(change("u", 10, ["a"]), replicated(9, ["b"])), Plan)


def test_moving_a_user_between_orgs_replaces_the_membership():
    plan = plan_of(decide(change("u", 6, ["b"]), replicated(5, ["a"])))
    assert [m.org_id for m in plan.puts] == ["b"]
    assert plan.deletes == ("a",)


def test_joining_one_more_org_writes_only_the_new_membership():
    plan = plan_of(decide(change("u", 6, ["a", "b"]), replicated(5, ["a"])))
    assert [m.org_id for m in plan.puts] == ["b"]
    assert plan.deletes == ()


def test_a_status_change_rewrites_every_membership():
    plan = plan_of(
        decide(change("u", 6, ["a", "b"], status="SUSPENDED"), replicated(5, ["a", "b"]))
    )
    assert sorted(m.org_id for m in plan.puts) == ["a", "b"]
    assert {m.status for m in plan.puts} == {"SUSPENDED"}


def test_a_removal_deletes_every_membership():
    plan = plan_of(decide(removal("u", 6), replicated(5, ["a", "b"])))
    assert plan.puts == ()
    assert plan.deletes == ("a", "b")
    assert plan.state is None


def test_a_change_older_than_a_pending_claim_is_stale():
    current = replicated(5, ["a"], pending_seq=9, dirty=frozenset({"x"}))
    assert isinstance(decide(change("u", 7, ["b"]), current), Stale)


def test_continuing_an_interrupted_chunked_commit_deletes_from_orgs_and_dirty_and_rewrites_all():
    current = replicated(5, ["a", "b"], pending_seq=9, dirty=frozenset({"c", "d"}))
    plan = plan_of(decide(change("u", 9, ["b", "c"]), current))
    assert sorted(m.org_id for m in plan.puts) == ["b", "c"]
    assert plan.deletes == ("a", "d")


def test_a_newer_change_overtaking_a_claim_cleans_up_the_claims_orgs_too():
    current = replicated(5, ["a"], pending_seq=9, dirty=frozenset({"x", "y"}))
    plan = plan_of(decide(change("u", 12, ["a"]), current))
    assert plan.deletes == ("x", "y")


def test_a_plan_counts_its_replication_record_as_an_action():
    plan = plan_of(decide(change("u", 1, [f"o{i}" for i in range(99)]), None))
    assert plan.action_count == 100
    assert plan.fits_one_transaction
    bigger = plan_of(decide(change("u", 1, [f"o{i}" for i in range(100)]), None))
    assert not bigger.fits_one_transaction


def test_coalescing_keeps_the_newest_change_of_each_user():
    result = coalesce(
        [
            ("m1", change("u", 3)),
            ("m2", change("v", 1)),
            ("m3", change("u", 7)),
            ("m4", change("u", 5)),
        ]
    )
    assert result.newest["u"][0] == "m3"
    assert result.newest["v"][0] == "m2"
    assert result.superseded == {"m1", "m4"}


def test_coalescing_a_duplicate_keeps_the_first_copy():
    duplicate = change("u", 3)
    result = coalesce([("m1", duplicate), ("m2", duplicate)])
    assert result.newest["u"][0] == "m1"
    assert result.superseded == {"m2"}


def test_the_apply_loop_reads_once_and_commits_once_for_distinct_users():
    store = FakeReplicationStore()
    results = apply_changes({f"u{i}": change(f"u{i}", 1, ["a"]) for i in range(10)}, store)
    assert {r.status for r in results.values()} == {ApplyStatus.APPLIED}
    assert (store.reads, store.commits) == (1, 1)


def test_a_conflict_is_re_read_and_re_planned_not_retried_blindly():
    store = FakeReplicationStore()
    store.conflicts_to_inject["u"] = 2
    results = apply_changes({"u": change("u", 4, ["a", "b"])}, store)
    assert results["u"].status is ApplyStatus.APPLIED
    assert results["u"].attempts == 3
    assert store.orgs_of("u") == {"a", "b"}


def test_a_user_that_keeps_conflicting_fails_without_failing_others():
    store = FakeReplicationStore()
    store.conflicts_to_inject["u"] = 99
    results = apply_changes(
        {"u": change("u", 4, ["a"]), "v": change("v", 4, ["a"])}, store, max_attempts=3
    )
    assert results["u"].status is ApplyStatus.FAILED
    assert results["v"].status is ApplyStatus.APPLIED


def test_replaying_any_older_change_or_any_change_twice_changes_nothing():
    store = FakeReplicationStore()
    history = [
        change("u", 1, ["a"]),
        change("u", 2, ["a", "b"]),
        change("u", 3, ["c"], status="SUSPENDED"),
    ]
    for item in history:
        apply_changes({"u": item}, store)
    final = dict(store.memberships)
    for item in [*history, *reversed(history), history[-1]]:
        results = apply_changes({"u": item}, store)
        assert results["u"].status is ApplyStatus.SETTLED
        assert isinstance(results["u"].settled, Stale)
    assert store.memberships == final


def test_a_committed_plan_leaves_the_new_orgs_and_seq_under_the_next_revision():
    current = replicated(3, ["a"], revision=7)
    plan = decide(change("u", 5, ["b"], status="SUSPENDED"), current)
    assert isinstance(plan, Plan)
    committed = plan.committed_state()
    assert (committed.seq, committed.revision, committed.orgs) == (5, 8, frozenset({"b"}))
    assert committed.fingerprint == plan.fingerprint
    assert committed.pending_seq is None
    assert not committed.deleted
    gone = decide(removal("u", 6), current)
    assert isinstance(gone, Plan)
    assert gone.committed_state().deleted


def test_a_claim_keeps_what_is_replicated_and_bounds_every_membership_the_user_may_have():
    current = replicated(3, ["a", "b"], revision=7)
    plan = decide(change("u", 5, ["b", "c"]), current)
    assert isinstance(plan, Plan)
    claim = plan.claim_state()
    assert (claim.seq, claim.revision, claim.orgs) == (3, 8, frozenset({"a", "b"}))
    assert claim.pending_seq == 5
    assert claim.possible_orgs == {"a", "b", "c"}
    # The final write is fenced on the claim: one revision after it.
    assert plan.committed_state(fence_revision=claim.revision).revision == 9
