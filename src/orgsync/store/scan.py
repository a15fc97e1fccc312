"""Parallel scans of the users table and of the membership items, for reconcile and checks.

DynamoDB parallel scan (Segment/TotalSegments) spreads the read over partitions; each segment
runs in its own thread because boto3 clients are thread-safe and the work is I/O bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orgsync.domain.invariant import InvariantReport, compare
from orgsync.domain.model import Membership, ReplicationState, UserState
from orgsync.schema.keys import key_strings, user_id_of_user_key
from orgsync.schema.organizations import (
    decode_membership,
    decode_replication,
    replication_user_id,
)
from orgsync.schema.rejection import Rejected
from orgsync.schema.users import user_state_of_item
from orgsync.store.retry import Caller

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PageCallback = Callable[[int], None]


def parallel_scan(
    client: DynamoDBClient,
    table_name: str,
    *,
    segments: int = 4,
    on_page: PageCallback | None = None,
    consistent: bool = False,
) -> list[dict[str, Any]]:
    """Every item of the table, read by `segments` concurrent scan workers."""

    def scan_segment(segment: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        paginator = client.get_paginator("scan")
        pages = paginator.paginate(
            TableName=table_name,
            Segment=segment,
            TotalSegments=segments,
            ConsistentRead=consistent,
        )
        for page in pages:
            items.extend(page.get("Items", []))
            if on_page is not None:
                on_page(len(page.get("Items", [])))
        return items

    with ThreadPoolExecutor(max_workers=segments) as pool:
        return [item for chunk in pool.map(scan_segment, range(segments)) for item in chunk]


def scan_pages(
    client: DynamoDBClient,
    table_name: str,
    *,
    segment: int,
    total_segments: int,
    caller: Caller | None = None,
    page_items: int | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """The pages of one scan segment, one at a time: memory holds a page, not the table.

    A page is at most 1 MB of items (DynamoDB's cut), or `page_items` items when that is less.

    Each page is one call under the store's retry policy, so a page that timed out or was
    throttled is read again from the same `ExclusiveStartKey` instead of failing the scan.
    """
    call = (caller or Caller()).call
    request: dict[str, Any] = {
        "TableName": table_name,
        "Segment": segment,
        "TotalSegments": total_segments,
    }
    if page_items is not None:
        request["Limit"] = page_items
    while True:
        page = call(client.scan, **request)
        yield page.get("Items", [])
        start = page.get("LastEvaluatedKey")
        if not start:
            return
        request["ExclusiveStartKey"] = start


@dataclass(slots=True)
class UsersSnapshot:
    """Valid users' states, and the ids of users whose items cannot be projected."""

    states: dict[str, UserState] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class OrganizationsSnapshot:
    memberships: list[Membership] = field(default_factory=list)
    replication: dict[str, ReplicationState] = field(default_factory=dict)


def users_snapshot(items: Iterable[dict[str, Any]]) -> UsersSnapshot:
    snapshot = UsersSnapshot()
    for item in items:
        user_id = user_id_of_user_key(*key_strings(item))
        if user_id is None:
            continue
        state = user_state_of_item(item)
        if isinstance(state, Rejected):
            snapshot.invalid[user_id] = state.reason
        else:
            snapshot.states[user_id] = state
    return snapshot


def organizations_snapshot(items: Iterable[dict[str, Any]]) -> OrganizationsSnapshot:
    snapshot = OrganizationsSnapshot()
    for item in items:
        member = decode_membership(item)
        if member is not None:
            snapshot.memberships.append(member)
            continue
        user_id = replication_user_id(item)
        if user_id is not None:
            snapshot.replication[user_id] = decode_replication(item)
    return snapshot


def check_invariant(
    client: DynamoDBClient, users_table: str, organizations_table: str, *, segments: int = 4
) -> InvariantReport:
    """Scan both tables (consistently) and compare: the pipeline must be quiet for a verdict."""
    users = users_snapshot(parallel_scan(client, users_table, segments=segments, consistent=True))
    orgs = organizations_snapshot(
        parallel_scan(client, organizations_table, segments=segments, consistent=True)
    )
    return compare(users.states, orgs.memberships, invalid_users=users.invalid.keys())
