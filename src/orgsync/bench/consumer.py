"""Requests per change of the consumer alone: `BatchConsumer.handle` on full Lambda-shaped batches.

No pipe, no poller: the batches are built here, so every batch is exactly full (10 records) and
the DynamoDB requests counted are the consumer's and nothing else's. Talks to the store only
through the clients it is given.
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orgsync.bench.ledger import ClientRequestCounter
from orgsync.bench.samples import (
    SEQUENCE_BASE,
    email_for,
    orgs_for,
    stream_record_body,
    user_id_for,
)
from orgsync.consumer.batch import BatchConsumer
from orgsync.consumer.dead_letter import DeadLetterForwarder
from orgsync.schema.keys import USER_PREFIX
from orgsync.store.replication import DynamoReplicationStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

BATCH_SIZE = 10  # Lambda's maximum for a FIFO event source
QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:user-dynamo-stream.fifo"
# Users of this phase live apart from the pipeline phases' users (ids start elsewhere).
_FIRST_USER = 1_000_000


@dataclass(frozen=True)
class ScenarioFigures:
    """One scenario's batches through the consumer, and what they cost."""

    name: str
    batches: int
    records: int
    applied: int
    superseded: int
    memberships_written: int
    requests_by_operation: dict[str, int]
    handler_ms: list[float] = field(repr=False)

    @property
    def dynamodb_requests(self) -> int:
        return sum(self.requests_by_operation.values())

    def per(self, denominator: int) -> float | None:
        return round(self.dynamodb_requests / denominator, 3) if denominator else None

    def as_dict(self) -> dict[str, Any]:
        durations = sorted(self.handler_ms)
        return {
            "batches": self.batches,
            "records": self.records,
            "user_changes_applied": self.applied,
            "superseded": self.superseded,
            "memberships_written": self.memberships_written,
            "dynamodb_requests": self.dynamodb_requests,
            "dynamodb_requests_by_operation": self.requests_by_operation,
            "dynamodb_requests_per_record": self.per(self.records),
            "dynamodb_requests_per_applied_change": self.per(self.applied),
            "dynamodb_requests_per_membership_written": self.per(self.memberships_written),
            "handler_ms_mean": round(sum(durations) / len(durations), 3) if durations else None,
            "handler_ms_p50": round(durations[len(durations) // 2], 3) if durations else None,
        }


@dataclass(frozen=True)
class ConsumerFigures:
    scenarios: tuple[ScenarioFigures, ...]

    def scenario(self, name: str) -> ScenarioFigures:
        return next(s for s in self.scenarios if s.name == name)

    @property
    def handler_seconds_per_full_batch(self) -> float:
        """Mean handler time of a full batch of distinct users: Lambda's billed duration."""
        durations = [
            ms for s in self.scenarios if s.name.startswith("distinct") for ms in s.handler_ms
        ]
        return sum(durations) / len(durations) / 1000 if durations else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {s.name: s.as_dict() for s in self.scenarios}


def lambda_event(bodies: list[str], group_ids: list[str]) -> dict[str, Any]:
    """The event Lambda sends for a FIFO batch (one record per message)."""
    records = []
    for body, group in zip(bodies, group_ids, strict=True):
        records.append(
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": uuid.uuid4().hex,
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": str(int(time.time() * 1000)),
                    "MessageGroupId": group,
                    "MessageDeduplicationId": uuid.uuid4().hex,
                    "SequenceNumber": "18849496460467696128",
                    "SenderId": "AROAEXAMPLE:pipe",
                    "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


def measure_consumer(
    dynamodb: DynamoDBClient,
    sqs: SQSClient,
    *,
    organizations_table: str,
    dead_letter_queue_url: str,
    batches: int = 20,
) -> ConsumerFigures:
    """Three scenarios: new distinct users, the same users moving an org, bursts of one user."""
    counter = ClientRequestCounter()
    counter.attach(dynamodb)
    consumer = BatchConsumer(
        DynamoReplicationStore(dynamodb, organizations_table),
        DeadLetterForwarder(sqs, dead_letter_queue_url),
    )
    seqs = itertools.count(SEQUENCE_BASE, 3)
    users = [_FIRST_USER + i for i in range(batches * BATCH_SIZE)]

    def distinct(write: int) -> list[tuple[int, int]]:
        return [(user, write) for user in users]

    bursts = [(_FIRST_USER - 1 - batch, write) for batch in range(batches) for write in range(10)]
    return ConsumerFigures(
        scenarios=(
            _run(consumer, counter, "distinct users, first change", distinct(0), seqs),
            _run(consumer, counter, "distinct users, org move", distinct(1), seqs),
            _run(consumer, counter, "burst of one user", bursts, seqs),
        )
    )


def _run(
    consumer: BatchConsumer,
    counter: ClientRequestCounter,
    name: str,
    writes: list[tuple[int, int]],
    seqs: itertools.count[int],
) -> ScenarioFigures:
    before = counter.snapshot()
    durations: list[float] = []
    applied = superseded = memberships = 0
    for start in range(0, len(writes), BATCH_SIZE):
        chunk = writes[start : start + BATCH_SIZE]
        bodies, groups = [], []
        for user, write in chunk:
            user_id = user_id_for(user)
            bodies.append(
                stream_record_body(
                    user_id,
                    seq=next(seqs),
                    email=email_for(user, write),
                    organizations=orgs_for(user, write),
                    old_organizations=orgs_for(user, write - 1) if write else None,
                )
            )
            groups.append(USER_PREFIX + user_id)
        event = lambda_event(bodies, groups)
        started = time.perf_counter()
        _, report = consumer.handle(event, None)
        durations.append((time.perf_counter() - started) * 1000)
        applied += report.counters["UserChangesApplied"]
        superseded += report.counters["SupersededEvents"]
        memberships += report.counters["MembershipsPut"] + report.counters["MembershipsDeleted"]
    spent = counter.snapshot() - before
    return ScenarioFigures(
        name=name,
        batches=len(durations),
        records=len(writes),
        applied=applied,
        superseded=superseded,
        memberships_written=memberships,
        requests_by_operation=spent.calls_by_operation("dynamodb"),
        handler_ms=durations,
    )
