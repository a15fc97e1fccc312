"""Convergence under faults: random histories through the real local pipeline, then the invariant.

Each history runs under its own drawn chaos spec (seed and rates), writes users (puts, attribute
changes, org moves, users in more than 100 orgs, deletions, re-creations), non-user items,
invalid user items and poison messages sent straight to the main queue. At the end the faults
are silenced, the pipeline drained, everything dead-lettered redriven (in FIFO or shuffled
order), drained again, and docs/design.md §2 rule 7 checked for every user of the tables.

ORGSYNC_SOAK_EXAMPLES=N runs N histories per store (scripts/soak); CI runs a few.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from typing import Any, ClassVar

import boto3
import pytest
from convergence_harness import Figures, StackHolder
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from orgsync.local.chaos import ChaosSpec
from orgsync.local.stack import EmbeddedStack
from orgsync.ops.dlq import RedriveMethod, redrive
from orgsync.store.scan import check_invariant

pytestmark = pytest.mark.e2e

SOAK_EXAMPLES = int(os.environ.get("ORGSYNC_SOAK_EXAMPLES", "0"))
CI_EXAMPLES = {"moto": 20, "dynamodb-local": 12}
STEPS = 15 if not SOAK_EXAMPLES else 10
DRAIN_TIMEOUT = 120.0
MAX_REDRIVE_ROUNDS = 4
SOAK_PROGRESS_EVERY = 25

SMALL_ORGS = [f"org-{index}" for index in range(8)]
BIG_ORGS = [f"big-{index}" for index in range(200)]
STATUSES = ["ACTIVE", "SUSPENDED", "INVITED"]


def chaos_specs() -> st.SearchStrategy[ChaosSpec]:
    """Every fault on in every history (a zero rate would waste a CI example), rates drawn."""
    return st.builds(
        ChaosSpec,
        seed=st.integers(0, 2**31 - 1),
        duplicate=st.sampled_from([0.1, 0.3]),
        crash=st.sampled_from([0.05, 0.2]),
        throttle=st.sampled_from([0.02, 0.05]),
        conflict=st.sampled_from([0.05, 0.2]),
        chunk=st.sampled_from([0.3, 0.6]),
        delay=st.sampled_from([0.03, 0.1]),
        restart=st.sampled_from([0.01, 0.03]),
    )


def _client(service: str, endpoint_url: str) -> Any:
    # The test's own writes and checks go to the store directly: the faults are for the pipeline.
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="orgsynctest",
        aws_secret_access_key="orgsynctest",
    )


class ConvergenceMachine(RuleBasedStateMachine):
    holder: ClassVar[StackHolder]

    users = Bundle("users")

    def __init__(self) -> None:
        super().__init__()
        self.stack: EmbeddedStack = self.holder.begin_history()
        self.figures: Figures = self.holder.figures
        self.history = uuid.uuid4().hex[:8]
        self.serial = 0
        self.big_writes = 0
        self.dynamodb = _client("dynamodb", self.stack.store_endpoint_url)
        self.sqs = _client("sqs", self.stack.store_endpoint_url)
        self.users_table = self.stack.model.table("UsersTable").name
        self.organizations_table = self.stack.model.table("OrganizationsTable").name
        queues = self.stack.resources.queue_urls
        self.queue_url = queues["UserStreamQueue"]
        self.dead_letter_url = queues["UserStreamDeadLetterQueue"]
        self.spec = ChaosSpec()
        self.shuffled_redrive = False
        self.faults_before: dict[str, int] = {}

    @property
    def chaos(self) -> Any:
        assert self.stack.chaos is not None
        return self.stack.chaos

    # -- history

    @initialize(
        target=users,
        spec=chaos_specs(),
        shuffled=st.booleans(),
        population=st.lists(
            st.lists(st.sampled_from(SMALL_ORGS), max_size=4, unique=True), min_size=3, max_size=6
        ),
    )
    def start_faults(
        self, spec: ChaosSpec, shuffled: bool, population: list[list[str]]
    ) -> MultipleResults[str]:
        """The history's faults, and a first population of users (so every history has work)."""
        self.spec, self.shuffled_redrive = spec, shuffled
        self.faults_before = self.chaos.counts()
        self.chaos.reconfigure(spec)
        return multiple(*(self.create_user("plain", orgs, STATUSES[0]) for orgs in population))

    @rule(
        user_id=users,
        moves=st.lists(
            st.lists(st.sampled_from(SMALL_ORGS), max_size=4, unique=True), min_size=2, max_size=6
        ),
    )
    def change_rapidly(self, user_id: str, moves: list[list[str]]) -> None:
        """Several changes of one user in a row: coalesced in a batch, or racing each other."""
        for orgs in moves:
            self._put(user_id, orgs, "ACTIVE")

    @rule(
        target=users,
        shape=st.sampled_from(["plain", "auth0|", "hash#"]),
        orgs=st.lists(st.sampled_from(SMALL_ORGS), max_size=4, unique=True),
        status=st.sampled_from(STATUSES),
    )
    def create_user(self, shape: str, orgs: list[str], status: str) -> str:
        self.serial += 1
        user_id = {
            "plain": f"u{self.history}-{self.serial}",
            "auth0|": f"auth0|{self.history}{self.serial:04d}",
            "hash#": f"team#{self.history}#{self.serial}",
        }[shape]
        self._put(user_id, orgs, status)
        return user_id

    @rule(
        user_id=users,
        orgs=st.lists(st.sampled_from(SMALL_ORGS), max_size=5, unique=True),
        status=st.sampled_from(STATUSES),
    )
    def put_user(self, user_id: str, orgs: list[str], status: str) -> None:
        """Moves between orgs, attribute changes, and re-creation after a deletion."""
        self._put(user_id, orgs, status)

    @rule(user_id=users, status=st.sampled_from(STATUSES))
    def change_status(self, user_id: str, status: str) -> None:
        self.dynamodb.update_item(
            TableName=self.users_table,
            Key=_user_key(user_id),
            UpdateExpression="SET #s = :s, email = :e",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":s": {"S": status},
                ":e": {"S": f"{self.serial}.{status.lower()}@example.org"},
            },
        )

    @precondition(lambda self: self.big_writes < 1)
    @rule(user_id=users, count=st.integers(101, 200), offset=st.integers(0, 199))
    def join_many_orgs(self, user_id: str, count: int, offset: int) -> None:
        """More than 100 memberships: a chunked commit (docs/design.md §2 rule 6)."""
        self.big_writes += 1
        orgs = [BIG_ORGS[(offset + index) % len(BIG_ORGS)] for index in range(count)]
        self._put(user_id, orgs, "ACTIVE", string_set=True)

    @rule(user_id=users)
    def delete_user(self, user_id: str) -> None:
        self.dynamodb.delete_item(TableName=self.users_table, Key=_user_key(user_id))

    @rule(kind=st.sampled_from(["config", "other-sort-key"]))
    def write_non_user_item(self, kind: str) -> None:
        self.serial += 1
        key = (
            {"pk": {"S": f"CONFIG#{self.history}-{self.serial}"}, "sk": {"S": "METADATA"}}
            if kind == "config"
            else {"pk": {"S": f"USER#x{self.history}"}, "sk": {"S": f"PROFILE#{self.serial}"}}
        )
        self.dynamodb.put_item(TableName=self.users_table, Item={**key, "v": {"N": "1"}})

    @rule(user_id=users)
    def write_invalid_user_item(self, user_id: str) -> None:
        """A user item the consumer can never apply: it goes to the DLQ with its reason."""
        self.dynamodb.put_item(
            TableName=self.users_table,
            Item={**_user_key(user_id), "status": {"S": "ACTIVE"}, "organizations": {"N": "7"}},
        )

    @rule(
        user_id=st.one_of(st.none(), users),
        body=st.sampled_from(["not json", "{}", "unknown-event", "bad-sequence"]),
    )
    def send_poison_message(self, user_id: str | None, body: str) -> None:
        """Straight to the main queue, in the user's own message group when there is one."""
        pk = f"USER#{user_id}" if user_id else f"POISON#{self.history}"
        record: dict[str, Any] = {
            "eventID": uuid.uuid4().hex,
            "eventName": "INSERT",
            "dynamodb": {
                "Keys": {"pk": {"S": pk}, "sk": {"S": "METADATA"}},
                "SequenceNumber": "100",
                "NewImage": {"pk": {"S": pk}, "sk": {"S": "METADATA"}},
            },
        }
        if body == "unknown-event":
            record["eventName"] = "DELETE"
        elif body == "bad-sequence":
            record["dynamodb"]["SequenceNumber"] = "not-a-number"
        text = {"not json": "{not json", "{}": "{}"}.get(body, json.dumps(record))
        self.sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=text,
            MessageGroupId=pk,
            MessageDeduplicationId=uuid.uuid4().hex,
        )

    @rule()
    def let_the_pipeline_settle(self) -> None:
        """A drain with the faults still on: later writes meet a partly replicated state."""
        self.stack.drain(timeout=DRAIN_TIMEOUT)

    # -- the verdict

    def teardown(self) -> None:
        try:
            self._converge_and_check()
        finally:
            after = self.chaos.counts()
            for kind, count in after.items():
                self.figures.faults[kind] += count - self.faults_before.get(kind, 0)
            self.figures.histories += 1
            if SOAK_EXAMPLES and self.figures.histories % SOAK_PROGRESS_EVERY == 0:
                print(self.figures.summary(self.holder.store), flush=True)  # soak progress

    def _converge_and_check(self) -> None:
        self.chaos.reconfigure(self.spec.silenced())
        self.stack.drain(timeout=DRAIN_TIMEOUT)
        order = random.Random(self.spec.seed)
        report = None
        for round_ in range(MAX_REDRIVE_ROUNDS):
            moved = self._redrive(order)
            self.figures.redrive_rounds += 1
            self.figures.dead_lettered += moved
            self.stack.drain(timeout=DRAIN_TIMEOUT)
            report = check_invariant(self.dynamodb, self.users_table, self.organizations_table)
            # Only poison comes back to the DLQ with faults off; another round is for messages
            # a slow batch (longer than the 1 s visibility timeout) sent there meanwhile.
            if report.holds or round_ == MAX_REDRIVE_ROUNDS - 1:
                break
        assert report is not None
        # What is left is poison, already redriven once: the next history starts with an empty DLQ.
        _empty(self.sqs, self.dead_letter_url)
        divergent = report.users_with_drift()
        self.figures.divergent_users += len(divergent)
        assert report.holds, (
            f"chaos {self.spec}: {len(divergent)} users diverge: {list(report.drift)[:10]}"
        )

    def _redrive(self, order: random.Random) -> int:
        # Bounded by what is there now: the live consumer sends poison straight back, and an
        # unbounded copy would meet it again and again.
        depth = int(
            self.sqs.get_queue_attributes(
                QueueUrl=self.dead_letter_url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]["ApproximateNumberOfMessages"]
        )
        if depth == 0:
            return 0
        if not self.shuffled_redrive:
            return redrive(
                self.sqs,
                self.dead_letter_url,
                self.queue_url,
                method=RedriveMethod.COPY,
                max_messages=depth,
            ).moved
        # Any order: take them out, shuffle, send them back (group ids kept, fresh dedup ids).
        taken: list[dict[str, Any]] = []
        while len(taken) < depth:
            messages = self.sqs.receive_message(
                QueueUrl=self.dead_letter_url,
                MaxNumberOfMessages=min(10, depth - len(taken)),
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                break
            taken.extend(messages)
            self.sqs.delete_message_batch(
                QueueUrl=self.dead_letter_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(messages)
                ],
            )
        order.shuffle(taken)
        for message in taken:
            self.sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=message["Body"],
                MessageGroupId=message["Attributes"]["MessageGroupId"],
                MessageDeduplicationId=uuid.uuid4().hex,
            )
        return len(taken)

    # -- writes

    def _put(self, user_id: str, orgs: list[str], status: str, *, string_set: bool = False) -> None:
        organizations: dict[str, Any] = (
            {"SS": orgs} if string_set and orgs else {"L": [{"S": org} for org in orgs]}
        )
        self.dynamodb.put_item(
            TableName=self.users_table,
            Item={
                **_user_key(user_id),
                "email": {"S": f"{self.serial}@example.org"},
                "status": {"S": status},
                "organizations": organizations,
            },
        )


def _empty(sqs: Any, queue_url: str) -> None:
    while messages := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages", []):
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(messages)
            ],
        )


def _user_key(user_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "METADATA"}}


def test_every_history_converges_under_faults_once_drained_and_redriven(
    stack_holder: StackHolder,
) -> None:
    examples = SOAK_EXAMPLES or CI_EXAMPLES[stack_holder.store]
    ConvergenceMachine.holder = stack_holder
    run_state_machine_as_test(
        ConvergenceMachine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            derandomize=not SOAK_EXAMPLES,
            # Shrinking would replay whole pipelines many times; the failure message names the
            # chaos spec and Hypothesis prints the steps, which reproduce it.
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=[
                HealthCheck.function_scoped_fixture,
                HealthCheck.too_slow,
                HealthCheck.filter_too_much,
            ],
        ),
    )
    print(stack_holder.figures.summary(stack_holder.store))
    assert stack_holder.figures.divergent_users == 0
