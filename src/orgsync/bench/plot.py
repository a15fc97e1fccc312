"""The `--plot` PNG: replication lag percentiles against the offered write rate.

matplotlib with the Agg backend (no display needed); imported only when a plot is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_lag(figures: dict[str, Any], path: Path) -> Path:
    """Draw lag p50/p95/p99/max (ms) per rate step of `run_bench(...).as_json()`."""
    import matplotlib  # noqa: PLC0415 - optional and slow to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    steps = sorted(
        (s for s in figures["replication"]["steps"] if s["lag_ms"]["count"]),
        key=lambda s: s["offered_per_second"],
    )
    rates = [s["offered_per_second"] for s in steps]
    figure, axis = plt.subplots(figsize=(8, 5), dpi=110)
    for name, style in (("p50", "o-"), ("p95", "s--"), ("p99", "^-"), ("max", "x:")):
        axis.plot(rates, [s["lag_ms"][name] for s in steps], style, label=name)
    ceiling = (figures.get("ceiling") or {}).get("writes_per_second")
    if ceiling:
        axis.axvline(ceiling, color="grey", linestyle="--", label=f"ceiling {ceiling:.0f}/s")
    axis.axhline(1000, color="red", linestyle=":", linewidth=1, label="target p99 1 s")
    axis.set_xlabel("offered user writes per second")
    axis.set_ylabel("lag: write acknowledged → membership visible (ms)")
    axis.set_yscale("log")
    machine = figures.get("machine", {})
    axis.set_title(
        f"orgsync replication lag ({machine.get('store', '?')}, {machine.get('nproc', '?')} cores)"
    )
    axis.grid(visible=True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
