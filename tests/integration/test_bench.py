"""`orgsync bench` smoke test: every phase runs on an embedded stack and every figure is written.

A seconds-long plan: the figures are meaningless and never asserted on (benchmarks report
numbers; they are not timed tests). What is checked is that the JSON holds each figure.
"""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from orgsync.bench.ledger import RequestCounts, classify_call
from orgsync.bench.pricing import Usage, estimate_cost
from orgsync.cli import app

SUMMARY_KEYS = (
    "ceiling_writes_per_second",
    "replication_changes_per_second",
    "replication_ratio_to_ceiling",
    "lag_ms_p50",
    "lag_ms_p99",
    "requests_per_change",
    "consumer_dynamodb_requests_per_applied_change",
    "hot_path_us_per_record",
    "hot_path_speedup_vs_baseline",
    "reconcile_ratio_to_raw_scan",
    "price_usd_per_million_user_changes",
)


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    result = CliRunner().invoke(
        app,
        [
            "--name-prefix",
            "benchsmoke-",
            "bench",
            "--smoke",
            "--json",
            str(out / "bench.json"),
            "--plot",
            str(out / "lag.png"),
        ],
        env={"AWS_ENDPOINT_URL": None, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def test_a_smoke_bench_writes_every_summary_figure_as_strict_json(bench_run):
    out, _ = bench_run
    figures = json.loads((out / "bench.json").read_text(), parse_constant=_reject_nan)
    for key in SUMMARY_KEYS:
        assert figures["summary"][key] is not None, key
    assert set(figures["summary"]["requests_per_change"]) >= {"dynamodb", "sqs", "streams"}
    assert figures["machine"]["nproc"]
    assert figures["machine"]["python"]


def test_a_smoke_bench_records_the_pipeline_requests_and_the_consumer_alone(bench_run):
    out, _ = bench_run
    figures = json.loads((out / "bench.json").read_text())
    pipeline = figures["cost"]["pipeline"]
    assert pipeline["requests"]["dynamodb"]["TransactWriteItems"] >= 1
    assert pipeline["requests"]["dynamodb"]["BatchGetItem"] >= 1
    assert pipeline["requests"]["sqs"]["ReceiveMessage"] >= 1
    assert pipeline["requests"]["dynamodbstreams"]["GetRecords"] >= 1
    direct = figures["cost"]["consumer_direct"]["distinct users, first change"]
    assert direct["dynamodb_requests_by_operation"] == {"BatchGetItem": 1, "TransactWriteItems": 1}
    assert figures["cost"]["pipeline_bursts"]["burst"] > 1


def test_a_smoke_bench_draws_the_plot_and_prints_the_summary_table(bench_run):
    out, output = bench_run
    assert (out / "lag.png").read_bytes().startswith(b"\x89PNG")
    assert "ceiling" in output
    assert "hot path" in output


def test_transaction_actions_are_counted_by_kind_and_table():
    counts = classify_call(
        "dynamodb",
        "TransactWriteItems",
        {
            "TransactItems": [
                {"Put": {"TableName": "orgs", "Item": {"sk": {"S": "MEMBERSHIP#u"}}}},
                {"Delete": {"TableName": "orgs", "Key": {"sk": {"S": "MEMBERSHIP#u"}}}},
                {"Put": {"TableName": "orgs", "Item": {"sk": {"S": "REPLICATION"}}}},
            ]
        },
    )
    tally = RequestCounts(counts)
    assert tally.total("dynamodb", "TransactWriteItems", "orgs") == 1
    assert tally.total("dynamodb", "TransactWriteItems", "orgs", "actions") == 3
    assert tally.total("dynamodb", "TransactWriteItems", "orgs", "replication_puts") == 1
    assert tally.total("dynamodb", "TransactWriteItems", "orgs", "membership_deletes") == 1


def test_a_million_changes_of_one_transactional_item_each_cost_two_write_units_apiece():
    usage = Usage(
        user_changes=1_000_000,
        transactional_item_writes=1_000_000,
        standard_item_writes=0,
        consistent_item_reads=0,
        sqs_requests=0,
        lambda_invocations=0,
        lambda_seconds_per_invocation=0.0,
        pipes_requests=0,
    )
    assert math.isclose(estimate_cost(usage).dynamodb, 2 * 0.625)


def _reject_nan(value: str) -> float:
    raise AssertionError(f"non-standard JSON constant {value}")
