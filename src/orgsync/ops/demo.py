"""`orgsync demo`: a scripted story through the whole local pipeline, checked end to end.

Each step writes users with plain boto3 calls (as any client would), waits until the org table
shows the expected memberships by consistent reads, and records how long that took (the
replication lag). The story ends with a drain and the invariant check that decides the exit code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orgsync.domain.invariant import InvariantReport
from orgsync.errors import OrgsyncError
from orgsync.ops.orgs import Membership, list_members
from orgsync.ops.users import User, delete_user, put_user
from orgsync.schema.keys import membership_key
from orgsync.store.scan import check_invariant

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ORGS = ("org-acme", "org-globex", "org-initech")


class ReplicationTimeoutError(OrgsyncError):
    """A step's memberships did not become visible in time."""


@dataclass(frozen=True, slots=True)
class Step:
    """One moment of the story: users to write (or delete, when `orgs` is None)."""

    title: str
    writes: tuple[tuple[str, tuple[str, ...] | None, str], ...]


STORY: tuple[Step, ...] = (
    Step(
        "Alice joins Acme and Globex; Bob joins Acme",
        (("alice", ("org-acme", "org-globex"), "ACTIVE"), ("bob", ("org-acme",), "ACTIVE")),
    ),
    Step("Alice moves from Globex to Initech", (("alice", ("org-acme", "org-initech"), "ACTIVE"),)),
    Step("Bob is suspended", (("bob", ("org-acme",), "SUSPENDED"),)),
    Step(
        "Carol joins all three, then leaves Globex",
        (("carol", ORGS, "ACTIVE"), ("carol", ("org-acme", "org-initech"), "ACTIVE")),
    ),
    Step("Bob leaves every organization", (("bob", (), "SUSPENDED"),)),
    Step("Alice is deleted", (("alice", None, ""),)),
)


@dataclass(slots=True)
class StepResult:
    title: str
    lag_seconds: float
    members: dict[str, list[Membership]] = field(default_factory=dict)


@dataclass(slots=True)
class DemoResult:
    steps: list[StepResult]
    invariant: InvariantReport
    seconds: float

    @property
    def lags(self) -> list[float]:
        return [step.lag_seconds for step in self.steps]


def run_story(
    dynamodb: DynamoDBClient,
    *,
    users_table: str,
    organizations_table: str,
    drain: Callable[[], None],
    on_step: Callable[[StepResult], None] | None = None,
    story: Sequence[Step] = STORY,
    timeout: float = 20.0,
) -> DemoResult:
    """Play the story against running tables and pipeline; return lags and the verdict."""
    started = time.monotonic()
    results: list[StepResult] = []
    for step in story:
        written = time.monotonic()
        final: dict[str, tuple[tuple[str, ...] | None, str]] = {}
        for user_id, orgs, status in step.writes:
            if orgs is None:
                delete_user(dynamodb, users_table, user_id)
            else:
                email = f"{user_id}@example.org"
                put_user(dynamodb, users_table, User(user_id, email, status, orgs))
            final[user_id] = (orgs, status)
        _wait_until_visible(dynamodb, organizations_table, final, timeout=timeout)
        result = StepResult(step.title, time.monotonic() - written)
        result.members = {org: list_members(dynamodb, organizations_table, org) for org in ORGS}
        results.append(result)
        if on_step is not None:
            on_step(result)
    drain()
    report = check_invariant(dynamodb, users_table, organizations_table)
    return DemoResult(results, report, time.monotonic() - started)


def _wait_until_visible(
    dynamodb: DynamoDBClient,
    table: str,
    expected: dict[str, tuple[tuple[str, ...] | None, str]],
    *,
    timeout: float,
) -> None:
    """Poll consistent reads until each user's memberships are exactly the expected ones."""
    deadline = time.monotonic() + timeout
    while True:
        if all(
            _memberships_match(dynamodb, table, user_id, orgs, status)
            for user_id, (orgs, status) in expected.items()
        ):
            return
        if time.monotonic() > deadline:
            raise ReplicationTimeoutError(f"memberships not replicated within {timeout:.0f} s")
        time.sleep(0.01)


def _memberships_match(
    dynamodb: DynamoDBClient, table: str, user_id: str, orgs: tuple[str, ...] | None, status: str
) -> bool:
    wanted = set(orgs or ())
    for org_id in ORGS:
        item = dynamodb.get_item(
            TableName=table, Key=membership_key(org_id, user_id), ConsistentRead=True
        ).get("Item")
        if (item is not None) != (org_id in wanted):
            return False
        if item is not None and item.get("status", {}).get("S") != status:
            return False
    return True
