"""Run the orgsync CLI with every thread under cProfile and each AWS call timed by operation.

`python -m cProfile` sees only the main thread, and reconcile's slices run in pool threads, so
this launcher gives each new thread its own profiler and merges them at exit into OUT (pstats),
and writes OUT.calls.json: per AWS operation, the calls, their wall seconds added up over all
threads, and the longest one. Time spent waiting for the store shows there and not as CPU in
the profile. Used by `reconcile_memory.py --profile-dir`; --workers processes are not profiled.

    .venv/bin/python benchmarks/profiled_child.py OUT.prof [orgsync arguments...]
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import botocore.client

_profiles: list[cProfile.Profile] = []
_calls: defaultdict[str, list[float]] = defaultdict(list)
_lock = threading.Lock()


def _profile_thread(frame: Any, event: str, arg: Any) -> None:
    del frame, event, arg
    sys.setprofile(None)  # replaced by this thread's own profiler
    profile = cProfile.Profile()
    with _lock:
        _profiles.append(profile)
    profile.enable()


def _timed(make_api_call: Any) -> Any:
    def timed_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        began = time.perf_counter()
        try:
            return make_api_call(self, operation_name, api_params)
        finally:
            seconds = time.perf_counter() - began
            with _lock:
                _calls[operation_name].append(seconds)

    return timed_api_call


def main() -> None:
    out = Path(sys.argv[1])
    sys.argv = ["orgsync", *sys.argv[2:]]
    # botocore's stubs do not declare the private method every call goes through: set by name.
    client_class: Any = botocore.client.BaseClient
    client_class._make_api_call = _timed(client_class._make_api_call)
    threading.setprofile(_profile_thread)
    main_profile = cProfile.Profile()
    _profiles.append(main_profile)
    main_profile.enable()
    try:
        from orgsync.cli import app  # noqa: PLC0415 - imported under the profiler

        app()
    finally:
        main_profile.disable()
        stats = pstats.Stats(main_profile)
        for profile in _profiles[1:]:
            stats.add(profile)
        stats.dump_stats(out)
        summary = {
            operation: {
                "calls": len(seconds),
                "seconds_added_up": round(sum(seconds), 2),
                "longest_seconds": round(max(seconds), 3),
            }
            for operation, seconds in sorted(_calls.items())
        }
        out.with_suffix(".calls.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
