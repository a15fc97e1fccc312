"""Reading DynamoDB's low-level typed attribute values (`{"S": "…"}`) without trusting them.

Pure: standard library only. Every codec of this package reads strings through here.
"""

from __future__ import annotations

from typing import Any


def string_of(value: Any) -> str | None:
    """The string an `{"S": …}` value holds; None for anything else (absent, another type)."""
    if isinstance(value, dict):
        text = value.get("S")
        if isinstance(text, str):
            return text
    return None
