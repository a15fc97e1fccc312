"""What one local pipe does: source stream, filter, batching and SQS target parameters.

Pure values; mirrors `AWS::Pipes::Pipe` properties, validated the way CreatePipe validates them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from orgsync.local.pipes.errors import PipeSettingsError

# SendMessageBatch takes at most 10 entries, so AWS caps BatchSize at 10 for an SQS target
# (eb-pipes-batching-concurrency.html).
MAX_SQS_BATCH_SIZE = 10
MAX_BATCHING_WINDOW_SECONDS = 300.0
DEFAULT_CHECKPOINT_TABLE = "orgsync-local-pipe-checkpoints"


class StartingPosition(StrEnum):
    TRIM_HORIZON = "TRIM_HORIZON"
    LATEST = "LATEST"


@dataclass(frozen=True)
class PipeSettings:
    name: str
    stream_arn: str
    target_queue_url: str
    batch_size: int = 10
    starting_position: str = StartingPosition.TRIM_HORIZON
    maximum_batching_window_seconds: float = 0.0
    # EventBridge pattern JSON strings, as in FilterCriteria.Filters[].Pattern; several = OR.
    filter_patterns: tuple[str, ...] = ()
    # A JSON path ("$.dynamodb.Keys.pk.S": the whole value is the path) or a literal.
    message_group_id: str | None = None
    message_deduplication_id: str | None = None
    checkpoint_table: str = DEFAULT_CHECKPOINT_TABLE
    # Standard SQS queue for records that fail permanently (DeadLetterConfig); None = log only.
    dead_letter_queue_url: str | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.name:
            problems.append("name is empty")
        if not self.stream_arn:
            problems.append("stream_arn is empty")
        if not self.target_queue_url:
            problems.append("target_queue_url is empty")
        if not 1 <= self.batch_size <= MAX_SQS_BATCH_SIZE:
            problems.append(
                f"batch_size {self.batch_size} is outside 1..{MAX_SQS_BATCH_SIZE} (SQS target)"
            )
        if self.starting_position not in StartingPosition.__members__:
            problems.append(
                f"starting_position {self.starting_position!r} is not TRIM_HORIZON|LATEST"
            )
        if not 0 <= self.maximum_batching_window_seconds <= MAX_BATCHING_WINDOW_SECONDS:
            problems.append(
                f"maximum_batching_window_seconds {self.maximum_batching_window_seconds} "
                f"is outside 0..{MAX_BATCHING_WINDOW_SECONDS:g}"
            )
        if problems:
            raise PipeSettingsError(f"pipe {self.name!r}: " + "; ".join(problems))

    @property
    def region(self) -> str:
        """The stream's region, for records whose source omitted awsRegion."""
        parts = self.stream_arn.split(":")
        return parts[3] if len(parts) > 3 else ""
