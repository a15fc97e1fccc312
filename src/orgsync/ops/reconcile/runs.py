"""A run of many slices that survives being killed: reports kept in a run directory, slices
run in threads or in `--workers` processes, finished slices never redone.

A slice's report is written (atomically) the moment it finishes, by whoever ran it: a thread,
a worker process, or `orgsync reconcile --segment I` on another machine writing into the same
directory. Running again with that directory runs only the slices without a report and merges
all of them; that is both "resume" and "merge the slices run elsewhere".
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orgsync.domain.apply import DEFAULT_MAX_ATTEMPTS, ReplicationPort
from orgsync.ops.reconcile.context import (
    ProgressCallback,
    SliceCancelledError,
    SliceContext,
    no_progress,
    slice_context,
)
from orgsync.ops.reconcile.report import ReconcileReport, merge
from orgsync.ops.reconcile.running import MAX_THREADS, run_slice_in
from orgsync.ops.reconcile.slices import Pass, Slice, Tables, all_slices

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

_RUN_FILE = "run.json"

ClientFactory = Callable[[], "DynamoDBClient"]
SliceDone = Callable[[Slice, ReconcileReport], None]


class RunDirectoryError(ValueError):
    """The run directory belongs to another run (other tables, segments or repair)."""


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What makes two runs the same run: the slices of one may stand in for the other's."""

    tables: Tables
    total_segments: int
    repair: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "users_table": self.tables.users,
            "organizations_table": self.tables.organizations,
            "total_segments": self.total_segments,
            "repair": self.repair,
        }


class RunDirectory:
    """`run.json` (the spec) and one `<slice name>.json` report per finished slice."""

    def __init__(self, path: Path, spec: RunSpec) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        run_file = path / _RUN_FILE
        if run_file.exists():
            try:
                found = json.loads(run_file.read_text())
            except ValueError:
                raise RunDirectoryError(
                    f"{run_file} cannot be read: use another directory, or remove this one"
                ) from None
            if found != spec.to_json():
                raise RunDirectoryError(
                    f"{path} holds a run of {found}, not {spec.to_json()}: use another directory"
                )
        else:
            _write_atomically(run_file, spec.to_json())

    def finished(self) -> dict[str, ReconcileReport]:
        """The reports of finished slices; one that cannot be read counts as not finished.

        Reports are written atomically, so an unreadable one was edited or damaged by hand;
        running its slice again is harmless (repairs are fenced), losing its findings is not.
        """
        reports: dict[str, ReconcileReport] = {}
        for file in sorted(self.path.glob("*.json")):
            if file.name == _RUN_FILE:
                continue
            try:
                reports[file.stem] = ReconcileReport.from_json(json.loads(file.read_text()))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                logger.warning(
                    "reconcile: %s cannot be read (%s): its slice runs again",
                    file,
                    type(exc).__name__,
                )
        return reports

    def save(self, slice_: Slice, report: ReconcileReport) -> None:
        _write_atomically(self.path / f"{slice_.name}.json", report.to_json())


@dataclass(frozen=True, slots=True)
class RunResult:
    report: ReconcileReport
    resumed: int  # slices whose reports were already in the run directory
    ran: int


def run_slices(
    make_client: ClientFactory,
    spec: RunSpec,
    *,
    passes: tuple[Pass, ...] = tuple(Pass),
    segments: tuple[int, ...] | None = None,
    workers: int | None = None,
    directory: RunDirectory | None = None,
    on_progress: ProgressCallback | None = None,
    on_slice_done: SliceDone | None = None,
    context: SliceContext | None = None,
) -> RunResult:
    """Run the slices of `passes` (all segments, or only `segments`), pass after pass.

    `workers=None` runs them in threads of this process, on `context` when given (else one built
    with a client from `make_client`); `workers=W` in W processes, each with its own client from
    `make_client` (which must pickle: a module-level function or partial).
    """
    started = time.monotonic()
    finished = directory.finished() if directory is not None else {}
    wanted = [
        slice_
        for slice_ in all_slices(spec.total_segments, passes)
        if segments is None or slice_.segment in segments
    ]
    reports = [finished[s.name] for s in wanted if s.name in finished]
    todo = [s for s in wanted if s.name not in finished]
    done = on_slice_done or (lambda slice_, report: None)
    for slice_ in wanted:
        if slice_.name in finished:
            done(slice_, finished[slice_.name])
    progress = on_progress or no_progress
    with _executor(
        make_client,
        spec,
        workers=workers,
        progress=progress,
        directory=directory,
        context=context,
    ) as run:
        for pass_ in passes:
            for slice_, report in run([s for s in todo if s.pass_ is pass_]):
                reports.append(report)
                done(slice_, report)
    merged = merge(reports, repair=spec.repair, seconds=time.monotonic() - started)
    return RunResult(report=merged, resumed=len(wanted) - len(todo), ran=len(todo))


Runner = Callable[[list[Slice]], Iterator[tuple[Slice, ReconcileReport]]]


@contextmanager
def _executor(
    make_client: ClientFactory,
    spec: RunSpec,
    *,
    workers: int | None,
    progress: ProgressCallback,
    directory: RunDirectory | None,
    context: SliceContext | None,
) -> Iterator[Runner]:
    if workers is None:
        if context is None:
            context = slice_context(
                make_client(), tables=spec.tables, repair=spec.repair, on_progress=progress
            )

        def in_thread(slice_: Slice) -> ReconcileReport:
            return _run_and_save(context, slice_, directory)

        threads = ThreadPoolExecutor(max_workers=min(MAX_THREADS, spec.total_segments))
        try:
            yield lambda slices: _as_done(threads, in_thread, slices)
        except BaseException:
            # Threads cannot be killed: tell the running slices to stop at their next batch.
            context.cancelled.set()
            raise
        finally:
            threads.shutdown(wait=True, cancel_futures=True)
        return
    spawn = multiprocessing.get_context("spawn")
    events: Any = spawn.Queue()
    # One switch for every worker: a failed slice or Ctrl-C stops them all at their next batch.
    cancelled = spawn.Event()
    forwarder = threading.Thread(target=_forward, args=(events, progress), daemon=True)
    forwarder.start()
    path = None if directory is None else directory.path
    processes = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=spawn,
        initializer=_init_worker,
        initargs=(make_client, spec, events, cancelled, path),
    )
    try:
        yield lambda slices: _as_done(processes, _run_in_worker, slices, _sigint_ignored)
    except BaseException:
        cancelled.set()
        raise
    finally:
        processes.shutdown(wait=True, cancel_futures=True)
        events.put(None)
        forwarder.join(timeout=5)


def _as_done(
    pool: Executor,
    work: Callable[[Slice], ReconcileReport | None],
    slices: list[Slice],
    submitting: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> Iterator[tuple[Slice, ReconcileReport]]:
    with submitting():
        futures = {pool.submit(work, slice_): slice_ for slice_ in slices}
    for future in as_completed(futures):
        report = future.result()
        if report is not None:
            yield futures[future], report


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ctrl-C ignored while the pool starts its workers (it does so on submit): a process started
    with SIGINT ignored keeps ignoring it from its first instruction, so a Ctrl-C during a
    worker's imports cannot end it with a traceback. The parent handles Ctrl-C for all."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may change signal handlers
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_and_save(
    context: SliceContext, slice_: Slice, directory: RunDirectory | None
) -> ReconcileReport:
    report = run_slice_in(context, slice_)
    if directory is not None:
        directory.save(slice_, report)
    return report


# -- worker processes ------------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _init_worker(
    make_client: ClientFactory, spec: RunSpec, events: Any, cancelled: Any, path: Path | None
) -> None:
    # Ctrl-C reaches the whole process group. The parent handles it and sets `cancelled`; a
    # worker stops at its next batch (its unfinished slice runs again next time).
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def progress(pass_: Pass, items: int, drifted: int) -> None:
        events.put((pass_.value, items, drifted))

    _worker["context"] = slice_context(
        make_client(),
        tables=spec.tables,
        repair=spec.repair,
        on_progress=progress,
        cancelled=cancelled,
    )
    _worker["directory"] = None if path is None else RunDirectory(path, spec)


def _run_in_worker(slice_: Slice) -> ReconcileReport | None:
    try:
        return _run_and_save(_worker["context"], slice_, _worker["directory"])
    except SliceCancelledError:
        return None  # the parent is already raising what cancelled the run


def _forward(events: Any, progress: ProgressCallback) -> None:
    while True:
        try:
            event = events.get(timeout=1)
        except queue.Empty:
            continue
        except (EOFError, OSError):
            return
        if event is None:
            return
        pass_, items, drifted = event
        progress(Pass(pass_), items, drifted)


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(temporary, path)


def reconcile(
    dynamodb: DynamoDBClient,
    *,
    users_table: str,
    organizations_table: str,
    segments: int = 4,
    repair: bool = False,
    on_progress: ProgressCallback | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    store: ReplicationPort | None = None,
) -> ReconcileReport:
    """Every slice of both passes in threads of this process, pass after pass; merged.

    The library's entry point (tests, the bench): the caller's client and store, no run
    directory. The organizations pass starts when the users pass is done, so with `repair` it
    judges the table the users pass left.
    """
    context = slice_context(
        dynamodb,
        tables=Tables(users_table, organizations_table),
        repair=repair,
        on_progress=on_progress,
        max_attempts=max_attempts,
        store=store,
    )
    spec = RunSpec(tables=context.tables, total_segments=segments, repair=repair)
    report = run_slices(lambda: dynamodb, spec, context=context).report
    logger.info(
        "reconcile: %s users, %s memberships, %s drifted, %s repaired, %s conflicts, %.1fs",
        report.users_scanned,
        report.memberships_scanned,
        report.users_with_drift,
        report.users_repaired,
        report.conflicts_retried,
        report.seconds,
    )
    return report
