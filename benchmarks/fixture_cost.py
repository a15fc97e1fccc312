"""What the pytest fixtures cost a test suite: the session's stack start, and the per-test reset.

The baseline, measured in the same run, is what isolation would cost without a reset: a new
stack for every test (start + stop). Each round writes what a small test writes (USERS users in
ORGS organizations each), drains, then resets. Nothing here asserts a time.

    .venv/bin/python benchmarks/fixture_cost.py [--rounds 20] [--store moto] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from orgsync.local.options import StackOptions
from orgsync.local.remote import RemoteStack

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
USERS = 3
ORGS = 2


def stack_options(store: str, **overrides: Any) -> StackOptions:
    """A local stack on a free port with `store` (DynamoDB Local from its usual place); the
    other benchmarks start theirs with this too, changing what they measure differently."""
    directory = os.environ.get("ORGSYNC_DYNAMODB_LOCAL_DIR")
    options: dict[str, Any] = {
        "template_path": TEMPLATE,
        "port": 0,
        "store": "dynamodb-local" if store == "dynamodb-local" else "moto",
        "dynamodb_local_dir": Path(directory) if directory else None,
        "pipe_poll_interval": 0.1,  # as the fixture runs it
    }
    return StackOptions(**(options | overrides))


def _write_a_test_worth(stack: RemoteStack, round_: int) -> None:
    dynamodb = stack.client("dynamodb")
    for index in range(USERS):
        dynamodb.put_item(
            TableName="poc-users",
            Item={
                "pk": {"S": f"USER#bench-{round_}-{index}"},
                "sk": {"S": "METADATA"},
                "status": {"S": "ACTIVE"},
                "organizations": {"L": [{"S": f"org-{org}"} for org in range(ORGS)]},
            },
        )
    stack.drain()


def _milliseconds(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def measure(rounds: int, store: str) -> dict[str, object]:
    starts: list[float] = []
    stops: list[float] = []
    for _ in range(max(3, rounds // 5)):  # the baseline: a fresh stack per test
        began = time.perf_counter()
        stack = RemoteStack(stack_options(store))
        stack.start()
        starts.append(time.perf_counter() - began)
        began = time.perf_counter()
        stack.stop()
        stops.append(time.perf_counter() - began)
    resets: list[float] = []
    with RemoteStack(stack_options(store)) as stack:
        for round_ in range(rounds):
            _write_a_test_worth(stack, round_)
            began = time.perf_counter()
            stack.reset()
            resets.append(time.perf_counter() - began)
    fresh = [start + stop for start, stop in zip(starts, stops, strict=True)]
    return {
        "store": store,
        "rounds": rounds,
        "writes_per_round": {"users": USERS, "organizations_each": ORGS},
        "fixture_setup": _milliseconds(starts),
        "reset": _milliseconds(resets),
        "baseline_fresh_stack_per_test": _milliseconds(fresh),
        "reset_vs_fresh_stack_ratio": round(
            statistics.median(resets) / statistics.median(fresh), 3
        ),
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--store", choices=("moto", "dynamodb-local"), default="moto")
    parser.add_argument("--json", type=Path, default=None)
    arguments = parser.parse_args()
    figures = measure(arguments.rounds, arguments.store)
    text = json.dumps(figures, indent=2)
    print(text)
    if arguments.json is not None:
        arguments.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
