"""Anti-entropy planning (docs/design.md §2, `orgsync reconcile`): judge a replica, plan a repair.

Pure: standard library and the domain only. A repair is an ordinary `Plan` that keeps the
REPLICATION record's `seq`, so any stream record not yet applied still wins when it arrives.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from orgsync.domain.invariant import Drift, compare
from orgsync.domain.model import Membership, ReplicationState, UserState
from orgsync.domain.rule import Plan, fingerprint, membership


class RecordDriftKind(StrEnum):
    """How a user's REPLICATION record disagrees with what its user item implies."""

    # An existing user was never replicated (written before the stream existed): backfill.
    UNREPLICATED = "unreplicated"
    # orgs, fingerprint or deleted disagree with the user item (or the record outlived it).
    RECORD_MISMATCH = "record_mismatch"
    # A chunked commit claimed the user (pending_seq set) and has not finished.
    INTERRUPTED_COMMIT = "interrupted_commit"


@dataclass(frozen=True, slots=True)
class UserAudit:
    """The drift found for one user and the plan that removes it (None when there is none)."""

    user_id: str
    memberships: tuple[Drift, ...]
    record: RecordDriftKind | None
    plan: Plan | None

    @property
    def drifted(self) -> bool:
        return self.plan is not None


def audit_user(
    user_id: str,
    state: UserState | None,
    record: ReplicationState | None,
    found: Iterable[Membership],
) -> UserAudit:
    """Compare one user's state (None: no user item) with its record and its membership items.

    `found` are the membership items that exist for this user (any org). The membership drift
    is judged exactly as the invariant judges it, so "reconcile finds nothing" and "the
    invariant holds" never disagree.
    """
    found = tuple(found)
    users = {user_id: state} if state is not None else {}
    memberships = compare(users, found).drift
    record_drift = _record_drift(state, record, found)
    plan = None
    if memberships or record_drift is not None:
        plan = _repair_plan(user_id, state, record, found)
    return UserAudit(user_id=user_id, memberships=memberships, record=record_drift, plan=plan)


def plan_repair(
    user_id: str,
    state: UserState | None,
    record: ReplicationState | None,
    found: Iterable[Membership],
) -> Plan | None:
    """The writes that make the org table and REPLICATION record exact, or None if they are."""
    return audit_user(user_id, state, record, found).plan


def _record_drift(
    state: UserState | None, record: ReplicationState | None, found: tuple[Membership, ...]
) -> RecordDriftKind | None:
    if record is None:
        if state is not None:
            return RecordDriftKind.UNREPLICATED
        # No user, no record: only stray memberships (orphans) need a plan, judged by compare.
        return None
    if record.pending_seq is not None or record.dirty:
        return RecordDriftKind.INTERRUPTED_COMMIT
    implied_orgs = state.organizations if state is not None else frozenset()
    implied_fingerprint = fingerprint(state) if state is not None else None
    if (record.orgs, record.fingerprint, record.deleted) != (
        implied_orgs,
        implied_fingerprint,
        state is None,
    ):
        return RecordDriftKind.RECORD_MISMATCH
    return None


def _repair_plan(
    user_id: str,
    state: UserState | None,
    record: ReplicationState | None,
    found: tuple[Membership, ...],
) -> Plan:
    """Rewrite every desired membership and delete every other one that may exist.

    Every desired membership is put, not only the ones seen missing or stale: `found` comes from
    a scan that is older than the record the plan is fenced on, so a membership the scan saw
    as correct may have been rewritten since by the consumer with another state's attributes,
    and the record this plan writes (with the new fingerprint) would then hide that forever.
    Deletes cover what the scan saw and whatever the record says may exist (`orgs | dirty`):
    an unconditional delete of an absent item is harmless.
    """
    desired = state.organizations if state is not None else frozenset()
    seq = record.seq if record is not None else 0
    possible = {member.org_id for member in found}
    if record is not None:
        possible |= record.possible_orgs
    puts = (
        tuple(membership(user_id, org_id, state, seq) for org_id in sorted(desired))
        if state is not None
        else ()
    )
    return Plan(
        user_id=user_id,
        seq=seq,
        state=state,
        expected=record,
        puts=puts,
        deletes=tuple(sorted(possible - desired)),
    )
