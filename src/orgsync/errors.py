"""The root of orgsync's exceptions; each layer defines its own subclasses beside its code."""

from __future__ import annotations


class OrgsyncError(Exception):
    """Anything orgsync raises on purpose derives from this, so callers can catch one type."""
