"""Coalescing within one SQS batch: only each user's newest change is applied (docs/design.md §2).

Pure: standard library and the domain model only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orgsync.domain.model import UserChange


@dataclass(frozen=True, slots=True)
class Coalesced:
    """The newest change per user in a batch, and the message ids the newest ones supersede."""

    newest: dict[str, tuple[str, UserChange]]
    superseded: frozenset[str]


def coalesce(changes: Iterable[tuple[str, UserChange]]) -> Coalesced:
    """Keep only the newest change of each user (by sequence number) among (message id, change).

    The newest change carries the user's whole state, so applying it alone reaches the same
    result as applying all of them in order, at the cost of one apply instead of N.
    """
    newest: dict[str, tuple[str, UserChange]] = {}
    superseded: set[str] = set()
    for message_id, change in changes:
        held = newest.get(change.user_id)
        if held is None:
            newest[change.user_id] = (message_id, change)
        elif change.seq > held[1].seq:
            superseded.add(held[0])
            newest[change.user_id] = (message_id, change)
        else:
            superseded.add(message_id)
    return Coalesced(newest=newest, superseded=frozenset(superseded))
