"""What a local pipe knows of each shard: its position, its pending batch, its lineage.

Pure values and ordering (parents before children, as Pipes reads them); no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from orgsync.local.pipes.checkpoint import Checkpoint
from orgsync.local.pipes.record import PipeRecord
from orgsync.local.pipes.settings import StartingPosition


@dataclass
class Shard:
    shard_id: str
    parent_id: str | None
    closed: bool
    # The position the target has accepted up to (in memory), and the one last written to the
    # checkpoint table, which may lag it by a checkpoint interval (runner.CHECKPOINT_INTERVAL).
    saved: Checkpoint | None = None
    persisted: Checkpoint | None = None
    finished: bool = False
    start: StartingPosition = StartingPosition.TRIM_HORIZON
    iterator: str | None = None
    # Last record read (filtered or pending included); ahead of `saved` only while a batch waits.
    read_seq: str | None = None
    # First record read from a LATEST iterator before any checkpoint: where a rewind goes back to.
    first_seq: str | None = None
    pending: list[PipeRecord] = field(default_factory=list)
    pending_since: float | None = None

    def rewind(self) -> None:
        """Forget everything past the checkpoint, so the next pass re-reads it."""
        self.iterator = None
        self.pending.clear()
        self.pending_since = None
        self.read_seq = self.saved.sequence_number if self.saved else None
        self.finished = self.saved.finished if self.saved else False


def parents_first(shards: Mapping[str, Shard]) -> list[Shard]:
    """Parents before children: by depth in the known lineage, then by id."""

    def depth(shard: Shard) -> int:
        level, parent, seen = 0, shard.parent_id, {shard.shard_id}
        while parent is not None and parent in shards and parent not in seen:
            seen.add(parent)
            level += 1
            parent = shards[parent].parent_id
        return level

    return sorted(shards.values(), key=lambda s: (depth(s), s.shard_id))


def parent_finished(shards: Mapping[str, Shard], shard: Shard) -> bool:
    # A parent DescribeStream no longer lists was trimmed: nothing of it is left to read.
    parent = shards.get(shard.parent_id) if shard.parent_id else None
    return parent is None or parent.finished
