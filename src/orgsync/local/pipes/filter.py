"""FilterCriteria for the local pipe: EventBridge pattern semantics on the Lambda-shaped record.

The only orgsync module that imports moto (see the import below); nothing else here touches AWS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

# moto already implements EventBridge pattern matching (exact, prefix, suffix, anything-but,
# exists, numeric, wildcard, $or); re-implementing it would be a second, less-tested copy.
# Only the local pipe uses this module, and moto is a runtime dependency of the local stack.
from moto.events.exceptions import InvalidEventPatternException
from moto.events.models import EventPattern

from orgsync.local.pipes.errors import PipeFilterError

# CreatePipe limits (eb-pipes-event-filtering.html).
MAX_PATTERNS = 5
MAX_PATTERN_LENGTH = 4096


class RecordFilter:
    """Matches a record when any pattern matches; no patterns match everything, as in Pipes."""

    def __init__(self, patterns: Sequence[str]) -> None:
        if len(patterns) > MAX_PATTERNS:
            raise PipeFilterError(f"{len(patterns)} filter patterns; Pipes allows {MAX_PATTERNS}")
        self._patterns: list[EventPattern] = []
        for raw in patterns:
            if len(raw) > MAX_PATTERN_LENGTH:
                raise PipeFilterError(
                    f"a filter pattern has {len(raw)} characters; Pipes allows {MAX_PATTERN_LENGTH}"
                )
            try:
                parsed = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise PipeFilterError(f"filter pattern is not JSON: {raw!r}") from exc
            if not isinstance(parsed, dict) or not parsed:
                raise PipeFilterError(f"filter pattern is not a non-empty JSON object: {raw!r}")
            try:
                self._patterns.append(EventPattern.load(raw))
            except InvalidEventPatternException as exc:
                raise PipeFilterError(f"invalid filter pattern {raw!r}: {exc.message}") from exc

    def matches(self, record: Mapping[str, Any]) -> bool:
        if not self._patterns:
            return True
        # moto types the argument as its PutEvents entry; the matcher reads any JSON object.
        event: Any = dict(record)
        return any(pattern.matches_event(event) for pattern in self._patterns)
