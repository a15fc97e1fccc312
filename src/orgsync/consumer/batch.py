"""One SQS batch: decode, forward poison, coalesce per user, apply, and report per message.

The whole batch is planned and committed together (one BatchGetItem, users packed into shared
transactions); Powertools' FIFO processor then turns the per-message outcomes into the partial
batch response, failing the rest of a group after its first failure (skip_group_on_error).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from orgsync.consumer.dead_letter import Rejection, RejectionSink
from orgsync.domain.apply import ApplyResult, ApplyStatus, ReplicationPort, apply_changes
from orgsync.domain.coalesce import coalesce
from orgsync.domain.model import ChangeKind, UserChange
from orgsync.domain.rule import Stale
from orgsync.errors import OrgsyncError
from orgsync.schema.rejection import Rejected
from orgsync.schema.stream import Ignored, decode_body

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
        self._forward(report, rejections)
        self._apply(report, changes)
        return report

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

    def _apply(self, report: BatchReport, changes: list[tuple[str, UserChange]]) -> None:
        if not changes:
            return
        coalesced = coalesce(changes)
        by_message = dict(changes)
        for message_id in sorted(coalesced.superseded):
            change = by_message[message_id]
            report.counters["SupersededEvents"] += 1
            self._settle(report, message_id, _described(Outcome.SUPERSEDED, change))
        newest = {user_id: change for user_id, (_, change) in coalesced.newest.items()}
        results: dict[str, ApplyResult[Stale]]
        try:
            results = apply_changes(newest, self._port)
        except OrgsyncError as exc:
            results = {
                user_id: ApplyResult(ApplyStatus.FAILED, error=str(exc)) for user_id in newest
            }
        now = self._clock()
        for user_id, (message_id, change) in coalesced.newest.items():
            self._settle(report, message_id, self._applied(report, change, results[user_id], now))

    def _applied(
        self, report: BatchReport, change: UserChange, result: ApplyResult[Stale], now: float
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
