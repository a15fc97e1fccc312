"""DynamoDB implementation of the replication port: consistent reads and fenced commits.

Small plans of several users are packed into one TransactWriteItems (≤ 100 actions); a plan
larger than one transaction is committed in chunks under the claim protocol of DESIGN §2 rule 6.
Only this adapter knows DynamoDB's request shapes and cancellation codes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from orgsync.domain.apply import COMMITTED, CONFLICT, CommitResult, CommitStatus
from orgsync.domain.model import ReplicationState
from orgsync.domain.rule import MAX_TRANSACTION_ACTIONS, Plan
from orgsync.schema.organizations import (
    decode_replication,
    membership_item,
    membership_key,
    replication_item,
    replication_key,
    user_id_of_replication_key,
)
from orgsync.store.errors import StoreError, StoreUnavailableError, TransactionCancelledError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

# Deleted users' REPLICATION records outlive any message: 4 days in the queue + 14 in the DLQ.
DELETED_RECORD_TTL_SECONDS = 30 * 24 * 3600
# BatchGetItem takes at most 100 keys.
MAX_BATCH_GET_KEYS = 100
# Cancellation codes that mean "try the same transaction again later", not "your read is old".
_TRANSIENT_CODES = frozenset(
    {
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    }
)
_TRANSIENT_ERRORS = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
    }
)
_FENCE_NAMES = {"#rev": "revision"}


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


ChunkHook = Callable[[str, int], None]


class DynamoReplicationStore:
    """REPLICATION records and memberships in the organizations table."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        after_chunk: ChunkHook | None = None,
    ) -> None:
        self._client = client
        self._table = table_name
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        # Called after each committed chunk of a chunked plan; fault injection uses it to
        # kill a commit between chunks, which is exactly the crash rule 6 must survive.
        self._after_chunk = after_chunk

    # -- reads ---------------------------------------------------------------------------------

    def read(self, user_ids: Collection[str]) -> dict[str, ReplicationState | None]:
        """One consistent BatchGetItem per 100 users; unprocessed keys are retried."""
        states: dict[str, ReplicationState | None] = dict.fromkeys(user_ids)
        ids = list(user_ids)
        for start in range(0, len(ids), MAX_BATCH_GET_KEYS):
            keys = [replication_key(user_id) for user_id in ids[start : start + MAX_BATCH_GET_KEYS]]
            for item in self._batch_get(keys):
                states[user_id_of_replication_key(item)] = decode_replication(item)
        return states

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
        delays = self._retry.delays()
        while request:
            response = self._call(self._client.batch_get_item, RequestItems=request)
            found.extend(response.get("Responses", {}).get(self._table, []))
            request = response.get("UnprocessedKeys") or {}
            if request:
                self._sleep(self._next_delay(delays, "BatchGetItem kept leaving keys unprocessed"))
        return found

    # -- commits -------------------------------------------------------------------------------

    def commit(self, plans: Sequence[Plan]) -> dict[str, CommitResult]:
        """Commit every plan; small ones packed several to a transaction, large ones chunked."""
        results: dict[str, CommitResult] = {}
        for group in _pack([plan for plan in plans if plan.fits_one_transaction]):
            results.update(self._commit_group(group))
        for plan in plans:
            if not plan.fits_one_transaction:
                results[plan.user_id] = self._commit_chunked(plan)
        return results

    def _commit_group(self, group: list[Plan]) -> dict[str, CommitResult]:
        actions: list[dict[str, Any]] = []
        owners: list[str] = []
        for plan in group:
            plan_actions = self._write_actions(plan)
            plan_actions.append(self._replication_put(plan, self._final_state(plan)))
            actions.extend(plan_actions)
            owners.extend([plan.user_id] * len(plan_actions))
        try:
            self._transact(actions)
        except TransactionCancelledError as exc:
            return self._after_cancelled_group(group, owners, exc)
        except StoreError as exc:
            return {plan.user_id: CommitResult(CommitStatus.FAILED, str(exc)) for plan in group}
        return dict.fromkeys((plan.user_id for plan in group), COMMITTED)

    def _after_cancelled_group(
        self, group: list[Plan], owners: list[str], exc: TransactionCancelledError
    ) -> dict[str, CommitResult]:
        fenced_out = {
            owners[index]
            for index, code in enumerate(exc.codes)
            if code == "ConditionalCheckFailed" and index < len(owners)
        }
        results: dict[str, CommitResult] = dict.fromkeys(fenced_out, CONFLICT)
        rest = [plan for plan in group if plan.user_id not in fenced_out]
        if fenced_out and rest:
            # The others were cancelled only because they shared the transaction: commit again.
            results.update(self._commit_group(rest))
        elif rest and len(rest) > 1:
            # A non-condition failure (e.g. validation) in a shared transaction: isolate it.
            for plan in rest:
                results.update(self._commit_group([plan]))
        elif rest:
            results[rest[0].user_id] = CommitResult(CommitStatus.FAILED, str(exc))
        return results

    def _commit_chunked(self, plan: Plan) -> CommitResult:
        """Claim, write in chunks, then finalise; any fence failure hands control back (CONFLICT).

        The claim records `pending_seq` and adds the desired orgs to `dirty`, so that at every
        instant each membership item of the user lies within `orgs | dirty` of the record:
        whoever continues after a crash, or overtakes with a newer change, deletes correctly.
        """
        expected = plan.expected
        base = expected or ReplicationState(seq=0, revision=0, orgs=frozenset())
        claimed = ReplicationState(
            seq=base.seq,
            revision=base.revision + 1,
            orgs=base.orgs,
            fingerprint=base.fingerprint,
            deleted=base.deleted,
            pending_seq=plan.seq,
            dirty=base.dirty | plan.desired_orgs,
        )
        try:
            self._transact([self._replication_put(plan, claimed)])
            writes = self._write_actions(plan)
            chunk_size = MAX_TRANSACTION_ACTIONS - 1
            for index, start in enumerate(range(0, len(writes), chunk_size)):
                guard = self._fence_check(plan.user_id, claimed.revision)
                self._transact([*writes[start : start + chunk_size], guard])
                if self._after_chunk is not None:
                    self._after_chunk(plan.user_id, index)
            final = self._final_state(plan, revision=claimed.revision + 1)
            self._transact([self._replication_put(plan, final, fence_revision=claimed.revision)])
        except TransactionCancelledError as exc:
            if "ConditionalCheckFailed" in exc.codes:
                return CONFLICT
            return CommitResult(CommitStatus.FAILED, str(exc))
        except StoreError as exc:
            return CommitResult(CommitStatus.FAILED, str(exc))
        return COMMITTED

    # -- request shapes ------------------------------------------------------------------------

    def _final_state(self, plan: Plan, *, revision: int | None = None) -> ReplicationState:
        previous = plan.expected.revision if plan.expected else 0
        return ReplicationState(
            seq=plan.seq,
            revision=revision if revision is not None else previous + 1,
            orgs=plan.desired_orgs,
            fingerprint=plan.fingerprint,
            deleted=plan.state is None,
        )

    def _write_actions(self, plan: Plan) -> list[dict[str, Any]]:
        actions: list[dict[str, Any]] = [
            {"Put": {"TableName": self._table, "Item": membership_item(member)}}
            for member in plan.puts
        ]
        actions.extend(
            {"Delete": {"TableName": self._table, "Key": membership_key(org_id, plan.user_id)}}
            for org_id in plan.deletes
        )
        return actions

    def _replication_put(
        self, plan: Plan, state: ReplicationState, *, fence_revision: int | None = None
    ) -> dict[str, Any]:
        expires_at = (
            int(self._clock()) + DELETED_RECORD_TTL_SECONDS
            if state.deleted and state.pending_seq is None
            else None
        )
        put: dict[str, Any] = {
            "TableName": self._table,
            "Item": replication_item(plan.user_id, state, expires_at=expires_at),
        }
        revision = fence_revision
        if revision is None and plan.expected is not None:
            revision = plan.expected.revision
        if revision is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#rev = :rev"
            put["ExpressionAttributeNames"] = _FENCE_NAMES
            put["ExpressionAttributeValues"] = {":rev": {"N": str(revision)}}
        return {"Put": put}

    def _fence_check(self, user_id: str, revision: int) -> dict[str, Any]:
        return {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": replication_key(user_id),
                "ConditionExpression": "#rev = :rev",
                "ExpressionAttributeNames": _FENCE_NAMES,
                "ExpressionAttributeValues": {":rev": {"N": str(revision)}},
            }
        }

    # -- calls with retries --------------------------------------------------------------------

    def _transact(self, actions: list[dict[str, Any]]) -> None:
        """TransactWriteItems, retrying conflicts and throttling; a failed condition raises."""
        delays = self._retry.delays()
        while True:
            try:
                self._call(self._client.transact_write_items, TransactItems=actions)
                return
            except TransactionCancelledError as exc:
                if "ConditionalCheckFailed" in exc.codes or not _TRANSIENT_CODES & set(exc.codes):
                    raise
                self._sleep(self._next_delay(delays, f"transaction kept being cancelled: {exc}"))

    def _call(self, operation: Callable[..., Any], **kwargs: Any) -> Any:
        """Invoke one DynamoDB operation, translating AWS errors into ours (with retries for
        the throttling botocore's own retries gave up on)."""
        delays = self._retry.delays()
        while True:
            try:
                return operation(**kwargs)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "TransactionCanceledException":
                    reasons = exc.response.get("CancellationReasons") or []
                    codes = [str(reason.get("Code", "None")) for reason in reasons]
                    raise TransactionCancelledError(_cancel_summary(codes), codes) from exc
                if code not in _TRANSIENT_ERRORS:
                    raise StoreError(f"{exc.operation_name} failed: {code}") from exc
                delay = self._next_delay(delays, f"{code} persisted")
            except BotoCoreError as exc:
                delay = self._next_delay(delays, f"{type(exc).__name__}: {exc}")
            self._sleep(delay)

    def _next_delay(self, delays: Iterator[float], reason: str) -> float:
        try:
            return next(delays)
        except StopIteration:
            raise StoreUnavailableError(reason) from None


def _pack(plans: list[Plan]) -> Iterator[list[Plan]]:
    """Greedy first-fit of whole plans into transactions of at most 100 actions."""
    group: list[Plan] = []
    size = 0
    for plan in plans:
        if group and size + plan.action_count > MAX_TRANSACTION_ACTIONS:
            yield group
            group, size = [], 0
        group.append(plan)
        size += plan.action_count
    if group:
        yield group


def _cancel_summary(codes: list[str]) -> str:
    meaningful = sorted({code for code in codes if code not in ("None", "")})
    return "transaction cancelled: " + (", ".join(meaningful) or "no reason given")
