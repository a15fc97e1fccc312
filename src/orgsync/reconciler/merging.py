"""The merge step of a distributed run: every map's slice reports into the run's report.

Reports merge by addition (`orgsync.ops.reconcile.merge`), so the run's report is the one
`orgsync reconcile` would print for the same slices. It is written to the results bucket under
reports/<execution>.json and returned as the state machine's output, with what did not report:
children that failed or never started (FAILED and PENDING result files) and, given the run's
segment count, slices no result file names at all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

from orgsync.ops.reconcile import SAMPLE_SIZE, ReconcileReport, all_slices, merge
from orgsync.reconciler.events import MergeEvent
from orgsync.reconciler.results import MapResults, ResultsBucket, read_map_results

REPORTS_PREFIX: Final = "reports/"

logger = logging.getLogger(__name__)


def report_key(execution: str) -> str:
    return f"{REPORTS_PREFIX}{execution}.json"


def merge_run(bucket: ResultsBucket, event: MergeEvent, *, now: datetime) -> dict[str, Any]:
    """Read every map's results, merge them, write the run's report; return it with its key."""
    results = MapResults()
    for location in event.results:
        read = read_map_results(bucket, location)
        results.reports.extend(read.reports)
        results.failed.extend(read.failed)
        results.pending.extend(read.pending)
    reports = _one_per_slice(results.reports)
    # The run's wall time, from the execution's start (never negative under clock skew).
    seconds = max(0.0, (now - event.started).total_seconds())
    merged = merge(reports, repair=event.repair, seconds=seconds)
    missing = None
    if event.total_segments is not None:
        expected = {slice_.name for slice_ in all_slices(event.total_segments)}
        missing = len(expected - set(merged.slices))
    # A slice that failed and then succeeded (a redrive reruns failed children) is finished.
    succeeded = set(merged.slices)
    failed = set(results.failed) - succeeded
    pending = set(results.pending) - succeeded - failed
    unfinished = sorted(failed | pending)
    output: dict[str, Any] = {
        **merged.to_json(),
        "report_key": report_key(event.execution),
        "failed_slices": len(failed),
        "pending_slices": len(pending),
        "missing_slices": missing,
        "unfinished_sample": unfinished[:SAMPLE_SIZE],
        "complete": not failed and not pending and not missing,
    }
    bucket.write_json(output["report_key"], output)
    return output


def _one_per_slice(reports: Iterable[ReconcileReport]) -> list[ReconcileReport]:
    """A slice's report counted once: a redriven map run can list a slice again."""
    by_slice: dict[tuple[str, ...], ReconcileReport] = {}
    for report in reports:
        if report.slices in by_slice:
            logger.warning("slice %s reported twice; counted once", ", ".join(report.slices))
        by_slice[report.slices] = report
    return list(by_slice.values())
