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


class UnreadableRecordError(StoreError):
    """A REPLICATION record orgsync did not write (it cannot be decoded): no fence to commit on.

    Not transient: the record stays as it is until an operator fixes it, so the apply loop must
    not retry it; reconcile skips the user and reports it."""

    def __init__(self, user_id: str, reason: str) -> None:
        super().__init__(reason)
        self.user_id = user_id
        self.reason = reason
