"""DynamoDB implementation of the replication port: consistent reads and fenced commits.

Small plans of several users are packed into one TransactWriteItems (≤ 100 actions); a plan
larger than one transaction is committed in chunks under the claim protocol of docs/design.md
§2 rule 6. What the REPLICATION record becomes is the plan's to say (`Plan.committed_state`,
`Plan.claim_state`); this adapter only knows DynamoDB's request shapes and cancellation codes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from orgsync.domain.apply import COMMITTED, CONFLICT, CommitResult, CommitStatus
from orgsync.domain.model import ReplicationState
from orgsync.domain.rule import MAX_TRANSACTION_ACTIONS, Plan
from orgsync.schema.keys import membership_key, replication_key
from orgsync.schema.organizations import (
    FENCE_ATTRIBUTE,
    membership_item,
    replication_item,
)
from orgsync.store.errors import StoreError, TransactionCancelledError, UnreadableRecordError
from orgsync.store.organizations import OrganizationsReader, Unreadable
from orgsync.store.retry import Caller, RetryPolicy, next_delay

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

# Deleted users' REPLICATION records outlive any message: 4 days in the queue + 14 in the DLQ.
DELETED_RECORD_TTL_SECONDS = 30 * 24 * 3600
# Cancellation codes that mean "try the same transaction again later", not "your read is old".
_TRANSIENT_CODES = frozenset(
    {
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    }
)
_FENCE_NAMES = {"#rev": FENCE_ATTRIBUTE}

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
        self._caller = Caller(retry or RetryPolicy(), sleep)
        self._reader = OrganizationsReader(client, table_name, self._caller)
        self._clock = clock
        self._sleep = sleep
        # Called after each committed chunk of a chunked plan; fault injection uses it to
        # kill a commit between chunks, which is exactly the crash rule 6 must survive.
        self._after_chunk = after_chunk

    # -- reads ---------------------------------------------------------------------------------

    def read(self, user_ids: Collection[str]) -> dict[str, ReplicationState | None]:
        """One consistent BatchGetItem per 100 users; unprocessed keys are retried.

        A record orgsync did not write raises `UnreadableRecordError` naming its user: there is
        no fence to commit on, and guessing one could overwrite a newer change.
        """
        states: dict[str, ReplicationState | None] = {}
        for user_id, record in self._reader.records(user_ids).items():
            if isinstance(record, Unreadable):
                raise UnreadableRecordError(user_id, str(record))
            states[user_id] = record
        return states

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
            plan_actions.append(self._replication_put(plan, plan.committed_state()))
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

        Between the claim and the final put the record is `plan.claim_state()`, which bounds
        every membership item the user may have (see there).
        """
        claimed = plan.claim_state()
        try:
            self._transact([self._replication_put(plan, claimed)])
            writes = self._write_actions(plan)
            chunk_size = MAX_TRANSACTION_ACTIONS - 1
            for index, start in enumerate(range(0, len(writes), chunk_size)):
                guard = self._fence_check(plan.user_id, claimed.revision)
                self._transact([*writes[start : start + chunk_size], guard])
                if self._after_chunk is not None:
                    self._after_chunk(plan.user_id, index)
            final = plan.committed_state(fence_revision=claimed.revision)
            self._transact([self._replication_put(plan, final, fence_revision=claimed.revision)])
        except TransactionCancelledError as exc:
            if "ConditionalCheckFailed" in exc.codes:
                return CONFLICT
            return CommitResult(CommitStatus.FAILED, str(exc))
        except StoreError as exc:
            return CommitResult(CommitStatus.FAILED, str(exc))
        return COMMITTED

    # -- request shapes ------------------------------------------------------------------------

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
        delays = self._caller.policy.delays()
        while True:
            try:
                self._caller.call(self._client.transact_write_items, TransactItems=actions)
                return
            except TransactionCancelledError as exc:
                if "ConditionalCheckFailed" in exc.codes or not _TRANSIENT_CODES & set(exc.codes):
                    raise
                self._sleep(next_delay(delays, f"transaction kept being cancelled: {exc}"))


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
