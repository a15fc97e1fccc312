"""How the DynamoDB adapters call AWS: AWS errors translated into ours, throttling retried.

One policy for every adapter (replication records, users), so a throttled table is waited out
the same way everywhere. Must not import the domain's rules or anything above the store.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from orgsync.store.errors import StoreError, StoreUnavailableError, TransactionCancelledError

# BatchGetItem takes at most 100 keys.
MAX_BATCH_GET_KEYS = 100
# Errors that mean "the same request may succeed later" (botocore's own retries gave up).
TRANSIENT_ERRORS = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
    }
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff
    And Jitter"): contention on one user's items clears fastest when retries spread out."""

    attempts: int = 6
    base_seconds: float = 0.025
    cap_seconds: float = 1.0

    def delays(self) -> Iterator[float]:
        for attempt in range(self.attempts - 1):
            yield random.uniform(0, min(self.cap_seconds, self.base_seconds * 2**attempt))


@dataclass(frozen=True, slots=True)
class Caller:
    """Invokes DynamoDB operations under a `RetryPolicy`; `sleep` is injectable for tests."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep

    def call(self, operation: Callable[..., Any], **kwargs: Any) -> Any:
        """One operation, translating AWS errors into ours and retrying transient ones."""
        delays = self.policy.delays()
        while True:
            try:
                return operation(**kwargs)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "TransactionCanceledException":
                    reasons = exc.response.get("CancellationReasons") or []
                    codes = [str(reason.get("Code", "None")) for reason in reasons]
                    raise TransactionCancelledError(_cancel_summary(codes), codes) from exc
                if code not in TRANSIENT_ERRORS:
                    raise StoreError(f"{exc.operation_name} failed: {code}") from exc
                delay = next_delay(delays, f"{code} persisted")
            except BotoCoreError as exc:
                delay = next_delay(delays, f"{type(exc).__name__}: {exc}")
            self.sleep(delay)

    def batch_get(self, client: Any, table: str, keys: list[dict[str, Any]]) -> list[Any]:
        """Consistent BatchGetItem of any number of keys of one table, 100 per request;
        unprocessed keys are retried."""
        found: list[Any] = []
        for start in range(0, len(keys), MAX_BATCH_GET_KEYS):
            chunk = keys[start : start + MAX_BATCH_GET_KEYS]
            request: dict[str, Any] = {table: {"Keys": chunk, "ConsistentRead": True}}
            delays = self.policy.delays()
            while request:
                response = self.call(client.batch_get_item, RequestItems=request)
                found.extend(response.get("Responses", {}).get(table, []))
                request = response.get("UnprocessedKeys") or {}
                if request:
                    self.sleep(next_delay(delays, f"BatchGetItem on {table} kept leaving keys"))
        return found


def next_delay(delays: Iterator[float], reason: str) -> float:
    """The next backoff, or StoreUnavailableError(reason) once the policy is spent."""
    try:
        return next(delays)
    except StopIteration:
        raise StoreUnavailableError(reason) from None


def _cancel_summary(codes: list[str]) -> str:
    meaningful = sorted({code for code in codes if code not in ("None", "")})
    return "transaction cancelled: " + (", ".join(meaningful) or "no reason given")
