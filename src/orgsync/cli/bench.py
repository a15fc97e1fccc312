"""`orgsync bench`: throughput, lag, requests and price per change, printed and written.

Thin Typer wiring over orgsync.bench; must not import other command modules."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from orgsync.bench.phases import run_bench
from orgsync.bench.plan import BenchOptions, BenchPlan
from orgsync.bench.plot import plot_lag
from orgsync.cli.embedded import (
    StoreOption,
    TemplateOption,
    dynamodb_local_dir,
    store_kind,
    template_path,
)
from orgsync.cli.render import err_console, new_table, out_console
from orgsync.cli.root import RefusedInputError, app, settings_of
from orgsync.cli.settings import CliSettings, endpoint_url_problem


@app.command("bench")
def bench_command(
    ctx: typer.Context,
    *,
    quick: Annotated[
        bool, typer.Option("--quick", help="Shorter phases: every figure in under two minutes.")
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write every figure to this JSON file.")
    ] = None,
    plot_path: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG of lag against offered rate.")
    ] = None,
    store: StoreOption = "moto",
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            "--endpoint-url",
            help="Benchmark this endpoint instead of an embedded stack; a pipeline must already "
            "run against it (e.g. `orgsync local up`). Only this option or the global "
            "--endpoint-url typed on the command line selects it, never AWS_ENDPOINT_URL.",
        ),
    ] = None,
    writers: Annotated[
        int, typer.Option("--writers", min=1, help="Concurrent user writers (all phases).")
    ] = 4,
    template: TemplateOption = None,
    smoke: Annotated[
        bool, typer.Option("--smoke", hidden=True, help="Seconds-long run for tests only.")
    ] = False,
) -> None:
    """Measure throughput, lag, requests and price per change against the store's own ceiling."""
    plan = BenchPlan.tiny() if smoke else BenchPlan.quick() if quick else BenchPlan.full()
    settings = settings_of(ctx)
    options = BenchOptions(
        template_path=template_path(template),
        plan=dataclasses.replace(plan, writers=writers),
        store=store_kind(store),
        endpoint_url=_bench_endpoint(endpoint_url, settings),
        name_prefix=settings.name_prefix,
        dynamodb_local_dir=dynamodb_local_dir(),
        command=" ".join(["orgsync", *sys.argv[1:]]),
    )
    console = out_console()
    started = time.monotonic()
    with console.status("starting", spinner="dots") as spinner:

        def progress(message: str) -> None:
            console.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim] {escape(message)}")
            spinner.update(escape(message))

        report = run_bench(options, on_progress=progress)
    figures = report.as_json()
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    if plot_path is not None:
        plot_lag(figures, plot_path)
    _print_bench(console, figures)
    for path in (json_path, plot_path):
        if path is not None:
            console.print(f"wrote {escape(str(path))}", highlight=False)
    console.print(f"finished in {time.monotonic() - started:.1f} s", highlight=False)


def _bench_endpoint(option: str | None, settings: CliSettings) -> str | None:
    """The endpoint to benchmark, only when asked for on this command line: an exported
    AWS_ENDPOINT_URL alone must not point a load of writes at a stack someone uses."""
    if option is not None:
        problem = endpoint_url_problem(option)
        if problem is not None:
            raise RefusedInputError(f"bench --endpoint-url {option!r} is not usable: {problem}")
    endpoint = option or (settings.endpoint_url if settings.endpoint_url_on_command_line else None)
    if endpoint is None:
        if settings.endpoint_url is not None:
            err_console().print(
                "note: bench runs on an embedded store and does not use AWS_ENDPOINT_URL; "
                "pass --endpoint-url to benchmark that endpoint",
                highlight=False,
                soft_wrap=True,
            )
        return None
    if settings.names.given:
        raise RefusedInputError(
            "bench --endpoint-url uses the template's names (with --name-prefix): it cannot use "
            "--users-table, --organizations-table or the queue name options"
        )
    return endpoint


def _print_bench(console: Console, figures: dict[str, Any]) -> None:
    summary, targets = figures["summary"], figures["targets"]
    steps = new_table("offered/s", "written/s", "replicated/s", "lag p50", "lag p99", "kept up")
    steps.title = "replication steps (lag: write acknowledged → membership visible)"
    for step in figures["replication"]["steps"]:
        steps.add_row(
            f"{step['offered_per_second']:.0f}",
            f"{step['achieved_write_per_second']:.0f}",
            f"{step['replicated_per_second']:.0f}",
            _ms(step["lag_ms"]["p50"]),
            _ms(step["lag_ms"]["p99"]),
            "yes" if step["kept_up"] else "no",
        )
    console.print(steps)
    table = new_table("figure", "measured", "target")
    table.title = f"orgsync bench ({figures['machine']['store']}, {figures['seconds']} s)"
    requests = summary["requests_per_change"] or {}
    burst = (figures["cost"]["pipeline_bursts"] or {}).get("costs") or {}
    rows = [
        ("ceiling (user writes/s)", _num(summary["ceiling_writes_per_second"]), None),
        (
            "sustained replication (changes/s)",
            f"{_num(summary['replication_changes_per_second'])} "
            f"(x{_num(summary['replication_ratio_to_ceiling'])} of the ceiling)",
            "sustained_replication",
        ),
        (
            "peak replication (changes/s)",
            _num(summary["replication_peak_changes_per_second"]),
            None,
        ),
        (
            "lag p50 / p95 / p99 / max",
            " / ".join(_ms(summary[f"lag_ms_{q}"]) for q in ("p50", "p95", "p99", "max")),
            None,
        ),
        (
            "pipeline requests per user change",
            ", ".join(f"{name} {_num(value)}" for name, value in requests.items()) or "-",
            None,
        ),
        (
            "consumer alone: DynamoDB requests per applied change",
            _num(summary["consumer_dynamodb_requests_per_applied_change"]),
            "dynamodb_requests_per_applied_change",
        ),
        (
            "bursts of one user: DynamoDB requests per user change",
            _num((burst.get("per_user_change") or {}).get("dynamodb")),
            None,
        ),
        (
            "est. AWS price per million user changes",
            f"${_num(summary['price_usd_per_million_user_changes'])}",
            None,
        ),
        (
            "hot path (µs per record)",
            f"{_num(summary['hot_path_us_per_record'])} "
            f"({_num(summary['hot_path_speedup_vs_baseline'])}x the baseline's speed)",
            "hot_path",
        ),
        (
            "reconcile audit / raw parallel scan of both tables",
            _num(summary["reconcile_ratio_to_raw_scan_of_both_tables"]),
            "reconcile",
        ),
        (
            "store CPU per replicated change / per raw PutItem",
            f"{_num(summary['store_cpu_ratio_to_raw_put_item'])} "
            f"({_num(summary['store_cpu_ms_per_replicated_change'])} ms / "
            f"{_num(summary['store_cpu_ms_per_raw_put_item'])} ms)",
            "store_cpu_per_change",
        ),
        ("stack start-up", f"{_num(summary['startup_seconds'])} s", None),
        (
            "idle CPU (% of a core)",
            _num(summary["idle_cpu_percent_of_a_core"]),
            "idle_cpu",
        ),
        ("quiet drain", _ms_exact(summary["quiet_drain_ms_p50"]), "quiet_drain"),
        (
            "idle write → visible p50, at Pipes' pace",
            _ms_exact(summary["write_visible_ms_p50_paced"]),
            None,
        ),
        (
            "idle write → visible p50, pipe woken by writes",
            _ms_exact(summary["write_visible_ms_p50_woken"]),
            "write_visible_woken",
        ),
        ("bench probe requests (not in the pipeline's)", _num(summary["probe_requests"]), None),
    ]
    for name, measured, target in rows:
        verdict = ""
        if target is not None:
            met = targets[target]["met"]
            mark = "[green]met[/green]" if met else "[red]missed[/red]" if met is False else "?"
            verdict = f"{escape(targets[target]['target'])}: {mark}"
        table.add_row(name, measured, verdict)
    console.print(table)


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _ms_exact(value: Any) -> str:
    return "-" if value is None else f"{value:,.1f} ms"
