"""Reconcile reports merge by addition: any split of the slices merges to the same report, and
a report stays small whatever ids the tables hold (a Step Functions payload is at most 256 KB)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from orgsync.ops.reconcile import SAMPLE_SIZE, ReconcileReport, SkippedUser, merge
from orgsync.ops.reconcile.report import MAX_SAMPLE_ID_BYTES
from orgsync.ops.reconcile.tally import SliceTally

ids = st.text(alphabet="abcdefgh", min_size=1, max_size=6)

reports = st.builds(
    ReconcileReport,
    repair=st.just(True),
    users_scanned=st.integers(0, 1000),
    invalid_users=st.integers(0, 10),
    drift=st.dictionaries(st.sampled_from(["missing", "extra", "orphan"]), st.integers(1, 50)),
    users_with_drift=st.integers(0, 100),
    users_repaired=st.integers(0, 100),
    skipped=st.lists(st.builds(SkippedUser, ids, st.just("why")), max_size=5).map(tuple),
    drifted_sample=st.lists(ids, max_size=SAMPLE_SIZE, unique=True).map(lambda s: tuple(sorted(s))),
    slices=st.lists(ids, min_size=1, max_size=1).map(tuple),
)


def _counts(report: ReconcileReport) -> dict[str, object]:
    data = report.to_json()
    del data["seconds"], data["users_per_second"]
    return data


@given(st.lists(reports, max_size=12), st.integers(0, 12))
def test_merging_in_two_steps_equals_merging_at_once(
    items: list[ReconcileReport], cut: int
) -> None:
    at_once = merge(items, repair=True, seconds=1.0)
    left = merge(items[:cut], repair=True, seconds=1.0)
    right = merge(items[cut:], repair=True, seconds=1.0)
    assert _counts(merge([left, right], repair=True, seconds=1.0)) == _counts(at_once)


@given(reports)
def test_a_report_survives_its_json(report: ReconcileReport) -> None:
    again = ReconcileReport.from_json(json.loads(json.dumps(report.to_json())))
    assert _counts(again) == _counts(report)


def test_a_slice_report_of_the_longest_ids_stays_far_below_a_step_functions_payload() -> None:
    tally = SliceTally(repair=True)
    for index in range(10 * SAMPLE_SIZE):
        long_id = f"{index:05d}" + "é" * 2000  # far past any key limit: an invalid item's id
        tally.invalid(long_id)
        tally.drifted(long_id)
        tally.skip(SkippedUser(long_id, "unreadable REPLICATION record (KeyError)"))
    report = tally.report("users-0-of-1")
    assert len(report.invalid_sample) == len(report.drifted_sample) == SAMPLE_SIZE
    assert len(report.skipped) == SAMPLE_SIZE
    assert all(
        len(json.dumps(user_id)) - 2 <= MAX_SAMPLE_ID_BYTES and user_id.endswith("…")
        for user_id in report.drifted_sample
    )
    # The smallest ids are kept, whatever order the pages came in.
    assert report.skipped[0].user_id.startswith("00000")
    assert report.skipped[-1].user_id.startswith(f"{SAMPLE_SIZE - 1:05d}")
    size = len(json.dumps(report.to_json()).encode())
    assert size < 256 * 1024 / 2, size
