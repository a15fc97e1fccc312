"""Errors of the DynamoDB adapter: AWS errors are translated into these at the boundary."""

from __future__ import annotations

from orgsync.errors import OrgsyncError


class StoreError(OrgsyncError):
    """A storage operation failed."""


class StoreUnavailableError(StoreError):
    """Throttling, conflicts or network trouble outlasted our retries: try again later."""


class TransactionCancelledError(StoreError):
    """DynamoDB cancelled a transaction; `codes` holds one cancellation code per action."""

    def __init__(self, message: str, codes: list[str]) -> None:
        super().__init__(message)
        self.codes = codes
