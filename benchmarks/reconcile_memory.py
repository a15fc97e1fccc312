"""Peak memory and wall time of `orgsync reconcile` as a backfill, then as an audit (issue 11).

For each store and size, a fresh local stack runs in its own process (`RemoteStack`) with the
store and the template's resources but no pipe and no poller (`run_pipeline=False`): the users
written are as users written before the stream existed, which only a backfill replicates.
(Reconcile's repairs write the organizations table, which has no stream, so a running pipe
would have sat idle through the measured runs.) N users are written with BatchWriteItem, 25
items a call, from parallel threads, each user in 1-6 organizations of a pool of N/10. Then
the installed console script runs, one child process at a time:

    orgsync --endpoint-url URL --name-prefix P reconcile --repair --json --segments S  # backfill
    orgsync --endpoint-url URL --name-prefix P reconcile --json --segments S           # audit

A child's peak RSS is the largest VmHWM (the kernel's high-water mark of a process's memory)
among it and its descendants (the `--workers` processes), read from /proc every 0.2 s until it
ends, and split by process: the parent, the largest worker, the sum of all the peaks, and the
largest total RSS seen at one moment. Not `ru_maxrss` of `os.wait4`, also reported: Linux counts
in it the image the child had between fork and exec, a copy of this process, so it reads at
least this process's RSS (which is why the users are made batch by batch, not all at once).
Nothing here asserts a time.

    .venv/bin/python benchmarks/reconcile_memory.py [--users 2000,10000,50000]
        [--store moto|dynamodb-local|both] [--segments 4] [--workers 2]
        [--baseline 7732080^] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fixture_cost import stack_options
from orgsync.bench.samples import user_id_for, user_item
from orgsync.local.options import StackOptions
from orgsync.local.remote import RemoteStack
from orgsync.local.servers.dynamodb_local import process_cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
ORGSYNC = ROOT / ".venv" / "bin" / "orgsync"
PYTHON = ROOT / ".venv" / "bin" / "python"
PROFILED_CHILD = Path(__file__).resolve().with_name("profiled_child.py")
PREFIX = "rm-"  # the stack's NamePrefix, and the CLI's --name-prefix
BATCH = 25  # BatchWriteItem's limit
WRITERS = 8
SAMPLE_SECONDS = 0.2
STATUSES = ("ACTIVE",) * 9 + ("SUSPENDED",)


# ---------------------------------------------------------------------- the data


def _user(index: int, pool: int, chooser: random.Random) -> dict[str, Any]:
    """A users-table item as `orgsync users put` writes it, plus what a real profile carries."""
    orgs = tuple(f"org-{org:05d}" for org in chooser.sample(range(pool), chooser.randint(1, 6)))
    item = user_item(
        user_id_for(index),
        email=f"user{index}@example.org",
        organizations=orgs,
        status=STATUSES[index % len(STATUSES)],
    )
    created = 1_700_000_000 + index * 37
    item.update(
        {
            "name": {"S": f"User Number {index}"},
            "given_name": {"S": "User"},
            "family_name": {"S": f"Number {index}"},
            "locale": {"S": chooser.choice(("en-US", "fr-FR", "de-DE", "pt-BR"))},
            "picture": {"S": f"https://avatars.example.org/u/{index:08d}.png?s=128"},
            "email_verified": {"BOOL": index % 7 != 0},
            "logins_count": {"N": str(chooser.randint(0, 5000))},
            "created_at": {"S": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))},
            "updated_at": {"S": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created + 9e5))},
        }
    )
    return item


def write_users(stack: RemoteStack, users: int, *, seed: int = 11) -> dict[str, Any]:
    """Write `users` users in batches of 25 from WRITERS threads; the figures of the write.

    Each batch is made in the thread that writes it and then dropped, so this process stays
    small: a child started from a large process would report the parent's RSS as its
    `ru_maxrss` (see `run_child`).
    """
    pool = max(1, users // 10)
    table = f"{PREFIX}poc-users"
    dynamodb = stack.client("dynamodb")

    def write(start: int) -> int:
        chooser = random.Random(seed * 1_000_003 + start)  # the same users whatever the threads
        batch = [_user(index, pool, chooser) for index in range(start, min(start + BATCH, users))]
        requests: list[Any] = [{"PutRequest": {"Item": item}} for item in batch]
        while requests:
            answer = dynamodb.batch_write_item(RequestItems={table: requests})
            requests = answer.get("UnprocessedItems", {}).get(table, [])
        return sum(len(item["organizations"]["L"]) for item in batch)

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=WRITERS) as threads:
        memberships = sum(threads.map(write, range(0, users, BATCH)))
    return {
        "users": users,
        "organization_pool": pool,
        "memberships_implied": memberships,
        "write_seconds": round(time.perf_counter() - began, 1),
    }


# ---------------------------------------------------------------------- one measured child


@dataclass(slots=True)
class _Process:
    kind: str
    peak_kb: int = 0


@dataclass(slots=True)
class ProcSampler:
    """Samples /proc for the child and its descendants: peak RSS per process, total at once."""

    root: int
    processes: dict[int, _Process] = field(default_factory=dict)
    total_peak_kb: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            total = 0
            for pid in _descendants(self.root):
                hwm, rss = _memory_kb(pid)
                if hwm is None:
                    continue
                process = self.processes.setdefault(pid, _Process(_kind(pid, self.root)))
                process.peak_kb = max(process.peak_kb, hwm)
                total += rss or 0
            self.total_peak_kb = max(self.total_peak_kb, total)

    def largest_peak_kb(self) -> int:
        return max((p.peak_kb for p in self.processes.values()), default=0)

    def figures(self) -> dict[str, Any]:
        workers = [p.peak_kb for p in self.processes.values() if p.kind == "worker"]
        others = [p.peak_kb for p in self.processes.values() if p.kind == "other"]
        parent = [p.peak_kb for p in self.processes.values() if p.kind == "parent"]
        return {
            "parent_peak_mb": _mb(max(parent, default=0)),
            "workers": len(workers),
            "largest_worker_peak_mb": _mb(max(workers, default=0)),
            "other_processes_peak_mb": [_mb(kb) for kb in others],  # multiprocessing's tracker
            "sum_of_peaks_mb": _mb(sum(p.peak_kb for p in self.processes.values())),
            "largest_total_at_once_mb": _mb(self.total_peak_kb),
        }


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _memory_kb(pid: int) -> tuple[int | None, int | None]:
    hwm = rss = None
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None, None
    for line in lines:
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return hwm, rss


def _kind(pid: int, root: int) -> str:
    if pid == root:
        return "parent"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "other"
    return "worker" if b"spawn_main" in command else "other"


def _mb(kb: float) -> float:
    return round(kb / 1024, 1)


def _cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds these processes have used so far (gone ones count 0)."""
    return sum(process_cpu_seconds(pid) or 0.0 for pid in pids)


def stack_processes() -> list[int]:
    """The stack's process (`python -m orgsync.local.remote`) and its children (the JVM)."""
    found: list[int] = []
    for pid in _descendants(os.getpid()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"orgsync.local.remote" in command:
            found.extend(_descendants(pid))
    return found


@dataclass(frozen=True, slots=True)
class ChildRun:
    seconds: float
    cpu_seconds: float  # the child's and its reaped descendants' user + system time
    store_cpu_seconds: float  # the stack process's (and its JVM's) meanwhile
    # The largest VmHWM among the child and its descendants: the kernel's high-water mark of
    # each process's own memory after exec, read every SAMPLE_SECONDS until it ends.
    peak_rss_kb: int
    # ru_maxrss of wait4: the same, except that Linux counts in it the RSS of the image the
    # child had before exec, a copy of this process: at least this process's RSS.
    wait4_maxrss_kb: int
    exit_code: int | None  # None: killed at the timeout
    report: dict[str, Any] | None
    processes: dict[str, Any]
    stderr_tail: str


def run_child(
    command: Sequence[str], *, env: dict[str, str], timeout: float, profile: Path | None
) -> ChildRun:
    """Run one reconcile child to its end (or the timeout); its time, peak RSS and report."""
    if profile is not None:  # every thread of the parent process (not --workers processes)
        command = [str(PYTHON), str(PROFILED_CHILD), str(profile), *command[1:]]
    store = stack_processes()
    store_cpu = _cpu_seconds(store)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env, start_new_session=True)
        sampler = ProcSampler(child.pid)
        sampler.start()
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)  # the child's own session: it and its workers

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - began
        store_cpu = _cpu_seconds(store) - store_cpu
        timer.cancel()
        sampler.stop()
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    report = None
    with contextlib.suppress(json.JSONDecodeError):
        report = json.loads(stdout) if stdout.strip() else None
    return ChildRun(
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        store_cpu_seconds=store_cpu,
        peak_rss_kb=sampler.largest_peak_kb(),
        wait4_maxrss_kb=usage.ru_maxrss,
        exit_code=None if killed.is_set() else child.returncode,
        report=report,
        processes=sampler.figures(),
        stderr_tail=stderr[-1500:].strip(),
    )


# ---------------------------------------------------------------------- one case


@dataclass(frozen=True, slots=True)
class Variant:
    name: str  # "new", "new-workers", "baseline"
    workers: int | None
    pythonpath: str | None  # the old checkout's src, for the baseline


def _options(store: str) -> StackOptions:
    return stack_options(
        store,
        parameters={"NamePrefix": PREFIX},
        run_pipeline=False,  # the users predate the stream: nothing replicates them but reconcile
    )


def _command(url: str, segments: int, *, repair: bool, workers: int | None) -> list[str]:
    command = [str(ORGSYNC), "--endpoint-url", url, "--name-prefix", PREFIX, "reconcile", "--json"]
    command += ["--segments", str(segments)]
    if repair:
        command.append("--repair")
    if workers is not None:
        command += ["--workers", str(workers)]
    return command


def _child_env(variant: Variant) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "ORGSYNC_")) and key != "PYTHONPATH"
    }
    if variant.pythonpath is not None:
        env["PYTHONPATH"] = variant.pythonpath
    return env


def _phase(run: ChildRun) -> dict[str, Any]:
    report = run.report or {}
    figures: dict[str, Any] = {
        "seconds": round(run.seconds, 1),
        "cpu_seconds": round(run.cpu_seconds, 1),
        "store_cpu_seconds": round(run.store_cpu_seconds, 1),
        "peak_rss_mb": _mb(run.peak_rss_kb),
        "wait4_maxrss_mb": _mb(run.wait4_maxrss_kb),
        "benchmark_process_rss_mb": _mb(_memory_kb(os.getpid())[1] or 0),
        "exit_code": run.exit_code,
        "timed_out": run.exit_code is None,
        "load_average_after": round(os.getloadavg()[0], 2),
        "processes": run.processes,
    }
    for key in (
        "users_scanned",
        "memberships_scanned",
        "replication_records_scanned",
        "users_with_drift",
        "users_repaired",
        "unresolved",
        "drift",
    ):
        if key in report:
            figures[key] = report[key]
    if run.exit_code != 0:
        figures["stderr_tail"] = run.stderr_tail
    return figures


def measure_case(
    store: str,
    users: int,
    variant: Variant,
    *,
    segments: int,
    timeout: float,
    profile_dir: Path | None,
) -> dict[str, Any]:
    """A fresh stack, N users written, then the backfill and the audit, each in its own child."""
    case: dict[str, Any] = {"store": store, "users": users, "variant": variant.name}
    case["code"] = _revision(variant)
    case["workers"] = variant.workers
    env = _child_env(variant)
    with RemoteStack(_options(store)) as stack:
        case["write"] = write_users(stack, users)
        for phase, repair in (("backfill", True), ("audit", False)):
            profile = None
            if profile_dir is not None:
                profile = profile_dir / f"{store}-{users}-{variant.name}-{phase}.prof"
            command = _command(stack.endpoint_url, segments, repair=repair, workers=variant.workers)
            run = run_child(command, env=env, timeout=timeout, profile=profile)
            case[phase] = _phase(run)
            print(f"  {store} {users} {variant.name} {phase}: {_line(case[phase])}", flush=True)
            if run.exit_code != 0:
                break
    audit = case.get("audit", {})
    case["drift_after"] = audit.get("users_with_drift")
    case["audit_memberships_match"] = (
        audit.get("memberships_scanned") == case["write"]["memberships_implied"]
    )
    return case


def _revision(variant: Variant) -> str:
    """The commit the child runs, `+dirty` when its reconcile or store code has local edits."""
    tree = ROOT if variant.pythonpath is None else Path(variant.pythonpath).parent
    git = ["git", "-C", str(tree)]
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
    )
    paths = ["src/orgsync/ops", "src/orgsync/store", "src/orgsync/cli", "src/orgsync/local"]
    dirty = subprocess.run(
        [*git, "status", "--porcelain", *paths], check=False, capture_output=True, text=True
    )
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _line(phase: dict[str, Any]) -> str:
    return (
        f"{phase['seconds']} s (cpu {phase['cpu_seconds']} s, store cpu "
        f"{phase['store_cpu_seconds']} s), peak {phase['peak_rss_mb']} MB, "
        f"exit {phase['exit_code']}, "
        f"drift {phase.get('users_with_drift')}, repaired {phase.get('users_repaired')}"
    )


# ---------------------------------------------------------------------- the whole run


def slopes(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """KB per user of peak RSS between the smallest and the largest size that completed, then
    between each pair of neighbouring sizes (`step`): where the growth happens."""
    found: list[dict[str, Any]] = []
    groups = sorted({(c["store"], c["variant"]) for c in cases})
    for store, variant in groups:
        for phase in ("backfill", "audit"):
            done = sorted(
                (c["users"], c[phase]["peak_rss_mb"])
                for c in cases
                if c["store"] == store
                and c["variant"] == variant
                and c.get(phase, {}).get("exit_code") == 0
            )
            pairs = [(done[0], done[-1])] if len(done) >= 2 else []
            if len(done) > 2:
                pairs += list(itertools.pairwise(done))
            for index, ((small, small_mb), (large, large_mb)) in enumerate(pairs):
                found.append(
                    {
                        "store": store,
                        "variant": variant,
                        "phase": phase,
                        "span": "step" if index else "whole",
                        "from_users": small,
                        "to_users": large,
                        "kb_per_user": round((large_mb - small_mb) * 1024 / (large - small), 3),
                    }
                )
    return found


@contextlib.contextmanager
def old_checkout(revision: str | None) -> Iterator[str | None]:
    """A temporary `git worktree` of `revision`; yields its src folder, removes it after."""
    if revision is None:
        yield None
        return
    path = Path(tempfile.mkdtemp(prefix="reconcile-old-")) / "tree"
    git = ["git", "-C", str(ROOT)]
    subprocess.run([*git, "worktree", "add", "--detach", str(path), revision], check=True)
    try:
        yield str(path / "src")
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(path)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", default="2000,10000,50000", help="comma-separated sizes")
    parser.add_argument("--store", choices=("moto", "dynamodb-local", "both"), default="both")
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument(
        "--workers", type=int, default=2, help="also run with --workers W (0: do not)"
    )
    parser.add_argument(
        "--baseline", default=None, help="also run this git revision's code, e.g. 7732080^"
    )
    parser.add_argument("--baseline-max-users", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per child")
    parser.add_argument("--profile-dir", type=Path, default=None, help="cProfile each child")
    parser.add_argument("--json", type=Path, default=None)
    arguments = parser.parse_args()
    sizes = [int(size) for size in arguments.users.split(",")]
    stores = ("moto", "dynamodb-local") if arguments.store == "both" else (arguments.store,)
    if arguments.profile_dir is not None:
        arguments.profile_dir.mkdir(parents=True, exist_ok=True)
    cases: list[dict[str, Any]] = []
    with old_checkout(arguments.baseline) as old_src:
        variants = [Variant("new", None, None)]
        if arguments.workers:
            variants.append(Variant("new-workers", arguments.workers, None))
        if old_src is not None:
            variants.append(Variant("baseline", None, old_src))
        for store in stores:
            for users in sizes:
                for variant in variants:
                    if variant.name == "baseline" and users > arguments.baseline_max_users:
                        continue
                    cases.append(
                        measure_case(
                            store,
                            users,
                            variant,
                            segments=arguments.segments,
                            timeout=arguments.timeout,
                            profile_dir=arguments.profile_dir,
                        )
                    )
                    _write(arguments.json, _figures(arguments, cases))  # a case at a time
    print(json.dumps(_figures(arguments, cases), indent=2))


def _figures(arguments: argparse.Namespace, cases: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "segments": arguments.segments,
        "baseline_revision": arguments.baseline,
        "cases": cases,
        "slopes": slopes(cases),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def _write(path: Path | None, figures: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
