"""Local emulation of an EventBridge Pipe: DynamoDB stream shards → filter → SQS FIFO target.

Used by the local stack only; must not import orgsync.local, orgsync.cli or orgsync.consumer.
"""

from __future__ import annotations

from orgsync.pipe.errors import (
    PipeCheckpointError,
    PipeError,
    PipeFilterError,
    PipeSettingsError,
    PipeSourceError,
    PipeTargetError,
    TargetParameterError,
)
from orgsync.pipe.filter import RecordFilter
from orgsync.pipe.metrics import PipeFailure, PipeMetrics, ShardPosition
from orgsync.pipe.record import PipeRecord, to_pipe_record
from orgsync.pipe.runner import PipeRunner
from orgsync.pipe.settings import PipeSettings, StartingPosition
from orgsync.pipe.target import SqsTarget, TargetParameter

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
