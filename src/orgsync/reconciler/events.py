"""The two events the state machine sends the reconcile function, read strictly.

A bad event is a ValueError naming what is wrong: the state machine's retrier tries the slice
again, then fails it (and with it the run, at ToleratedFailurePercentage 0), rather than have
the function guess. Flags must be JSON booleans: `bool("false")` is True, and a run that
repairs when asked only to audit is the one mistake this contract must not allow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from orgsync.ops.reconcile import MAX_TOTAL_SEGMENTS, Pass, Slice

ACTION_SLICE: Final = "slice"
ACTION_MERGE: Final = "merge"
# Step Functions execution names: 1 to 80 characters, no whitespace and no "/" (so the name is
# safe as one segment of the report's S3 key).
_EXECUTION_NAME: Final = re.compile(r"[^\s/\\]{1,80}")


class BadEventError(ValueError):
    """The event is not one the reconcile function takes; the message says why."""


@dataclass(frozen=True, slots=True)
class SliceEvent:
    """`{"action": "slice", "pass": ..., "segment": i, "total_segments": n, "repair": bool}`."""

    slice_: Slice
    repair: bool


@dataclass(frozen=True, slots=True)
class ResultLocation:
    """A Distributed Map's `ResultWriterDetails`: where its manifest.json is."""

    bucket: str
    key: str


@dataclass(frozen=True, slots=True)
class MergeEvent:
    """`{"action": "merge", "repair": bool, "results": [ResultWriterDetails, ...],
    "execution": name or ARN, "started": ISO 8601, "total_segments": n (optional)}`."""

    repair: bool
    results: tuple[ResultLocation, ...]
    execution: str  # the execution's name: the report is reports/<execution>.json
    started: datetime
    # When given, the merge names how many of the run's slices reported nothing.
    total_segments: int | None = None


def parse_event(event: object) -> SliceEvent | MergeEvent:
    if not isinstance(event, Mapping):
        raise BadEventError(f"the event must be a JSON object, got {type(event).__name__}")
    action = event.get("action")
    if action == ACTION_SLICE:
        return _slice_event(event)
    if action == ACTION_MERGE:
        return _merge_event(event)
    raise BadEventError(f"unknown action {action!r}: expected {ACTION_SLICE!r} or {ACTION_MERGE!r}")


def _slice_event(event: Mapping[str, Any]) -> SliceEvent:
    passes = [pass_.value for pass_ in Pass]
    pass_ = event.get("pass")
    if pass_ not in passes:
        raise BadEventError(f"bad slice: pass {pass_!r} is not one of {passes}")
    total = _integer(event, "total_segments", "slice")
    segment = _integer(event, "segment", "slice")
    try:
        slice_ = Slice(Pass(pass_), segment, total)
    except ValueError as exc:
        raise BadEventError(f"bad slice: {exc}") from exc
    return SliceEvent(slice_=slice_, repair=_flag(event, "repair", "slice"))


def _merge_event(event: Mapping[str, Any]) -> MergeEvent:
    results = event.get("results")
    if not isinstance(results, list) or not results:
        raise BadEventError("bad merge: results must be a non-empty list of ResultWriterDetails")
    total = None
    if event.get("total_segments") is not None:
        total = _integer(event, "total_segments", "merge")
        if not 1 <= total <= MAX_TOTAL_SEGMENTS:
            raise BadEventError(f"bad merge: total_segments must be 1 to {MAX_TOTAL_SEGMENTS}")
    return MergeEvent(
        repair=_flag(event, "repair", "merge"),
        results=tuple(_location(item) for item in results),
        execution=_execution_name(event.get("execution")),
        started=_started(event.get("started")),
        total_segments=total,
    )


def _integer(event: Mapping[str, Any], name: str, what: str) -> int:
    value = event.get(name)
    # bool is an int in Python; 2.0 from a JSON number is not a segment either.
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadEventError(f"bad {what}: {name} must be an integer, got {value!r}")
    return value


def _flag(event: Mapping[str, Any], name: str, what: str) -> bool:
    value = event.get(name)
    if not isinstance(value, bool):
        raise BadEventError(f"bad {what}: {name} must be true or false, got {value!r}")
    return value


def _location(item: object) -> ResultLocation:
    if not isinstance(item, Mapping):
        raise BadEventError(f"bad merge: a result must be a ResultWriterDetails object: {item!r}")
    bucket, key = item.get("Bucket"), item.get("Key")
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise BadEventError(f"bad merge: a result needs a Bucket and a Key: {item!r}")
    return ResultLocation(bucket=bucket, key=key)


def _execution_name(value: object) -> str:
    # $$.Execution.Name, or the execution's ARN (…:execution:<machine>:<name>).
    name = value.rsplit(":", 1)[-1] if isinstance(value, str) else ""
    if not _EXECUTION_NAME.fullmatch(name) or name in {".", ".."}:
        raise BadEventError(f"bad merge: execution must be an execution name or ARN: {value!r}")
    return name


def _started(value: object) -> datetime:
    # $$.Execution.StartTime, e.g. "2025-01-31T12:00:00.123Z".
    if not isinstance(value, str):
        raise BadEventError(f"bad merge: started must be an ISO 8601 time, got {value!r}")
    try:
        started = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadEventError(f"bad merge: started must be an ISO 8601 time: {value!r}") from exc
    return started if started.tzinfo is not None else started.replace(tzinfo=UTC)
