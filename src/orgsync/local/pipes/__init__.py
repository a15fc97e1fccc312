"""Local emulation of an EventBridge Pipe: DynamoDB stream shards → filter → SQS FIFO target.

Used by the local stack only; must not import orgsync.local, orgsync.cli or orgsync.consumer.
"""

from __future__ import annotations

from orgsync.local.pipes.errors import (
    PipeCheckpointError,
    PipeError,
    PipeFilterError,
    PipeSettingsError,
    PipeSourceError,
    PipeTargetError,
    TargetParameterError,
)
from orgsync.local.pipes.filter import RecordFilter
from orgsync.local.pipes.metrics import PipeFailure, PipeMetrics, ShardPosition
from orgsync.local.pipes.record import PipeRecord, to_pipe_record
from orgsync.local.pipes.runner import PipeRunner
from orgsync.local.pipes.settings import PipeSettings, StartingPosition
from orgsync.local.pipes.target import SqsTarget, TargetParameter

__all__ = [
    "PipeCheckpointError",
    "PipeError",
    "PipeFailure",
    "PipeFilterError",
    "PipeMetrics",
    "PipeRecord",
    "PipeRunner",
    "PipeSettings",
    "PipeSettingsError",
    "PipeSourceError",
    "PipeTargetError",
    "RecordFilter",
    "ShardPosition",
    "SqsTarget",
    "StartingPosition",
    "TargetParameter",
    "TargetParameterError",
    "to_pipe_record",
]
