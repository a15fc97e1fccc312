"""Lambda entry point of ReconcileFunction (template.yaml): build once (cached), then delegate.

`{"action": "slice", ...}` runs one slice with `orgsync.ops.reconcile.run_slice` and returns its
report; `{"action": "merge", ...}` merges the Distributed Maps' results (`merging`). Events are
read by `events`; a bad one raises a ValueError. Logs carry counts and slice names, never an
item (so never an email).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from orgsync.ops.reconcile import run_slice
from orgsync.reconciler.events import MergeEvent, SliceEvent, parse_event
from orgsync.reconciler.merging import merge_run
from orgsync.reconciler.results import ResultsBucket
from orgsync.reconciler.settings import ReconcilerSettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = Logger(service="orgsync")

# Standard mode: throttling and 5xx retried with backoff under a retry quota; the store's own
# policy (store.retry) retries what is left, page by page, without losing its place.
_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=2,
    read_timeout=20,
    max_pool_connections=10,
)


@dataclass(frozen=True, slots=True)
class _Runtime:
    settings: ReconcilerSettings
    dynamodb: DynamoDBClient
    results: ResultsBucket


@cache
def _runtime() -> _Runtime:
    """Once per execution environment (container): settings, clients, loggers."""
    settings = ReconcilerSettings.from_environment(os.environ)
    copy_config_to_registered_loggers(source_logger=logger, include={"orgsync"})
    session = boto3.session.Session()
    return _Runtime(
        settings=settings,
        dynamodb=session.client("dynamodb", config=_CLIENT_CONFIG),
        results=ResultsBucket(
            session.client("s3", config=_CLIENT_CONFIG), settings.results_bucket_name
        ),
    )


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(event)
    runtime = _runtime()
    if isinstance(request, SliceEvent):
        return _slice(runtime, request)
    return _merge(runtime, request)


def _slice(runtime: _Runtime, request: SliceEvent) -> dict[str, Any]:
    name = request.slice_.name
    logger.append_keys(slice=name, repair=request.repair)
    report = run_slice(
        runtime.dynamodb, request.slice_, tables=runtime.settings.tables, repair=request.repair
    )
    logger.info(
        "slice done",
        extra={
            "users_scanned": report.users_scanned,
            "memberships_scanned": report.memberships_scanned,
            "users_with_drift": report.users_with_drift,
            "users_repaired": report.users_repaired,
            "users_skipped": report.users_skipped,
            "unresolved": report.unresolved,
            "seconds": round(report.seconds, 3),
        },
    )
    return report.to_json()


def _merge(runtime: _Runtime, request: MergeEvent) -> dict[str, Any]:
    logger.append_keys(execution=request.execution, repair=request.repair)
    output = merge_run(runtime.results, request, now=datetime.now(UTC))
    logger.info(
        "run merged",
        extra={
            "report_key": output["report_key"],
            "slices": len(output["slices"]),
            "failed_slices": output["failed_slices"],
            "pending_slices": output["pending_slices"],
            "missing_slices": output["missing_slices"],
            "users_scanned": output["users_scanned"],
            "users_with_drift": output["users_with_drift"],
            "unresolved": output["unresolved"],
        },
    )
    return output
