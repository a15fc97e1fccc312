"""Values of the replication domain: users, their changes, memberships and replication records.

Pure data; imports only the standard library, so the rules can be tested without any AWS emulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ChangeKind(StrEnum):
    """What a stream record says happened to a user: it exists with a new state, or it is gone."""

    UPSERT = "UPSERT"
    REMOVE = "REMOVE"


@dataclass(frozen=True, slots=True)
class UserState:
    """The attributes of a user that replication copies, after validation."""

    email: str | None
    status: str | None
    organizations: frozenset[str]


@dataclass(frozen=True, slots=True)
class UserChange:
    """One decoded stream record of a user: the user's whole new state (None once removed)."""

    user_id: str
    seq: int
    event_id: str
    kind: ChangeKind
    state: UserState | None
    created_at: float | None = None
    by_ttl: bool = False


@dataclass(frozen=True, slots=True)
class Membership:
    """A membership item as replication writes it; `source_seq` is the change that wrote it."""

    org_id: str
    user_id: str
    email: str | None
    status: str | None
    source_seq: int


@dataclass(frozen=True, slots=True)
class ReplicationState:
    """A user's REPLICATION record: what is replicated now, and the fence for the next write.

    `revision` grows on every write of the record (consumer and reconcile alike), so one
    condition on it detects any concurrent writer. `pending_seq`/`dirty` exist only while a
    chunked commit is in progress: membership items may then exist for any org in
    `orgs | dirty`, which is what whoever continues must diff against.
    """

    seq: int
    revision: int
    orgs: frozenset[str]
    fingerprint: str | None = None
    deleted: bool = False
    pending_seq: int | None = None
    dirty: frozenset[str] = field(default_factory=frozenset)

    @property
    def possible_orgs(self) -> frozenset[str]:
        """Every org that may hold a membership item of this user right now."""
        return self.orgs | self.dirty
