"""moto's own server-mode tests, run against an unpatched moto server and orgsync's patched store.

orgsync's store is moto with patches to its internals (`orgsync.local.moto_patches`) behind a
one-request-at-a-time front (`orgsync.local.servers.serialized`). moto's test suite is the widest
description of moto's behaviour there is, so issue 10 asks that the patched store pass, fail and
skip exactly the tests that an unpatched moto server of the same version does. A test that fails
on both (it expects port 5000, or Docker) says nothing about the patches: it is counted, not fixed.

The tests come from moto's source distribution of exactly the installed version, downloaded once
into the git-ignored `.cache/moto-<version>/` (only `tests/` and the pytest configuration are
extracted, so the tests import the installed moto, the one the patches are applied to). Each
group gets a fresh pair of servers; the two runs of a group go side by side, and two groups at a
time (`--jobs`). A test whose outcome differs is run once more on another fresh pair (`--reruns`):
a difference that does not come back is reported as flaky and does not fail the check.

usage: scripts/moto-conformance [--group NAME]... [--jobs N] [--reruns N] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Final
from xml.etree import ElementTree

ROOT: Final = Path(__file__).resolve().parent.parent
HOST: Final = "127.0.0.1"
SERVER_START_TIMEOUT: Final = 30.0
# A test that hangs (a long poll stuck behind the store's request lock) fails, not the whole run.
TEST_TIMEOUT_SECONDS: Final = 60
RUN_TIMEOUT_SECONDS: Final = 600


@dataclass(frozen=True)
class Group:
    """A selection of moto's tests: these paths, narrowed by a pytest `-k` expression if any."""

    name: str
    paths: tuple[str, ...]
    keyword: str | None = None
    ignore: tuple[str, ...] = ()

    def pytest_args(self) -> list[str]:
        args = [f"--ignore={path}" for path in self.ignore]
        if self.keyword is not None:
            args += ["-k", self.keyword]
        return [*args, *self.paths]


DDB: Final = "tests/test_dynamodb"

# Whole tests/test_sqs but test_sqs_integration.py: it invokes a Lambda function in Docker
# (30 s of polling for a log line, then fails, on both servers) and tests Lambda, not SQS. The
# rest (send/receive/delete, batches, FIFO, dead-letter queues, visibility, long polls,
# attributes, purge) takes ~40 s, most of it the tests' own sleeps on visibility timeouts and
# long polls: those are kept, as the store's request lock treats long polls specially.
# The first group is the longest: with two jobs the others run beside it.
GROUPS: Final = (
    Group(
        "sqs",
        ("tests/test_sqs",),
        ignore=("tests/test_sqs/test_sqs_integration.py",),
    ),
    Group(
        "transactions",
        (
            f"{DDB}/test_dynamodb_transact.py",
            f"{DDB}/exceptions/test_dynamodb_transactions.py",
            f"{DDB}/exceptions/test_dynamodb_exceptions.py",
            f"{DDB}/test_dynamodb_statements.py",  # ExecuteTransaction
        ),
        keyword="transact",
    ),
    Group(
        "streams",
        (
            "tests/test_dynamodbstreams",
            f"{DDB}/test_dynamodb.py",
            f"{DDB}/test_dynamodb_create_table.py",
            f"{DDB}/test_dynamodb_update_table.py",
        ),
        keyword="stream",
    ),
    Group(
        "batch-get-item",
        (f"{DDB}/test_dynamodb_batch_get_item.py", f"{DDB}/exceptions/test_dynamodb_exceptions.py"),
        keyword="batch_get or batch_items",
    ),
    # Not named by issue 10, but `moto_patches.scans` replaces the walk of moto's Table.scan.
    Group(
        "scan",
        (
            f"{DDB}/test_dynamodb_scan.py",
            f"{DDB}/test_dynamodb.py",
            f"{DDB}/test_dynamodb_table_with_range_key.py",
            f"{DDB}/test_dynamodb_table_without_range_key.py",
            f"{DDB}/exceptions/test_dynamodb_exceptions.py",
        ),
        keyword="scan",
    ),
)


class Server(StrEnum):
    UNPATCHED = "unpatched"
    PATCHED = "patched"


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # a failure or an error
    SKIPPED = "skipped"


@dataclass
class Run:
    """One group's tests against one server: each test's outcome, by pytest node id."""

    outcomes: dict[str, Outcome]
    seconds: float
    messages: dict[str, str] = field(default_factory=dict)  # why a test failed or was skipped

    def count(self, outcome: Outcome) -> int:
        return sum(1 for seen in self.outcomes.values() if seen is outcome)

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(outcome)} {outcome}" for outcome in Outcome)
        return f"{counts} ({self.seconds:.1f} s)"


@dataclass
class GroupResult:
    group: Group
    runs: dict[Server, Run]
    differences: dict[str, dict[Server, Outcome | None]] = field(default_factory=dict)
    flaky: dict[str, dict[Server, Outcome | None]] = field(default_factory=dict)


class ConformanceError(Exception):
    """The check could not run (download, server start, pytest itself): not a difference."""


# --- moto's tests, from its sdist -------------------------------------------------------------


def moto_tests(version: str, cache_dir: Path) -> Path:
    """The extracted tests of moto `version` (downloading its sdist the first time)."""
    target = cache_dir / f"moto-{version}"
    if (target / ".complete").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as scratch:
        download = Path(scratch)
        # No build isolation: pip reads the sdist's metadata with the venv's setuptools instead
        # of fetching one. Only PyPI is reachable, and this is all it is asked for.
        command = [
            *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
            *("--no-binary", ":all:", "--no-build-isolation", f"moto=={version}"),
            *("-d", str(download)),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our own interpreter and arguments
        archives = list(download.glob(f"moto-{version}.tar.gz"))
        if done.returncode != 0 or not archives:
            raise ConformanceError(f"pip download of moto {version}'s sdist failed:\n{done.stderr}")
        extracted = download / "extracted"
        _extract_tests(archives[0], f"moto-{version}", extracted)
        (extracted / ".complete").write_text(f"moto {version} tests, from {archives[0].name}\n")
        shutil.rmtree(target, ignore_errors=True)  # a partial copy an interrupted run left
        extracted.rename(target)
    return target


def _extract_tests(archive: Path, prefix: str, into: Path) -> None:
    """Only tests/ and the pytest configuration: moto's own package must come from the venv."""
    wanted = (f"{prefix}/tests/", f"{prefix}/pyproject.toml", f"{prefix}/setup.cfg")
    with tarfile.open(archive) as sdist:
        members = [member for member in sdist.getmembers() if member.name.startswith(wanted)]
        for member in members:
            member.name = member.name.removeprefix(f"{prefix}/")
        sdist.extractall(into, members=members, filter="data")
    if not (into / "tests" / "conftest.py").exists():
        raise ConformanceError(f"{archive.name} holds no tests/conftest.py: not moto's sdist?")


# --- servers ----------------------------------------------------------------------------------


def free_port() -> int:
    from orgsync.local.servers import find_free_port  # noqa: PLC0415 - orgsync only when it runs

    return find_free_port()


@contextlib.contextmanager
def server(kind: Server, log: Path, env: Mapping[str, str]) -> Iterator[str]:
    """A server of this kind on a free port, in a process of its own; yields its endpoint."""
    port = free_port()
    if kind is Server.UNPATCHED:
        command = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
    else:
        command = [sys.executable, str(Path(__file__).resolve()), "--serve-patched", str(port)]
    with log.open("wb") as output:
        # cwd: not the tests' folder, so `python -m moto.server` imports the installed moto.
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, stdout=output, stderr=subprocess.STDOUT, env=dict(env), cwd=log.parent
        )
    try:
        try:
            _wait_until_answering(port, process, kind)
        except ConformanceError as exc:
            raise ConformanceError(f"{exc}; {_shown(log)} ends:\n{_tail(log)}") from None
        yield f"http://{HOST}:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_answering(port: int, process: subprocess.Popen[bytes], kind: Server) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConformanceError(f"the {kind} server exited while starting")
        connection = http.client.HTTPConnection(HOST, port, timeout=2)
        try:
            connection.request("GET", "/")
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    raise ConformanceError(f"the {kind} server did not answer on port {port} within 30 s")


def serve_patched(port: int) -> None:
    """orgsync's store as the embedded stack runs it (`MotoStore.start` applies every patch)."""
    from orgsync.local.servers import MotoStore  # noqa: PLC0415 - orgsync only when it runs

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    store = MotoStore(port=port)
    store.start()
    print(f"orgsync's patched moto store on {store.endpoint_url}", flush=True)
    try:
        stop.wait()
    finally:
        store.stop()


# --- running and reading moto's tests ---------------------------------------------------------


def clean_environment() -> dict[str, str]:
    """This process's environment without what would point moto or boto3 anywhere else."""
    dropped = ("AWS_", "MOTO_", "TEST_SERVER_MODE", "TEST_PROXY_MODE", "PYTEST_", "ORGSYNC_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(dropped)}
    dummy = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}  # moto accepts any key
    env.update(dummy, AWS_DEFAULT_REGION="us-east-1")
    return env


def run_tests(
    selection: Sequence[str], endpoint: str, tests_dir: Path, out: Path, env: Mapping[str, str]
) -> Run:
    """moto's tests of `selection` in server mode against `endpoint`; out.xml/.log are kept."""
    junit = out.with_suffix(".xml")
    junit.unlink(missing_ok=True)
    command = [
        *(sys.executable, "-m", "pytest", "-q", "--color=no", "-o", "addopts="),
        # moto's configuration, not orgsync's. Of the venv's plugins only pytest-timeout: the
        # others (orgsync's, hypothesis, xdist, benchmark) cost 1.4 s of CPU per run to load.
        *("-c", str(tests_dir / "pyproject.toml"), "--rootdir", str(tests_dir)),
        *("-p", "no:cacheprovider", "-p", "pytest_timeout", "--timeout", str(TEST_TIMEOUT_SECONDS)),
        # xunit1 reports each test's file, from which its node id is rebuilt (for a rerun).
        *("-o", "junit_family=xunit1", f"--junitxml={junit}"),
        *selection,
    ]
    run_env = {
        **env,
        **{"TEST_SERVER_MODE": "true", "TEST_SERVER_MODE_ENDPOINT": endpoint},
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    started = time.monotonic()
    with out.with_suffix(".log").open("wb") as log:
        try:
            done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
                command,
                cwd=tests_dir,
                env=run_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ConformanceError(
                f"pytest ran over {RUN_TIMEOUT_SECONDS} s against {endpoint}; {_shown(out)} ends:"
                f"\n{_tail(out)}"
            ) from exc
    seconds = time.monotonic() - started
    # 0: all passed, 1: some failed; anything else (usage, collection, no test) is no result.
    if done.returncode not in (0, 1) or not junit.exists():
        raise ConformanceError(
            f"pytest exited {done.returncode} against {endpoint}; {_shown(out)} ends:\n{_tail(out)}"
        )
    return read_junit(junit, seconds)


def read_junit(path: Path, seconds: float) -> Run:
    """Each test's outcome by node id; one reported twice (call, teardown) keeps the worse."""
    tree = ElementTree.parse(path)  # noqa: S314 - pytest's own report of a run we started
    run = Run({}, seconds)
    for case in tree.iter("testcase"):
        node_id = _node_id(case)
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        skipped = case.find("skipped")
        if failure is not None:
            outcome, why = Outcome.FAILED, failure
        elif skipped is not None:
            outcome, why = Outcome.SKIPPED, skipped
        else:
            outcome, why = Outcome.PASSED, None
        seen = run.outcomes.get(node_id)
        if seen is None or seen is Outcome.PASSED or outcome is Outcome.FAILED:
            run.outcomes[node_id] = outcome
            if why is not None:
                run.messages[node_id] = " ".join(why.get("message", "").split())[:160]
    return run


def _node_id(case: ElementTree.Element) -> str:
    """`tests/x/test_y.py::TestZ::test_w[p]` from xunit1's file, classname and name."""
    file, classname, name = case.get("file", ""), case.get("classname", ""), case.get("name", "")
    module = file.removesuffix(".py").replace("/", ".")
    classes = classname.removeprefix(module).strip(".")
    parts = [file, *(classes.split(".") if classes else []), name]
    return "::".join(part for part in parts if part)


def differences(runs: Mapping[Server, Run]) -> dict[str, dict[Server, Outcome | None]]:
    """The tests whose outcome is not the same on both servers (None: not reported by one)."""
    unpatched, patched = runs[Server.UNPATCHED].outcomes, runs[Server.PATCHED].outcomes
    return {
        test: {Server.UNPATCHED: unpatched.get(test), Server.PATCHED: patched.get(test)}
        for test in sorted(unpatched.keys() | patched.keys())
        if unpatched.get(test) != patched.get(test)
    }


# --- the check --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checker:
    """Checks one group at a time on servers of its own: groups can run side by side, as each
    moto test resets its server (`POST /moto-api/reset`) when it starts."""

    tests_dir: Path
    out_dir: Path
    env: Mapping[str, str]
    reruns: int

    def check(self, group: Group) -> GroupResult:
        result = GroupResult(group, self._run_pair(group.name, group.pytest_args()))
        if not any(run.outcomes for run in result.runs.values()):
            raise ConformanceError(f"group {group.name} selected no test: moto moved its tests?")
        result.differences = differences(result.runs)
        for attempt in range(1, self.reruns + 1):
            if not result.differences:
                break
            again = differences(
                self._run_pair(f"{group.name}-rerun{attempt}", sorted(result.differences))
            )
            for test in sorted(set(result.differences) - set(again)):
                result.flaky[test] = result.differences.pop(test)
        return result

    def _run_pair(self, label: str, selection: Sequence[str]) -> dict[Server, Run]:
        """The selection against a fresh server of each kind, both at once."""
        with (
            server(Server.UNPATCHED, self._out(label, "server-unpatched"), self.env) as plain,
            server(Server.PATCHED, self._out(label, "server-patched"), self.env) as patched,
            ThreadPoolExecutor(max_workers=2) as pool,
        ):
            endpoints = {Server.UNPATCHED: plain, Server.PATCHED: patched}
            futures = {
                kind: pool.submit(
                    run_tests, selection, endpoint, self.tests_dir, self._out(label, kind), self.env
                )
                for kind, endpoint in endpoints.items()
            }
            return {kind: future.result() for kind, future in futures.items()}

    def _out(self, label: str, what: str) -> Path:
        return self.out_dir / f"{label}-{what}.log"


def report_group(result: GroupResult) -> str:
    runs = " | ".join(f"{kind} {run.summary()}" for kind, run in result.runs.items())
    verdict = f"{len(result.differences)} DIFFER" if result.differences else "same"
    flaky = f", {len(result.flaky)} flaky (not reproduced)" if result.flaky else ""
    return f"  {result.group.name:<15} {runs}: {verdict}{flaky}"


def report_tests(
    title: str, tests: Mapping[str, Mapping[Server, Outcome | None]], runs: Mapping[Server, Run]
) -> list[str]:
    lines = [title] if tests else []
    for test, outcomes in tests.items():
        seen = ", ".join(f"{kind} {outcome or 'not run'}" for kind, outcome in outcomes.items())
        lines.append(f"    {test}: {seen}")
        lines += [
            f"      {kind}: {runs[kind].messages[test]}"
            for kind in outcomes
            if runs[kind].messages.get(test)
        ]
    return lines


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _tail(log: Path, lines: int = 20) -> str:
    """The end of a log, for CI's output: the cache folder is gone once the run is."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(f"    {line}" for line in text.splitlines()[-lines:])


def run_groups(checker: Checker, groups: Sequence[Group], jobs: int) -> list[GroupResult]:
    """Each group checked, `jobs` at a time; a line per group as soon as the ones before it end."""
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    results: list[GroupResult] = []
    try:
        for result in pool.map(checker.check, groups):
            print(report_group(result), flush=True)
            results.append(result)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after a failure: start no other group
    return results


def report(results: Sequence[GroupResult], reruns: int) -> list[str]:
    lines: list[str] = []
    for result in results:
        name, runs = result.group.name, result.runs
        again = " (and on a rerun)" if reruns else ""
        lines += report_tests(f"  {name}: outcome differs{again}", result.differences, runs)
        title = f"  {name}: differed, but not on a rerun (flaky, not counted)"
        lines += report_tests(title, result.flaky, runs)
    both = [
        f"{result.group.name}: {test}"
        for result in results
        for test, outcome in result.runs[Server.UNPATCHED].outcomes.items()
        if outcome is Outcome.FAILED and result.runs[Server.PATCHED].outcomes.get(test) is outcome
    ]
    if both:
        lines.append(f"  {len(both)} tests fail on both servers (so not because of the patches):")
        lines += [f"    {test}" for test in both[:10]] + (["    …"] if len(both) > 10 else [])
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [group.name for group in GROUPS]
    parser.add_argument("--group", action="append", choices=names, help="default: all")
    parser.add_argument("--jobs", type=int, default=2, help="groups run at once (default 2)")
    parser.add_argument("--reruns", type=int, default=1, help="reruns of differing tests")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache")
    parser.add_argument("--serve-patched", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_patched is not None:
        serve_patched(args.serve_patched)
        return 0

    started = time.monotonic()
    moto_version = installed_version("moto")
    groups = [group for group in GROUPS if args.group is None or group.name in args.group]
    try:
        cached = (args.cache_dir / f"moto-{moto_version}" / ".complete").exists()
        tests_dir = moto_tests(moto_version, args.cache_dir)
        fetched = "cached" if cached else f"sdist fetched in {time.monotonic() - started:.1f} s"
        out_dir = args.cache_dir / "moto-conformance"
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        print(
            f"moto {moto_version}'s server-mode tests ({_shown(tests_dir)}, {fetched}) on an "
            "unpatched moto server and on orgsync's patched store:",
            flush=True,
        )
        checker = Checker(tests_dir, out_dir, clean_environment(), args.reruns)
        results = run_groups(checker, groups, args.jobs)
    except ConformanceError as exc:
        print(f"moto conformance: could not run: {exc}", file=sys.stderr)
        return 2

    if lines := report(results, args.reruns):
        print(*lines, sep="\n")
    differing = sum(len(result.differences) for result in results)
    print(
        f"moto conformance: {len(results)} groups in {time.monotonic() - started:.1f} s, "
        f"{differing} tests differ (logs: {_shown(out_dir)})"
    )
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
