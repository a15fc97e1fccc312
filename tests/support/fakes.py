"""In-memory implementations of the consumer's ports, for unit tests only."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from orgsync.consumer.dead_letter import Rejection
from orgsync.domain.apply import COMMITTED, CONFLICT, CommitResult, CommitStatus
from orgsync.domain.model import Membership, ReplicationState
from orgsync.domain.rule import Plan


class FakeReplicationStore:
    """Keeps REPLICATION records and memberships in dicts, honouring the revision fence."""

    def __init__(self) -> None:
        self.records: dict[str, ReplicationState] = {}
        self.memberships: dict[tuple[str, str], Membership] = {}
        self.reads = 0
        self.commits = 0
        self.conflicts_to_inject: dict[str, int] = {}
        self.failures_to_inject: set[str] = set()
        self.read_error: Exception | None = None

    def read(self, user_ids: Collection[str]) -> dict[str, ReplicationState | None]:
        self.reads += 1
        if self.read_error is not None:
            raise self.read_error
        return {user_id: self.records.get(user_id) for user_id in user_ids}

    def commit(self, plans: Sequence[Plan]) -> dict[str, CommitResult]:
        self.commits += 1
        results: dict[str, CommitResult] = {}
        for plan in plans:
            if plan.user_id in self.failures_to_inject:
                results[plan.user_id] = CommitResult(CommitStatus.FAILED, "injected")
                continue
            if self.conflicts_to_inject.get(plan.user_id, 0) > 0:
                self.conflicts_to_inject[plan.user_id] -= 1
                self._bump(plan.user_id)
                results[plan.user_id] = CONFLICT
                continue
            if self.records.get(plan.user_id) != plan.expected:
                results[plan.user_id] = CONFLICT
                continue
            for member in plan.puts:
                self.memberships[(member.org_id, member.user_id)] = member
            for org_id in plan.deletes:
                self.memberships.pop((org_id, plan.user_id), None)
            self.records[plan.user_id] = plan.committed_state()
            results[plan.user_id] = COMMITTED
        return results

    def orgs_of(self, user_id: str) -> set[str]:
        return {org for (org, user) in self.memberships if user == user_id}

    def _bump(self, user_id: str) -> None:
        """Simulate a concurrent writer: same content, new revision."""
        current = self.records.get(user_id)
        if current is None:
            self.records[user_id] = ReplicationState(seq=0, revision=1, orgs=frozenset())
        else:
            self.records[user_id] = ReplicationState(
                seq=current.seq,
                revision=current.revision + 1,
                orgs=current.orgs,
                fingerprint=current.fingerprint,
                deleted=current.deleted,
            )


class FakeDeadLetterSink:
    """Collects what the consumer forwards; `refuse` makes a forward of those ids fail."""

    def __init__(self) -> None:
        self.forwarded: list[Rejection] = []
        self.refuse: set[str] = set()

    def forward(self, rejections: Sequence[Rejection]) -> dict[str, str | None]:
        results: dict[str, str | None] = {}
        for rejection in rejections:
            if rejection.message_id in self.refuse:
                results[rejection.message_id] = "injected: SendMessageBatch failed"
            else:
                self.forwarded.append(rejection)
                results[rejection.message_id] = None
        return results
