"""One SQS batch: decode, coalesce per user, apply, judge poison by the fence, report per message.

The whole batch is planned and committed together (one BatchGetItem, users packed into shared
transactions); Powertools' FIFO processor then turns the per-message outcomes into the partial
batch response, failing the rest of a group after its first failure (skip_group_on_error).

A record that fails validation but still names its user and sequence number is judged by the
fence before it is dead-lettered: the same BatchGetItem reads its user's REPLICATION record, and
if a change at least as new is applied, the record is stale (acknowledged), not poison. Without
that, a poison record whose user was fixed since would come straight back to the DLQ on every
redrive, and the DLQ would never empty.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from orgsync.consumer.dead_letter import Rejection, RejectionSink
from orgsync.domain.apply import ApplyResult, ApplyStatus, ReplicationPort, apply_decisions
from orgsync.domain.coalesce import coalesce
from orgsync.domain.model import ChangeKind, ReplicationState, UserChange
from orgsync.domain.rule import Plan, Stale, decide, stale_against
from orgsync.errors import OrgsyncError
from orgsync.schema.rejection import Rejected
from orgsync.schema.stream import Ignored, StreamIdentity, decode_body, read_identity
from orgsync.store.errors import UnreadableRecordError

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    """What became of one message. Only FAILED leaves it on the queue for another try."""

    APPLIED = "applied"
    STALE = "stale"
    SUPERSEDED = "superseded"
    IGNORED = "ignored"
    DEAD_LETTERED = "dead_lettered"
    FAILED = "failed"


class RecordFailedError(OrgsyncError):
    """Raised to Powertools for a message that must be retried; carries the reason."""


@dataclass(frozen=True, slots=True)
class MessageOutcome:
    outcome: Outcome
    user_id: str | None = None
    seq: int | None = None
    event_id: str | None = None
    reason: str | None = None


@dataclass(slots=True)
class BatchReport:
    """Per-message outcomes of a batch plus the counters that become metrics."""

    outcomes: dict[str, MessageOutcome]
    counters: Counter[str]
    lags_ms: list[float]

    def check(self, record: SQSRecord) -> None:
        """The Powertools record handler: succeed or raise, as decided for the whole batch."""
        result = self.outcomes.get(record.message_id)
        if result is None or result.outcome is Outcome.FAILED:
            raise RecordFailedError(result.reason if result else "message was not processed")


@dataclass(frozen=True, slots=True)
class _FenceRead:
    """The settled outcome of a user read only to judge its rejected records: nothing to apply."""


_FENCE_READ = _FenceRead()
Fences = Mapping[str, ReplicationState | None]


class BatchConsumer:
    """Processes SQS batches of stream records against the replication port."""

    def __init__(
        self,
        port: ReplicationPort,
        forwarder: RejectionSink,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._port = port
        self._forwarder = forwarder
        self._clock = clock

    def handle(
        self, event: Mapping[str, Any], context: LambdaContext | None
    ) -> tuple[PartialItemFailureResponse, BatchReport]:
        """Process a Lambda SQS event; returns the partial batch response and the report."""
        records = [SQSRecord(record) for record in event.get("Records", [])]
        report = self.process(records)
        # A new processor per batch: it holds per-batch state, and the local poller runs
        # several invocations at once in one process.
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
        response = process_partial_response(
            event=dict(event), record_handler=report.check, processor=processor, context=context
        )
        return response, report

    def process(self, records: Sequence[SQSRecord]) -> BatchReport:
        report = BatchReport(outcomes={}, counters=Counter(), lags_ms=[])
        report.counters["RecordsReceived"] += len(records)
        changes: list[tuple[str, UserChange]] = []
        rejections: list[Rejection] = []
        for record in records:
            decoded = decode_body(record.body)
            if isinstance(decoded, Ignored):
                self._settle(
                    report,
                    record.message_id,
                    MessageOutcome(Outcome.IGNORED, reason=decoded.reason),
                )
                report.counters[f"Ignored.{decoded.reason}"] += 1
            elif isinstance(decoded, Rejected):
                rejections.append(
                    Rejection(
                        message_id=record.message_id,
                        body=record.body,
                        group_id=record.attributes.message_group_id,
                        reason=decoded.reason,
                        detail=decoded.detail,
                    )
                )
            else:
                changes.append((record.message_id, decoded))
        identities = {
            rejection.message_id: identity
            for rejection in rejections
            if (identity := read_identity(rejection.body)) is not None
        }
        fences = self._apply(report, changes, {i.user_id for i in identities.values()})
        poison = [
            rejection
            for rejection in rejections
            if not self._stale_rejection(
                report, rejection, identities.get(rejection.message_id), fences
            )
        ]
        self._forward(report, poison)
        return report

    def _stale_rejection(
        self,
        report: BatchReport,
        rejection: Rejection,
        identity: StreamIdentity | None,
        fences: Fences,
    ) -> bool:
        """Settle a rejected record as stale when the fence says it no longer matters."""
        if identity is None or identity.user_id not in fences:
            return False  # unreadable, or the fence could not be read: dead-letter as before
        stale = stale_against(identity.user_id, identity.seq, fences[identity.user_id])
        if stale is None:
            return False
        report.counters["StaleEventsSkipped"] += 1
        report.counters[f"StaleRejected.{rejection.reason}"] += 1
        self._settle(
            report,
            rejection.message_id,
            MessageOutcome(
                Outcome.STALE,
                user_id=identity.user_id,
                seq=identity.seq,
                event_id=identity.event_id,
                reason=f"{rejection.reason}; fenced by applied seq {stale.applied_seq}",
            ),
        )
        return True

    def _forward(self, report: BatchReport, rejections: Sequence[Rejection]) -> None:
        if not rejections:
            return
        sent = self._forwarder.forward(rejections)
        for rejection in rejections:
            error = sent.get(rejection.message_id, "not sent")
            if error is None:
                report.counters["PermanentFailures"] += 1
                result = MessageOutcome(Outcome.DEAD_LETTERED, reason=rejection.reason)
            else:
                report.counters["TransientFailures"] += 1
                result = MessageOutcome(
                    Outcome.FAILED, reason=f"{rejection.reason}; DLQ forward failed: {error}"
                )
            self._settle(report, rejection.message_id, result)

    def _apply(
        self,
        report: BatchReport,
        changes: list[tuple[str, UserChange]],
        fence_users: Collection[str],
    ) -> Fences:
        """Apply each user's newest change; returns the records first read for `fence_users`.

        The fence users ride along in the apply loop's first BatchGetItem (no extra request when
        the batch has changes too); they get no decision to commit. A user whose record could not
        be read (the store failed) is absent from the result, so its records are dead-lettered.
        """
        if not changes and not fence_users:
            return {}
        coalesced = coalesce(changes)
        by_message = dict(changes)
        for message_id in sorted(coalesced.superseded):
            change = by_message[message_id]
            report.counters["SupersededEvents"] += 1
            self._settle(report, message_id, _described(Outcome.SUPERSEDED, change))
        newest = {user_id: change for user_id, (_, change) in coalesced.newest.items()}
        first_read: dict[str, ReplicationState | None] = {}

        def decide_all(
            records: Mapping[str, ReplicationState | None],
        ) -> dict[str, Plan | Stale | _FenceRead]:
            for user_id, record in records.items():
                first_read.setdefault(user_id, record)
            return {
                user_id: decide(newest[user_id], record) if user_id in newest else _FENCE_READ
                for user_id, record in records.items()
            }

        users = [*newest, *sorted(set(fence_users) - newest.keys())]
        results: dict[str, ApplyResult[Stale | _FenceRead]]
        unreadable: dict[str, str] = {}
        while True:
            try:
                readable = [user_id for user_id in users if user_id not in unreadable]
                results = apply_decisions(readable, self._port, decide_all)
                break
            except UnreadableRecordError as exc:
                # A record orgsync did not write: that user fails (and so, after its retries,
                # reaches the DLQ with the reason); the loop runs again for everyone else.
                unreadable[exc.user_id] = exc.reason
            except OrgsyncError as exc:
                results = {
                    user_id: ApplyResult(ApplyStatus.FAILED, error=str(exc)) for user_id in newest
                }
                break
        for user_id, reason in unreadable.items():
            if user_id in newest:
                results[user_id] = ApplyResult(ApplyStatus.FAILED, error=reason)
        now = self._clock()
        for user_id, (message_id, change) in coalesced.newest.items():
            self._settle(report, message_id, self._applied(report, change, results[user_id], now))
        return {user_id: first_read[user_id] for user_id in fence_users if user_id in first_read}

    def _applied(
        self,
        report: BatchReport,
        change: UserChange,
        result: ApplyResult[Stale | _FenceRead],
        now: float,
    ) -> MessageOutcome:
        if result.status is ApplyStatus.SETTLED:
            report.counters["StaleEventsSkipped"] += 1
            return _described(Outcome.STALE, change)
        if result.status is ApplyStatus.FAILED or result.plan is None:
            report.counters["TransientFailures"] += 1
            return _described(Outcome.FAILED, change, result.error)
        report.counters["UserChangesApplied"] += 1
        report.counters["MembershipsPut"] += len(result.plan.puts)
        report.counters["MembershipsDeleted"] += len(result.plan.deletes)
        if change.kind is ChangeKind.REMOVE and change.by_ttl:
            report.counters["TtlDeletions"] += 1
        if change.created_at is not None:
            report.lags_ms.append(max(0.0, (now - change.created_at) * 1000))
        return _described(Outcome.APPLIED, change)

    @staticmethod
    def _settle(report: BatchReport, message_id: str, result: MessageOutcome) -> None:
        report.outcomes[message_id] = result
        level = (
            logging.WARNING
            if result.outcome in (Outcome.FAILED, Outcome.DEAD_LETTERED)
            else logging.INFO
        )
        # One line per record, ids and outcome only: never images, never emails.
        logger.log(
            level,
            "record %s",
            result.outcome,
            extra={
                "message_id": message_id,
                "user_id": result.user_id,
                "event_id": result.event_id,
                "sequence_number": result.seq,
                "outcome": str(result.outcome),
                "reason": result.reason,
            },
        )


def _described(outcome: Outcome, change: UserChange, reason: str | None = None) -> MessageOutcome:
    return MessageOutcome(
        outcome, user_id=change.user_id, seq=change.seq, event_id=change.event_id, reason=reason
    )
