"""Counters and positions a local pipe exposes to `orgsync status`; plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass
class PipeMetrics:
    """Running totals since the runner started; mutated only by the runner's thread."""

    records_read: int = 0
    filtered_out: int = 0
    sent: int = 0
    # Records that failed permanently (unresolvable target path, entry rejected as a sender fault).
    failed: int = 0
    # Entries re-sent after SendMessageBatch listed them as Failed (not sender faults).
    send_retries: int = 0
    # SendMessageBatch requests refused for size and re-sent as two halves (AUTOMATIC_BISECT).
    bisections: int = 0
    batches: int = 0
    passes: int = 0
    # Passes that ended in an error; the shard was rewound to its checkpoint.
    errors: int = 0

    def snapshot(self) -> PipeMetrics:
        return replace(self)


@dataclass(frozen=True)
class ShardPosition:
    shard_id: str
    parent_shard_id: str | None
    # Last checkpointed sequence number; None before the first checkpoint.
    sequence_number: str | None
    closed: bool
    finished: bool


@dataclass(frozen=True)
class PipeFailure:
    """A record the pipe gave up on; it is consumed (the checkpoint moves past it)."""

    shard_id: str
    sequence_number: str
    event_id: str
    reason: str
