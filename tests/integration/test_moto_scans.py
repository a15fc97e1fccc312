"""The embedded store's scans (moto_patches.scans: each page starts at its ExclusiveStartKey)
answer exactly as moto does: every request goes to the patched store and to a plain moto server
(`python -m moto.server`, no orgsync patch), and the two answers must be equal, page by page."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError
from integration_stack import client, next_prefix
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import Table

from orgsync.local import moto_patches
from orgsync.local.moto_patches import scans
from orgsync.local.moto_patches.guard import MotoPatchError, check_attributes
from orgsync.local.servers import find_free_port
from orgsync.local.servers.ports import wait_until_answering

# Items of ~5 KB: 300 of them are 1.5 MB, so an unlimited scan is cut by moto's 1 MB page.
PAD = "x" * 5000


@pytest.fixture(scope="module")
def plain_moto() -> Iterator[str]:
    """moto's own server in a process of its own: the reference answers."""
    port = find_free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_answering(port, timeout=30, what="plain moto server")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Twins:
    """One table on each server; every call goes to both and must get the same answer."""

    patched: Any
    plain: Any
    table: str

    def call(self, operation: str, **request: Any) -> dict[str, Any]:
        answers = self.both(operation, **request)
        assert answers[0] == answers[1], f"{operation} {request}"
        return answers[0]

    def both(self, operation: str, **request: Any) -> list[dict[str, Any]]:
        """The answers of both servers, not compared (a table's creation time differs)."""
        return [_answer(getattr(c, operation), request) for c in (self.patched, self.plain)]

    def scan_pages(self, **request: Any) -> list[dict[str, Any]]:
        """Every page of one scan (all equal on both servers so far)."""
        pages: list[dict[str, Any]] = []
        while True:
            page = self.call("scan", TableName=self.table, **request)
            pages.append(page)
            if "LastEvaluatedKey" not in page:
                return pages
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def put(self, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), 25):
            chunk = items[start : start + 25]
            self.call(
                "batch_write_item",
                RequestItems={self.table: [{"PutRequest": {"Item": item}} for item in chunk]},
            )


def _answer(operation: Any, request: dict[str, Any]) -> dict[str, Any]:
    try:
        response = dict(operation(**request))
    except ClientError as exc:
        error = exc.response["Error"]
        return {"error": error.get("Code"), "message": error.get("Message")}
    response.pop("ResponseMetadata", None)
    return response


def twins(
    moto_endpoint: str,
    plain_moto: str,
    *,
    keys: tuple[tuple[str, str], ...] = (("pk", "S"), ("sk", "S")),
    index: bool = False,
) -> Twins:
    table = f"{next_prefix()}scans"
    pair = Twins(client("dynamodb", moto_endpoint), client("dynamodb", plain_moto), table)
    definitions = dict(keys)
    request: dict[str, Any] = {
        "TableName": table,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [
            {"AttributeName": name, "KeyType": kind}
            for (name, _), kind in zip(keys, ("HASH", "RANGE"), strict=False)
        ],
    }
    if index:
        definitions["org"] = "S"
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "by-org",
                "KeySchema": [{"AttributeName": "org", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ]
    request["AttributeDefinitions"] = [
        {"AttributeName": name, "AttributeType": kind} for name, kind in definitions.items()
    ]
    pair.both("create_table", **request)
    return pair


def member(org: int, user: int, *, pad: str = PAD) -> dict[str, Any]:
    return {
        "pk": {"S": f"ORG#{org:04d}"},
        "sk": {"S": f"MEMBER#{user:05d}"},
        "org": {"S": f"ORG#{org % 7}"},
        "role": {"S": "admin" if user % 5 == 0 else "member"},
        "n": {"N": str(user % 11)},
        "pad": {"S": pad},
    }


def members(count: int, *, pad: str = PAD) -> list[dict[str, Any]]:
    return [member(user % 37, user, pad=pad) for user in range(count)]


def keys_of(pages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(item["pk"]["S"], item["sk"]["S"]) for page in pages for item in page["Items"]]


@pytest.fixture
def table(moto_endpoint: str, plain_moto: str) -> Twins:
    pair = twins(moto_endpoint, plain_moto)
    pair.put(members(300))
    return pair


def test_a_full_scan_reads_every_item_once_in_pages_cut_at_one_megabyte(table: Twins):
    pages = table.scan_pages()
    assert len(pages) >= 2  # the 1 MB cut, exactly where moto makes it
    found = keys_of(pages)
    assert sorted(found) == sorted(keys_of([{"Items": members(300)}]))
    assert len(set(found)) == 300


def test_segments_split_the_table_as_moto_does(table: Twins):
    found: list[tuple[str, str]] = []
    for segment in range(4):
        pages = table.scan_pages(Segment=segment, TotalSegments=4, Limit=17)
        found += keys_of(pages)
    assert sorted(found) == sorted(keys_of([{"Items": members(300)}]))


@pytest.mark.parametrize("limit", [1, 7, 300, 1000])
def test_limits_cut_the_pages_where_moto_does(table: Twins, limit: int):
    pages = table.scan_pages(Limit=limit)
    assert len(keys_of(pages)) == 300


def test_filters_projections_counts_and_the_legacy_parameters_match(table: Twins):
    table.scan_pages(
        Limit=23,
        FilterExpression="#r = :admin AND n > :three",
        ProjectionExpression="pk, sk, #r",
        ExpressionAttributeNames={"#r": "role"},
        ExpressionAttributeValues={":admin": {"S": "admin"}, ":three": {"N": "3"}},
    )
    table.scan_pages(
        Select="COUNT", FilterExpression="n = :one", ExpressionAttributeValues={":one": {"N": "1"}}
    )
    table.scan_pages(
        Limit=9,
        ScanFilter={"n": {"ComparisonOperator": "GE", "AttributeValueList": [{"N": "8"}]}},
        AttributesToGet=["pk", "sk", "n"],
    )
    table.scan_pages(Segment=2, TotalSegments=3, ConsistentRead=True)


def test_items_put_and_deleted_between_pages_are_seen_as_moto_sees_them(table: Twins):
    request: dict[str, Any] = {"TableName": table.table, "Limit": 40}
    seen: list[tuple[str, str]] = []
    for round_ in range(30):
        page = table.call("scan", **request)
        seen += keys_of([page])
        if "LastEvaluatedKey" not in page:
            break
        start = page["LastEvaluatedKey"]
        # Ahead of the scan and behind it, new and overwritten, and the start key itself.
        table.put([member(org, 1000 + round_, pad="y") for org in (0, 18, 36)])
        table.put([member(5, round_ * 3, pad="overwritten")])
        for victim in (
            {"pk": {"S": "ORG#0030"}, "sk": {"S": f"MEMBER#{30 + 37 * round_:05d}"}},
            start,
        ):
            table.call("delete_item", TableName=table.table, Key=victim)
        request["ExclusiveStartKey"] = start
    else:
        pytest.fail("the scan did not end")
    assert len(seen) == len(set(seen))
    table.scan_pages()  # and the table afterwards, whole


def test_a_cancelled_transaction_between_pages_leaves_the_scan_as_moto_leaves_it(table: Twins):
    first = table.call("scan", TableName=table.table, Limit=50)
    table.call(
        "transact_write_items",
        TransactItems=[
            {"Put": {"TableName": table.table, "Item": member(36, 9999, pad="t")}},
            {
                "Delete": {
                    "TableName": table.table,
                    "Key": {"pk": {"S": "ORG#0036"}, "sk": {"S": "MEMBER#00036"}},
                }
            },
            {
                "ConditionCheck": {
                    "TableName": table.table,
                    "Key": {"pk": {"S": "ORG#0001"}, "sk": {"S": "MEMBER#00001"}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ],
    )
    pages = table.scan_pages(ExclusiveStartKey=first["LastEvaluatedKey"], Limit=50)
    assert len(keys_of([first, *pages])) == 300


def test_start_keys_that_name_no_item_or_are_malformed_are_answered_as_moto_answers(
    table: Twins,
):
    for start in (
        {"pk": {"S": "ORG#0010"}, "sk": {"S": "MEMBER#00010x"}},  # between two items
        {"pk": {"S": "ORG#0010"}, "sk": {"S": "A"}},  # before a hash key's first item
        {"pk": {"S": "A"}, "sk": {"S": "A"}},  # before every item
        {"pk": {"S": "ORG#9999"}, "sk": {"S": "Z"}},  # after every item
        {"pk": {"S": "ORG#0010"}, "sk": {"S": "MEMBER#00010"}, "extra": {"S": "ignored"}},
    ):
        table.call("scan", TableName=table.table, Limit=5, ExclusiveStartKey=start)
    for malformed in (
        {"pk": {"S": "ORG#0010"}},  # no range key
        {"pk": {"N": "10"}, "sk": {"S": "MEMBER#00010"}},  # the wrong type
    ):
        table.call("scan", TableName=table.table, Limit=5, ExclusiveStartKey=malformed)


def test_a_table_of_number_hash_keys_is_scanned_in_moto_s_number_order(
    moto_endpoint: str, plain_moto: str
):
    pair = twins(moto_endpoint, plain_moto, keys=(("id", "N"),))
    values = ["10", "9", "-1.5", "100", "0", "0.25", "-20", "1E+2", "3.000"]
    pair.put([{"id": {"N": value}, "v": {"S": value}} for value in values])
    for limit in (1, 2, 4):
        pages = pair.scan_pages(Limit=limit)
        assert sum(page["Count"] for page in pages) == len(values) - 1  # 1E+2 is 100
    pair.call("delete_item", TableName=pair.table, Key={"id": {"N": "100"}})
    pair.scan_pages(Limit=3, Segment=1, TotalSegments=2)


def test_index_scans_are_left_to_moto_and_answer_as_it_does(moto_endpoint: str, plain_moto: str):
    pair = twins(moto_endpoint, plain_moto, index=True)
    pair.put(members(120, pad="i"))
    pages = pair.scan_pages(IndexName="by-org", Limit=13)
    assert len(keys_of(pages)) == 120
    pair.scan_pages(IndexName="by-org", Segment=0, TotalSegments=2)


def test_the_embedded_store_scans_through_the_scan_order(table: Twins):
    # Not moto's own scan by accident: the store applied the patch, and the table's order
    # holds every item (it was sorted once, then kept as items changed).
    assert getattr(Table.scan, "__orgsync_scan_from_start_key__", False)
    table.scan_pages(Limit=100)
    table.put([member(1, 5000, pad="z")])
    table.call(
        "delete_item",
        TableName=table.table,
        Key={"pk": {"S": "ORG#0000"}, "sk": {"S": "MEMBER#00000"}},
    )
    moto_table = dynamodb_backends["123456789012"]["us-east-1"].get_table(table.table)
    order = vars(moto_table)["_orgsync_scan_order"]
    assert order.items is moto_table.items
    assert len(order) == 300


def test_the_guard_refuses_a_moto_whose_scan_internals_moved(monkeypatch: pytest.MonkeyPatch):
    check_attributes(scans.REQUIRED)
    monkeypatch.setattr(
        scans, "REQUIRED", (*scans.REQUIRED, "moto.dynamodb.models.table:Table.gone")
    )
    with pytest.raises(MotoPatchError, match=r"Table\.gone"):
        moto_patches.check()

    def scan_without_start_key(self: Any, filters: Any, limit: Any) -> None:
        raise AssertionError("not called")

    monkeypatch.setattr(Table, "scan", scan_without_start_key)
    with pytest.raises(MotoPatchError, match="exclusive_start_key, index_name"):
        scans.apply()
