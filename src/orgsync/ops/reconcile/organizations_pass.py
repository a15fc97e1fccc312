"""Pass `organizations`: each item of one organizations-table scan segment against the user it
belongs to, read by key; judged, and repaired in the same batch.

This pass owns the drift only the organizations table can show: `extra` memberships (of a user
in an org it does not list) and `orphan` ones (of a user with no user item), and the record
kinds of REPLICATION records whose user has no user item. Everything else about an existing
user is the `users` pass's, so each membership and each record is judged once. Memberships of
invalid user items are not judged, as in the invariant. Memory holds one scan page.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from orgsync.domain.invariant import DriftKind, compare
from orgsync.domain.model import Membership, ReplicationState
from orgsync.domain.repair import audit_user
from orgsync.ops.reconcile.context import SCAN_PAGE_ITEMS, SliceContext
from orgsync.ops.reconcile.report import UNREADABLE_RECORD, ReconcileReport, SkippedUser
from orgsync.ops.reconcile.slices import Slice
from orgsync.ops.reconcile.tally import SliceTally
from orgsync.schema.organizations import decode_membership, replication_user_id
from orgsync.schema.rejection import Rejected
from orgsync.store.organizations import Unreadable, decode_record
from orgsync.store.retry import MAX_BATCH_GET_KEYS
from orgsync.store.scan import scan_pages

# The organizations table's own view: judged here, never by the users pass.
_ORGANIZATION_SIDE = frozenset({DriftKind.EXTRA, DriftKind.ORPHAN})


@dataclass(slots=True)
class _PageItems:
    """One page's items by user id."""

    memberships: defaultdict[str, list[Membership]] = field(
        default_factory=lambda: defaultdict(list)
    )
    records: dict[str, ReplicationState | Unreadable] = field(default_factory=dict)

    def user_ids(self) -> list[str]:
        return sorted(self.memberships.keys() | self.records.keys())


def run_organizations_slice(context: SliceContext, slice_: Slice) -> ReconcileReport:
    tally = SliceTally(repair=context.repair)
    pages = scan_pages(
        context.dynamodb,
        context.tables.organizations,
        segment=slice_.segment,
        total_segments=slice_.total_segments,
        caller=context.caller,
        page_items=SCAN_PAGE_ITEMS,
    )
    for page in pages:
        items = _page_items(page)
        tally.memberships_scanned += sum(len(found) for found in items.memberships.values())
        tally.replication_records_scanned += len(items.records)
        ids = items.user_ids()
        for start in range(0, len(ids), MAX_BATCH_GET_KEYS):
            context.check_cancelled()
            drift_before = tally.users_with_drift
            _judge_batch(context, items, ids[start : start + MAX_BATCH_GET_KEYS], tally)
            context.progress(slice_.pass_, 0, tally.users_with_drift - drift_before)
        context.progress(slice_.pass_, len(page), 0)
    return tally.report(slice_.name)


def _page_items(page: list[dict[str, object]]) -> _PageItems:
    items = _PageItems()
    for item in page:
        member = decode_membership(item)
        if member is not None:
            items.memberships[member.user_id].append(member)
            continue
        user_id = replication_user_id(item)
        if user_id is not None:
            items.records[user_id] = decode_record(item)
    return items


def _judge_batch(
    context: SliceContext, items: _PageItems, user_ids: list[str], tally: SliceTally
) -> None:
    states = context.users.read_states(user_ids)
    drifted: list[str] = []
    for user_id in user_ids:
        state = states[user_id]
        if isinstance(state, Rejected):
            continue  # invalid user item: its replica is not judged (counted by the users pass)
        found = items.memberships.get(user_id, [])
        users = {} if state is None else {user_id: state}
        kinds = [d.kind for d in compare(users, found).drift if d.kind in _ORGANIZATION_SIDE]
        record = items.records.get(user_id) if state is None else None
        if isinstance(record, Unreadable):
            # Memberships are judged against the user item whatever its record holds; with no
            # fence to commit on, the user is skipped. (An unreadable record on another page
            # is found by the repair, which skips the user the same way.)
            tally.drift.update(kind.value for kind in kinds)
            tally.drift[UNREADABLE_RECORD] += 1
            tally.drifted(user_id)
            tally.skip(SkippedUser(user_id, str(record)))
            continue
        record_kind = None
        if record is not None:
            record_kind = audit_user(user_id, None, record, ()).record
        if not kinds and record_kind is None:
            continue
        tally.drifted(user_id)
        tally.drift.update(kind.value for kind in kinds)
        if record_kind is not None:
            tally.drift[record_kind.value] += 1
        drifted.append(user_id)
    if context.repair and drifted:
        tally.add_repairs(context.repairer.repair(drifted, items.memberships))
