"""Which tables a DynamoDB request writes: what wakes a pipe (`servers.writes`)."""

from __future__ import annotations

import json

from orgsync.local.servers.writes import ANY_TABLE, WriteWatchers, written_tables

T = "DynamoDB_20120810."


def body(request: object) -> bytes:
    return json.dumps(request).encode()


def test_each_write_operation_names_the_tables_it_writes():
    assert written_tables(T + "PutItem", body({"TableName": "a"})) == {"a"}
    assert written_tables(T + "UpdateItem", body({"TableName": "a"})) == {"a"}
    assert written_tables(T + "DeleteItem", body({"TableName": "a"})) == {"a"}
    assert written_tables(T + "BatchWriteItem", body({"RequestItems": {"a": [], "b": []}})) == {
        "a",
        "b",
    }
    transaction = {
        "TransactItems": [
            {"Put": {"TableName": "a"}},
            {"Delete": {"TableName": "b"}},
            {"ConditionCheck": {"TableName": "c"}},
        ]
    }
    assert written_tables(T + "TransactWriteItems", body(transaction)) == {"a", "b", "c"}
    assert written_tables(T + "ExecuteStatement", body({"Statement": "INSERT"})) == {ANY_TABLE}


def test_reads_other_services_and_bodies_that_are_not_json_write_nothing():
    assert written_tables(T + "GetItem", body({"TableName": "a"})) == frozenset()
    assert written_tables("AmazonSQS.SendMessage", body({"TableName": "a"})) == frozenset()
    assert written_tables(T + "PutItem", b"not json") == frozenset()
    assert written_tables(T + "PutItem", body([1, 2])) == frozenset()


def test_watchers_are_told_once_per_write_and_any_table_tells_them_all():
    watchers = WriteWatchers()
    heard: list[str] = []
    watchers.watch(["a", "b"], lambda: heard.append("ab"))
    unwatch = watchers.watch(["c"], lambda: heard.append("c"))
    watchers.written({"a", "b"})
    watchers.written({ANY_TABLE})
    unwatch()
    watchers.written({"c"})
    assert sorted(heard) == ["ab", "ab", "c"]
    assert watchers
