"""Lambda entry point named by template.yaml: build once (cached), then delegate.

The local poller imports and calls this very function with the event Lambda would send.
"""

from __future__ import annotations

import os
import threading
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from orgsync.consumer.batch import BatchConsumer, BatchReport
from orgsync.consumer.dead_letter import DeadLetterForwarder
from orgsync.consumer.settings import ConsumerSettings
from orgsync.store.replication import DynamoReplicationStore

logger = Logger(service="orgsync")
metrics = Metrics(namespace="orgsync", service="orgsync")
# Lambda runs one invocation per execution environment at a time; the local poller runs
# several in threads of one process, and Powertools keeps metrics in shared state.
_metrics_lock = threading.Lock()

_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=2,
    read_timeout=10,
    max_pool_connections=20,
)


@cache
def _consumer() -> BatchConsumer:
    settings = ConsumerSettings.from_environment(os.environ)
    copy_config_to_registered_loggers(source_logger=logger, include={"orgsync"})
    session = boto3.session.Session()
    dynamodb = session.client("dynamodb", config=_CLIENT_CONFIG)
    sqs = session.client("sqs", config=_CLIENT_CONFIG)
    return BatchConsumer(
        DynamoReplicationStore(dynamodb, settings.organizations_table_name),
        DeadLetterForwarder(sqs, settings.dead_letter_queue_url),
    )


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response, report = _consumer().handle(event, context)
    _publish(report)
    return dict(response)


def _publish(report: BatchReport) -> None:
    with _metrics_lock:
        for name, count in report.counters.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
        for lag in report.lags_ms:
            metrics.add_metric(name="ReplicationLag", unit=MetricUnit.Milliseconds, value=lag)
        metrics.flush_metrics()
        # flush_metrics keeps the set when metrics are disabled (as locally): drop it anyway.
        metrics.clear_metrics()
