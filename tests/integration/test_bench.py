"""`orgsync bench` smoke test: every phase runs on an embedded stack and every figure is written.

A seconds-long plan: the figures are meaningless and never asserted on (benchmarks report
numbers; they are not timed tests). What is checked is that the JSON holds each figure, that an
exported AWS_ENDPOINT_URL alone does not send the load elsewhere, and that a run against an
endpoint given on the command line leaves that stack's users as it found them, even when
interrupted.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from integration_stack import CLEAN_CLI_ENV, TEMPLATE
from typer.testing import CliRunner

from orgsync.bench.ledger import RequestCounts, classify_call
from orgsync.bench.pricing import Usage, estimate_cost
from orgsync.cli import app
from orgsync.local.stack import EmbeddedStack, StackOptions

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
    "reconcile_ratio_to_raw_scan_of_both_tables",
    "price_usd_per_million_user_changes",
    # Issue 10: the local runtime's own figures.
    "store_cpu_ms_per_replicated_change",
    "store_cpu_ms_per_raw_put_item",
    "store_cpu_ratio_to_raw_put_item",
    "startup_seconds",
    "idle_cpu_percent_of_a_core",
    "quiet_drain_ms_p50",
    "write_visible_ms_p50_paced",
    "write_visible_ms_p50_woken",
    "probe_requests",
)
MARKED = "orgsync-bench-"


@dataclass(frozen=True)
class BenchRun:
    out: Path
    output: str
    stderr: str


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> BenchRun:
    """One smoke run with AWS_ENDPOINT_URL exported, pointing at a port where nothing listens:
    had the bench followed it, the run would have failed to connect."""
    out = tmp_path_factory.mktemp("bench")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{probe.getsockname()[1]}"
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
        env={**CLEAN_CLI_ENV, "AWS_ENDPOINT_URL": nowhere, "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    return BenchRun(out, result.output, result.stderr)


def test_an_exported_endpoint_alone_does_not_redirect_the_bench(bench_run: BenchRun) -> None:
    figures = json.loads((bench_run.out / "bench.json").read_text())
    assert figures["machine"]["store"] == "moto"
    assert figures["machine"]["endpoint_url"] is None
    assert figures["cleanup"] is None
    notes = [line for line in bench_run.stderr.splitlines() if "AWS_ENDPOINT_URL" in line]
    assert len(notes) == 1
    assert "--endpoint-url" in notes[0]


def test_a_smoke_bench_writes_every_summary_figure_as_strict_json(bench_run: BenchRun) -> None:
    out = bench_run.out
    figures = json.loads((out / "bench.json").read_text(), parse_constant=_reject_nan)
    for key in SUMMARY_KEYS:
        assert figures["summary"][key] is not None, key
    assert set(figures["summary"]["requests_per_change"]) >= {"dynamodb", "sqs", "streams"}
    assert figures["machine"]["nproc"]
    assert figures["machine"]["python"]


def test_a_smoke_bench_records_the_pipeline_requests_and_the_consumer_alone(
    bench_run: BenchRun,
) -> None:
    out = bench_run.out
    figures = json.loads((out / "bench.json").read_text())
    pipeline = figures["cost"]["pipeline"]
    assert pipeline["requests"]["dynamodb"]["TransactWriteItems"] >= 1
    assert pipeline["requests"]["dynamodb"]["BatchGetItem"] >= 1
    assert pipeline["requests"]["sqs"]["ReceiveMessage"] >= 1
    assert pipeline["requests"]["dynamodbstreams"]["GetRecords"] >= 1
    direct = figures["cost"]["consumer_direct"]["distinct users, first change"]
    assert direct["dynamodb_requests_by_operation"] == {"BatchGetItem": 1, "TransactWriteItems": 1}
    assert figures["cost"]["pipeline_bursts"]["burst"] > 1


def test_a_smoke_bench_draws_the_plot_and_prints_the_summary_table(bench_run: BenchRun) -> None:
    out, output = bench_run.out, bench_run.output
    assert (out / "lag.png").read_bytes().startswith(b"\x89PNG")
    assert "ceiling" in output
    assert "hot path" in output
    assert "idle CPU" in output
    assert "store CPU per replicated change" in output


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


# -- against an endpoint given on the command line ----------------------------------------------


@dataclass(frozen=True)
class Elsewhere:
    """A pipeline running against the shared moto server, as `orgsync local up` would."""

    endpoint: str
    prefix: str
    dynamodb: Any

    @property
    def users_table(self) -> str:
        return f"{self.prefix}poc-users"

    @property
    def organizations_table(self) -> str:
        return f"{self.prefix}poc-organizations"

    def items(self, table: str) -> list[dict[str, Any]]:
        return self.dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]

    def marked_users(self) -> list[str]:
        pks = [item["pk"]["S"] for item in self.items(self.users_table)]
        return [pk for pk in pks if pk.startswith(f"USER#{MARKED}")]

    def marked_memberships(self) -> list[str]:
        return [
            item["sk"]["S"]
            for item in self.items(self.organizations_table)
            if item["sk"]["S"].startswith(f"MEMBERSHIP#{MARKED}")
        ]


@pytest.fixture
def elsewhere(moto_endpoint: str) -> Iterator[Elsewhere]:
    prefix = f"benchext{uuid.uuid4().hex[:6]}-"
    options = StackOptions(
        template_path=TEMPLATE,
        endpoint_url=moto_endpoint,
        parameters={"NamePrefix": prefix, "LogLevel": "WARNING"},
    )
    with EmbeddedStack(options) as stack:
        place = Elsewhere(moto_endpoint, prefix, stack.client("dynamodb"))
        # Someone's real user, there before the run: it must be there after.
        place.dynamodb.put_item(
            TableName=place.users_table,
            Item={
                "pk": {"S": "USER#auth0|real"},
                "sk": {"S": "METADATA"},
                "email": {"S": "real@example.org"},
                "status": {"S": "ACTIVE"},
                "organizations": {"L": [{"S": "org-real"}]},
            },
        )
        yield place


def _orgsync(elsewhere: Elsewhere, *args: str) -> list[str]:
    """The installed command line against `elsewhere`. A subprocess, not CliRunner: CliRunner
    rewrites os.environ (AWS_REGION …) under the pipeline threads running in this process."""
    return [
        str(Path(sys.executable).with_name("orgsync")),
        "--endpoint-url",
        elsewhere.endpoint,
        "--name-prefix",
        elsewhere.prefix,
        *args,
    ]


def _subprocess_env() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.pop("ORGSYNC_NAME_PREFIX", None)
    return env | {"COLUMNS": "200", "NO_COLOR": "1"}


def test_a_bench_against_an_endpoint_writes_marked_users_and_removes_them(
    elsewhere: Elsewhere, tmp_path: Path
) -> None:
    result = subprocess.run(
        _orgsync(elsewhere, "bench", "--smoke", "--json", str(tmp_path / "bench.json")),
        env=_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    cleanup = json.loads((tmp_path / "bench.json").read_text())["cleanup"]
    assert cleanup["user_id_prefix"].startswith(MARKED)
    assert cleanup["users_deleted"] > 0
    assert cleanup["still_replicating"] == 0
    assert "removed" in result.stdout
    pks = [item["pk"]["S"] for item in elsewhere.items(elsewhere.users_table)]
    assert pks == ["USER#auth0|real"]
    assert elsewhere.marked_memberships() == []


def test_an_interrupted_bench_still_removes_the_users_it_wrote(elsewhere: Elsewhere) -> None:
    process = subprocess.Popen(
        _orgsync(elsewhere, "bench", "--quick"),
        env=_subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not elsewhere.marked_users():
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the bench never wrote a user"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)  # Ctrl-C in the middle of the replication steps
        output, _ = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode != 0, output
    assert "cleanup: removing" in output
    assert elsewhere.marked_users() == [], output
    assert elsewhere.marked_memberships() == []
    assert [item["pk"]["S"] for item in elsewhere.items(elsewhere.users_table)] == [
        "USER#auth0|real"
    ]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        pytest.param(["bench", "--endpoint-url", "127.0.0.1:4566"], "http://", id="no-scheme"),
        pytest.param(
            ["--endpoint-url", "http://127.0.0.1:4566", "--users-table", "Users", "bench"],
            "--users-table",
            id="names-the-template-does-not-know",
        ),
    ],
)
def test_a_bench_it_cannot_run_as_asked_is_refused_in_one_line(args: list[str], said: str) -> None:
    result = CliRunner().invoke(app, [*args, "--smoke"], env=CLEAN_CLI_ENV)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert said in lines[0]
