"""The replication invariant (docs/design.md §2 rule 7): a pure comparison of two tables.

Given the users and the membership items, say exactly how the org table differs from what the
users table implies. Tests, the demo and `orgsync reconcile` all judge convergence with this.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from orgsync.domain.model import Membership, UserState


class DriftKind(StrEnum):
    MISSING = "missing"
    EXTRA = "extra"
    STALE_ATTRIBUTES = "stale_attributes"
    ORPHAN = "orphan"


@dataclass(frozen=True, slots=True)
class Drift:
    kind: DriftKind
    user_id: str
    org_id: str


@dataclass(frozen=True, slots=True)
class InvariantReport:
    drift: tuple[Drift, ...] = field(default_factory=tuple)
    users: int = 0
    memberships: int = 0

    @property
    def holds(self) -> bool:
        return not self.drift

    def users_with_drift(self) -> set[str]:
        return {item.user_id for item in self.drift}


def compare(
    users: Mapping[str, UserState],
    memberships: Iterable[Membership],
    *,
    invalid_users: Collection[str] = (),
) -> InvariantReport:
    """Compare every user's implied memberships with the membership items that exist.

    `users` holds only valid users; a user whose item is malformed has no defined projection
    and is named in `invalid_users`: its memberships are not judged here (reconcile reports it).
    """
    actual: dict[tuple[str, str], Membership] = {}
    for member in memberships:
        actual[(member.org_id, member.user_id)] = member
    drift: list[Drift] = []
    for user_id, state in users.items():
        for org_id in state.organizations:
            found = actual.get((org_id, user_id))
            if found is None:
                drift.append(Drift(DriftKind.MISSING, user_id, org_id))
            elif (found.email, found.status) != (state.email, state.status):
                drift.append(Drift(DriftKind.STALE_ATTRIBUTES, user_id, org_id))
    for org_id, user_id in actual:
        if user_id in invalid_users:
            continue
        implied = users.get(user_id)
        if implied is None:
            drift.append(Drift(DriftKind.ORPHAN, user_id, org_id))
        elif org_id not in implied.organizations:
            drift.append(Drift(DriftKind.EXTRA, user_id, org_id))
    drift.sort(key=lambda item: (item.user_id, item.org_id, item.kind))
    return InvariantReport(drift=tuple(drift), users=len(users), memberships=len(actual))
