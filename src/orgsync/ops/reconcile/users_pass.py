"""Pass `users`: each user of one scan segment against its REPLICATION record and the memberships
it implies, read by key; judged, and repaired in the same batch.

This pass owns the drift seen from the users' side: `missing` and `stale_attributes`
memberships (those it reads are exactly the implied ones, so it never counts an `extra`, which
is the other pass's), and the record kinds of every user that exists. Memory holds one scan page.
Items are counted as scanned by the pass that scans their table: users here, the organizations
table's memberships and records by the other pass.
"""

from __future__ import annotations

from collections import defaultdict

from orgsync.domain.invariant import compare
from orgsync.domain.model import Membership, UserState
from orgsync.domain.repair import audit_user
from orgsync.ops.reconcile.context import SCAN_PAGE_ITEMS, SliceContext
from orgsync.ops.reconcile.report import UNREADABLE_RECORD, ReconcileReport, SkippedUser
from orgsync.ops.reconcile.slices import Slice
from orgsync.ops.reconcile.tally import SliceTally
from orgsync.store.organizations import Unreadable
from orgsync.store.retry import MAX_BATCH_GET_KEYS
from orgsync.store.scan import scan_pages, users_snapshot


def run_users_slice(context: SliceContext, slice_: Slice) -> ReconcileReport:
    tally = SliceTally(repair=context.repair)
    pages = scan_pages(
        context.dynamodb,
        context.tables.users,
        segment=slice_.segment,
        total_segments=slice_.total_segments,
        caller=context.caller,
        page_items=SCAN_PAGE_ITEMS,
    )
    for page in pages:
        users = users_snapshot(page)
        tally.users_scanned += len(users.states) + len(users.invalid)
        for user_id in users.invalid:
            tally.invalid(user_id)
        ids = sorted(users.states)
        for start in range(0, len(ids), MAX_BATCH_GET_KEYS):
            batch = {
                user_id: users.states[user_id]
                for user_id in ids[start : start + MAX_BATCH_GET_KEYS]
            }
            context.check_cancelled()
            drift_before = tally.users_with_drift
            _judge_batch(context, batch, tally)
            context.progress(slice_.pass_, 0, tally.users_with_drift - drift_before)
        context.progress(slice_.pass_, len(page), 0)
    return tally.report(slice_.name)


def _judge_batch(context: SliceContext, users: dict[str, UserState], tally: SliceTally) -> None:
    records = context.organizations.records(users)
    implied = [
        (org_id, user_id) for user_id, state in users.items() for org_id in state.organizations
    ]
    found: defaultdict[str, list[Membership]] = defaultdict(list)
    for member in context.organizations.memberships(implied):
        found[member.user_id].append(member)
    drifted: list[str] = []
    for user_id, state in users.items():
        record = records[user_id]
        if isinstance(record, Unreadable):
            # Its memberships are judged all the same; with no fence to commit on, it is skipped.
            members = compare({user_id: state}, found.get(user_id, ())).drift
            tally.drift.update(item.kind.value for item in members)
            tally.drift[UNREADABLE_RECORD] += 1
            tally.drifted(user_id)
            tally.skip(SkippedUser(user_id, str(record)))
            continue
        audit = audit_user(user_id, state, record, found.get(user_id, ()))
        if audit.plan is None:
            continue
        tally.drifted(user_id)
        tally.drift.update(item.kind.value for item in audit.memberships)
        if audit.record is not None:
            tally.drift[audit.record.value] += 1
        drifted.append(user_id)
    if context.repair and drifted:
        tally.add_repairs(context.repairer.repair(drifted, found))
