"""What an embedded stack is started with: plain values, read at the caller's edge.

A module of its own so that the pytest plugin and `local.remote` can build options without
importing the stack (servers, pipes, moto) into a process that never runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from orgsync.local.chaos import ChaosSpec
    from orgsync.local.lambda_.runtime import Handler

__all__ = ["StackOptions"]


@dataclass(frozen=True)
class StackOptions:
    template_path: Path
    port: int = 4566  # 0: any free port
    store: Literal["moto", "dynamodb-local"] = "moto"
    state_dir: Path | None = None  # DynamoDB Local keeps tables here; moto keeps nothing
    endpoint_url: str | None = None  # use this endpoint instead of starting a store
    parameters: Mapping[str, str] = field(default_factory=dict)
    maximum_concurrency: int | None = None  # None: the template's ScalingConfig
    region: str = "us-east-1"
    run_pipeline: bool = True  # False: resources only, no pipe and no poller
    dynamodb_local_dir: Path | None = None  # ORGSYNC_DYNAMODB_LOCAL_DIR, read by the caller
    handler: Handler | None = None  # None: the Handler the template names
    emit_metrics: bool = False  # Powertools EMF lines on stdout
    pipe_poll_interval: float = 0.25  # Pipes poll each shard about four times a second
    # A write the store accepts to a pipe's table starts the pipe's next pass at once (the test
    # fixture, `local up --fast`): a write reaches the consumer in milliseconds, not a poll
    # interval later. False: the pipe keeps Pipes' own pace. Only with an embedded store.
    wake_pipes_on_writes: bool = False
    chaos: ChaosSpec | None = None  # fault injection (orgsync.local.chaos); None: no proxy either
    # Local only: the consumed queues' VisibilityTimeout, so that unacknowledged messages come
    # back in seconds (chaos, crash tests). The template's 180 s is what deploys.
    visibility_timeout_seconds: int | None = None
