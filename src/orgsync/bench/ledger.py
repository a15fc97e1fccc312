"""Counting the AWS requests the pipeline makes, per service, operation, table or queue.

Two hooks, both botocore's own: per client (`before-parameter-build` on the client's event
emitter) for clients the benchmark builds, and process-wide (botocore's global history recorder,
which sees every client of every session) for the clients the pipe, the poller and the Lambda
handler build for themselves — the handler makes a fresh `boto3.session.Session()`, whose event
emitter no hook registered elsewhere can reach. The benchmark's own writers and probes run inside
`driver_calls()` so the process-wide ledger leaves them out; on the clients `mark_origins`
was given they also name themselves to the embedded store (ORIGIN_HEADER), which counts its CPU
for them apart, the probe's (`probe_calls()`) apart from the writers'.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.history import BaseHistoryHandler, get_global_history_recorder

from orgsync.local.servers import ORIGIN_HEADER
from orgsync.schema.keys import MEMBERSHIP_PREFIX, REPLICATION_SORT_KEY

# (service, operation, resource, measure); measure "calls" counts requests, the others count
# what a request carried or returned (transaction actions, keys, messages, records).
CountKey = tuple[str, str, str, str]
CALLS = "calls"

_driver = threading.local()
# The embedded store's CPU accounts (`EmbeddedStack.store_cpu_seconds`): the pipeline is "".
DRIVER_ORIGIN = "driver"
PROBE_ORIGIN = "probe"


@contextmanager
def driver_calls() -> Iterator[None]:
    """Requests made in this block (this thread) are the benchmark's own, not the pipeline's."""
    with _origin(DRIVER_ORIGIN):
        yield


@contextmanager
def probe_calls() -> Iterator[None]:
    """The benchmark's reads that watch for replicated writes: the driver's, counted apart."""
    with _origin(PROBE_ORIGIN):
        yield


@contextmanager
def _origin(name: str) -> Iterator[None]:
    previous = getattr(_driver, "origin", None)
    _driver.origin = name
    try:
        yield
    finally:
        _driver.origin = previous


def mark_origins(client: Any) -> None:
    """Requests of this client made inside driver_calls() or probe_calls() name their origin."""
    client.meta.events.register("request-created", _name_origin, unique_id="orgsync-bench-origin")


def _name_origin(request: Any, **_: Any) -> None:
    origin = getattr(_driver, "origin", None)
    if origin is not None:
        request.headers[ORIGIN_HEADER] = origin


def _is_driver() -> bool:
    return getattr(_driver, "origin", None) is not None


@dataclass(frozen=True)
class RequestCounts:
    """A snapshot of counts; subtract two snapshots to get one phase's requests."""

    counts: Mapping[CountKey, int] = field(default_factory=dict)

    def __sub__(self, other: RequestCounts) -> RequestCounts:
        keys = set(self.counts) | set(other.counts)
        delta = {key: self.counts.get(key, 0) - other.counts.get(key, 0) for key in keys}
        return RequestCounts({key: value for key, value in delta.items() if value})

    def total(
        self,
        service: str | None = None,
        operation: str | None = None,
        resource: str | None = None,
        measure: str = CALLS,
    ) -> int:
        return sum(
            value
            for (svc, op, res, meas), value in self.counts.items()
            if meas == measure
            and (service is None or svc == service)
            and (operation is None or op == operation)
            and (resource is None or res == resource)
        )

    def calls_by_operation(self, service: str) -> dict[str, int]:
        found: Counter[str] = Counter()
        for (svc, op, _, meas), value in self.counts.items():
            if svc == service and meas == CALLS:
                found[op] += value
        return dict(sorted(found.items()))

    def as_dict(self) -> dict[str, Any]:
        """Nested service → operation → resource → measure → count (JSON-friendly)."""
        tree: dict[str, Any] = {}
        for (svc, op, res, meas), value in sorted(self.counts.items()):
            tree.setdefault(svc, {}).setdefault(op, {}).setdefault(res or "-", {})[meas] = value
        return tree


class _Tally:
    """Thread-safe counter shared by both hooks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[CountKey] = Counter()

    def add(self, items: Mapping[CountKey, int]) -> None:
        with self._lock:
            self._counts.update(items)

    def snapshot(self) -> RequestCounts:
        with self._lock:
            return RequestCounts(dict(self._counts))


def classify_call(service: str, operation: str, params: Mapping[str, Any]) -> dict[CountKey, int]:
    """What one request is worth counting: the call, and what it carries."""
    resource = _resource_of(params)
    counts: dict[CountKey, int] = {(service, operation, resource, CALLS): 1}
    if operation == "TransactWriteItems":
        for action in params.get("TransactItems", []):
            for kind, body in action.items():
                table = str(body.get("TableName", ""))
                counts[(service, operation, table, "actions")] = (
                    counts.get((service, operation, table, "actions"), 0) + 1
                )
                measure = _transaction_measure(kind, body)
                key = (service, operation, table, measure)
                counts[key] = counts.get(key, 0) + 1
    elif operation == "BatchGetItem":
        for table, request in params.get("RequestItems", {}).items():
            key = (service, operation, str(table), "keys")
            counts[key] = counts.get(key, 0) + len(request.get("Keys", []))
    elif operation in ("SendMessageBatch", "DeleteMessageBatch"):
        counts[(service, operation, resource, "entries")] = len(params.get("Entries", []))
    return counts


def _transaction_measure(kind: str, body: Mapping[str, Any]) -> str:
    item = body.get("Item") or body.get("Key") or {}
    sort_key = str(item.get("sk", {}).get("S", ""))
    if sort_key.startswith(MEMBERSHIP_PREFIX):
        return "membership_puts" if kind == "Put" else "membership_deletes"
    if sort_key == REPLICATION_SORT_KEY and kind == "Put":
        return "replication_puts"
    return "other_actions"


def _resource_of(params: Mapping[str, Any]) -> str:
    """The table or queue a request addresses; multi-table requests name their tables."""
    if "TableName" in params:
        return str(params["TableName"])
    if "QueueUrl" in params:
        return str(params["QueueUrl"]).rstrip("/").rsplit("/", 1)[-1]
    tables: set[str] = set(params.get("RequestItems", {}))
    for action in params.get("TransactItems", []):
        tables.update(str(body.get("TableName", "")) for body in action.values())
    return ",".join(sorted(tables))


def _response_counts(
    service: str, operation: str, resource: str, parsed: Any
) -> dict[CountKey, int]:
    """Counts only a response tells: empty receives/reads are the idle polling, not the work."""
    if not isinstance(parsed, dict):
        return {}
    if service == "sqs" and operation == "ReceiveMessage":
        got = len(parsed.get("Messages", []) or [])
        measure = "messages" if got else "empty"
        return {(service, operation, resource, measure): got or 1}
    if service == "dynamodbstreams" and operation == "GetRecords":
        got = len(parsed.get("Records", []) or [])
        measure = "records" if got else "empty"
        return {(service, operation, resource, measure): got or 1}
    return {}


class ClientRequestCounter:
    """Counts the requests of the clients it is attached to (botocore event hooks)."""

    def __init__(self) -> None:
        self._tally = _Tally()

    def attach(self, client: Any) -> None:
        service = client.meta.service_model.service_name

        def before(params: Mapping[str, Any], model: Any, **_: Any) -> None:
            self._tally.add(classify_call(service, model.name, params))

        client.meta.events.register(f"before-parameter-build.{service}", before)

    def snapshot(self) -> RequestCounts:
        return self._tally.snapshot()


class _LedgerHandler(BaseHistoryHandler):
    def __init__(self, tally: _Tally) -> None:
        self.tally = tally
        self.active = True
        self._last = threading.local()

    def emit(self, event_type: str, payload: Any, source: str) -> None:
        if not self.active or _is_driver():
            return
        if event_type == "API_CALL":
            service, operation = str(payload["service"]), str(payload["operation"])
            params = payload.get("params") or {}
            self._last.call = (service, operation, _resource_of(params))
            self.tally.add(classify_call(service, operation, params))
        elif event_type == "PARSED_RESPONSE":
            last: tuple[str, str, str] | None = getattr(self._last, "call", None)
            if last is not None:
                service, operation, resource = last
                self.tally.add(_response_counts(service, operation, resource, payload))


class RequestLedger:
    """Every request any client in this process makes (except the driver's), while installed."""

    def __init__(self) -> None:
        self._tally = _Tally()
        self._handler: _LedgerHandler | None = None
        self._enabled_recorder = False

    def install(self) -> None:
        recorder = get_global_history_recorder()
        self._handler = _LedgerHandler(self._tally)
        recorder.add_handler(self._handler)
        # The recorder is off unless something (the AWS CLI's history) turned it on.
        self._enabled_recorder = not getattr(recorder, "_enabled", False)  # no public getter
        recorder.enable()

    def uninstall(self) -> None:
        # The recorder has no remove_handler: the handler stays registered but goes inert.
        if self._handler is not None:
            self._handler.active = False
            self._handler = None
        if self._enabled_recorder:
            get_global_history_recorder().disable()
            self._enabled_recorder = False

    def snapshot(self) -> RequestCounts:
        return self._tally.snapshot()

    def __enter__(self) -> RequestLedger:
        self.install()
        return self

    def __exit__(self, *_: object) -> None:
        self.uninstall()
