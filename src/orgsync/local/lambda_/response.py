"""How Lambda reads a handler's result for an SQS batch: which messages succeeded, which failed.

Pure: Lambda developer guide, "Implementing partial batch responses".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchOutcome:
    """Which messages of an invocation are deleted (succeeded) and which stay (failed)."""

    succeeded: tuple[str, ...]
    failed: tuple[str, ...]
    error: str | None = None  # why the whole batch failed, when it did


def decide_batch_outcome(
    message_ids: Sequence[str],
    *,
    response: object,
    error: str | None,
    report_batch_item_failures: bool,
) -> BatchOutcome:
    """Lambda's reading of a handler's result (Lambda developer guide, "partial batch responses").

    An error fails the whole batch. Without ReportBatchItemFailures any return is success. With
    it: no response, an empty object or an empty/null `batchItemFailures` is success; listed ids
    fail; an empty, null or unknown `itemIdentifier`, or a response of another shape, fails all.
    """
    everything = tuple(message_ids)
    if error is not None:
        return BatchOutcome(succeeded=(), failed=everything, error=error)
    if not report_batch_item_failures:
        return BatchOutcome(succeeded=everything, failed=())
    if response is None:
        return BatchOutcome(succeeded=everything, failed=())
    if not isinstance(response, dict):
        return _whole_batch_failed(everything, f"response is not an object: {response!r:.200}")
    failures = response.get("batchItemFailures")
    if failures is None:
        return BatchOutcome(succeeded=everything, failed=())
    if not isinstance(failures, list):
        return _whole_batch_failed(everything, "batchItemFailures is not a list")
    known = set(everything)
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in known:
            return _whole_batch_failed(everything, f"invalid batch item failure {item!r:.200}")
        failed.add(identifier)
    return BatchOutcome(
        succeeded=tuple(i for i in everything if i not in failed),
        failed=tuple(i for i in everything if i in failed),
    )


def _whole_batch_failed(message_ids: tuple[str, ...], reason: str) -> BatchOutcome:
    return BatchOutcome(succeeded=(), failed=message_ids, error=reason)
