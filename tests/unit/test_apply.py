"""The one apply loop, as reconcile uses it: decisions of its own, settled outcomes of its own."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from fakes import FakeReplicationStore

from orgsync.domain.apply import ApplyStatus, apply_decisions
from orgsync.domain.model import ReplicationState, UserState
from orgsync.domain.rule import Plan, membership


def repair_to(user_id: str, orgs: set[str], record: ReplicationState | None) -> Plan:
    state = UserState(email="p@example.org", status="ACTIVE", organizations=frozenset(orgs))
    seq = record.seq if record else 0
    return Plan(
        user_id=user_id,
        seq=seq,
        state=state,
        expected=record,
        puts=tuple(membership(user_id, org, state, seq) for org in sorted(orgs)),
        deletes=(),
    )


def test_settled_outcomes_of_the_callers_type_pass_through_without_a_commit():
    store = FakeReplicationStore()

    def decide(records: Mapping[str, ReplicationState | None]) -> dict[str, Plan | str]:
        return dict.fromkeys(records, "converged")

    results = apply_decisions(["u", "v"], store, decide)
    assert {r.status for r in results.values()} == {ApplyStatus.SETTLED}
    assert {r.settled for r in results.values()} == {"converged"}
    assert store.commits == 0


def test_a_fenced_out_plan_is_decided_again_on_the_record_read_after_the_conflict():
    store = FakeReplicationStore()
    store.conflicts_to_inject["u"] = 1
    seen: list[dict[str, int | None]] = []

    def decide(records: Mapping[str, ReplicationState | None]) -> dict[str, Plan | str]:
        seen.append({uid: r.revision if r else None for uid, r in records.items()})
        return {uid: repair_to(uid, {"a"}, record) for uid, record in records.items()}

    results = apply_decisions(["u", "v"], store, decide)
    assert results["u"].status is ApplyStatus.APPLIED
    assert results["u"].attempts == 2
    assert results["v"].attempts == 1
    # Only the fenced-out user is read and decided again, against the record the conflict left.
    assert seen == [{"u": None, "v": None}, {"u": 1}]
    assert store.orgs_of("u") == {"a"}


def test_a_user_left_undecided_fails_alone():
    store = FakeReplicationStore()

    def decide(records: Mapping[str, ReplicationState | None]) -> dict[str, Plan | str]:
        return {"v": repair_to("v", {"a"}, records["v"])}

    results = apply_decisions(["u", "v"], store, decide)
    assert results["u"].status is ApplyStatus.FAILED
    assert results["v"].status is ApplyStatus.APPLIED


def test_what_the_decision_raises_propagates_before_anything_is_written():
    store = FakeReplicationStore()

    def decide(records: Mapping[str, ReplicationState | None]) -> dict[str, Plan | str]:
        raise RuntimeError("users table unreadable")

    with pytest.raises(RuntimeError):
        apply_decisions(["u"], store, decide)
    assert store.commits == 0
