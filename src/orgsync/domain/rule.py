"""The replication rule (docs/design.md §2): level-triggered, fenced planning of membership writes.

Given a user's newest state and what its REPLICATION record says is replicated, decide whether
the change is stale and, if not, which memberships to put and delete; and say what the record
becomes when a plan commits (at once, or claimed first and committed in chunks). Pure functions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from orgsync.domain.model import Membership, ReplicationState, UserChange, UserState

# TransactWriteItems holds at most 100 actions; one is always the REPLICATION record.
MAX_TRANSACTION_ACTIONS = 100


@dataclass(frozen=True, slots=True)
class Stale:
    """The change is not newer than what is applied or being applied: acknowledge, write nothing."""

    user_id: str
    seq: int
    applied_seq: int


@dataclass(frozen=True, slots=True)
class Plan:
    """Writes that make the org table reflect `state` (None: the user is gone).

    `expected` is the REPLICATION record the plan was made against: committing is conditioned
    on it being unchanged, so a concurrent writer forces a re-read instead of a lost update.
    """

    user_id: str
    seq: int
    state: UserState | None
    expected: ReplicationState | None
    puts: tuple[Membership, ...]
    deletes: tuple[str, ...]

    @property
    def desired_orgs(self) -> frozenset[str]:
        return self.state.organizations if self.state else frozenset()

    @property
    def fingerprint(self) -> str | None:
        return fingerprint(self.state) if self.state else None

    @property
    def action_count(self) -> int:
        """Transaction actions to commit in one go: the writes plus the REPLICATION record."""
        return len(self.puts) + len(self.deletes) + 1

    @property
    def fits_one_transaction(self) -> bool:
        return self.action_count <= MAX_TRANSACTION_ACTIONS

    # -- REPLICATION transitions: what the record becomes; every writer of it uses these.

    def committed_state(self, *, fence_revision: int | None = None) -> ReplicationState:
        """The record once the plan is committed: the new orgs and seq, the next revision.

        `fence_revision` is the revision the final write is conditioned on: the expected
        record's for a one-transaction commit (the default), the claim's for a chunked one.
        """
        if fence_revision is None:
            fence_revision = self.expected.revision if self.expected else 0
        return ReplicationState(
            seq=self.seq,
            revision=fence_revision + 1,
            orgs=self.desired_orgs,
            fingerprint=self.fingerprint,
            deleted=self.state is None,
        )

    def claim_state(self) -> ReplicationState:
        """The record while a chunked commit of this plan runs (docs/design.md §2 rule 6).

        It keeps what is replicated now, records `pending_seq`, and adds the desired orgs to
        `dirty`, so that at every instant each membership item of the user lies within
        `orgs | dirty`: whoever continues after a crash, or overtakes with a newer change,
        deletes correctly.
        """
        base = self.expected or ReplicationState(seq=0, revision=0, orgs=frozenset())
        return ReplicationState(
            seq=base.seq,
            revision=base.revision + 1,
            orgs=base.orgs,
            fingerprint=base.fingerprint,
            deleted=base.deleted,
            pending_seq=self.seq,
            dirty=base.dirty | self.desired_orgs,
        )


Decision = Plan | Stale


def fingerprint(state: UserState) -> str:
    """A short digest of the attributes every membership copies.

    Stored on REPLICATION so that a change of orgs alone writes only the new memberships,
    while a change of email or status rewrites all of them, without reading any membership.
    """
    material = "\x1f".join(_marked(value) for value in (state.email, state.status))
    return hashlib.blake2b(material.encode(), digest_size=8).hexdigest()


def _marked(value: str | None) -> str:
    return "\x00" if value is None else "=" + value


def stale_against(user_id: str, seq: int, current: ReplicationState | None) -> Stale | None:
    """The fence alone: is change `seq` of the user obsolete given its REPLICATION record?

    Needs nothing but the user id and the sequence number, so it also judges records whose
    content is invalid (a redriven poison record, `orgsync dlq discard --stale`).
    """
    if current is not None:
        if current.seq >= seq:
            return Stale(user_id, seq, current.seq)
        if current.pending_seq is not None and current.pending_seq > seq:
            # A newer change has claimed the user and its message is still alive: it finishes.
            return Stale(user_id, seq, current.pending_seq)
    return None


def decide(change: UserChange, current: ReplicationState | None) -> Decision:
    """Apply the replication rule to one change against the REPLICATION record read for it."""
    stale = stale_against(change.user_id, change.seq, current)
    if stale is not None:
        return stale
    desired = change.state.organizations if change.state else frozenset()
    puts, deletes = _diff(change, current, desired)
    return Plan(
        user_id=change.user_id,
        seq=change.seq,
        state=change.state,
        expected=current,
        puts=puts,
        deletes=deletes,
    )


def _diff(
    change: UserChange, current: ReplicationState | None, desired: frozenset[str]
) -> tuple[tuple[Membership, ...], tuple[str, ...]]:
    if current is None:
        existing: frozenset[str] = frozenset()
        rewrite_all = True
    elif current.pending_seq is not None:
        # A chunked commit was interrupted: any org in orgs | dirty may hold an item with
        # either change's attributes, so delete the extra ones and rewrite every desired one.
        existing = current.possible_orgs
        rewrite_all = True
    else:
        existing = current.orgs
        rewrite_all = change.state is not None and current.fingerprint != fingerprint(change.state)
    to_put = desired if rewrite_all else desired - existing
    puts = tuple(
        membership(change.user_id, org_id, change.state, change.seq)
        for org_id in sorted(to_put)
        if change.state is not None
    )
    deletes = tuple(sorted(existing - desired))
    return puts, deletes


def membership(user_id: str, org_id: str, state: UserState, seq: int) -> Membership:
    """The membership item a user's state implies in one org."""
    return Membership(
        org_id=org_id, user_id=user_id, email=state.email, status=state.status, source_seq=seq
    )
