"""Dead-letter queue inspection, redrive, stale discard and purge for operators.

`messages` reads the DLQ without consuming it (list, count); `redriving` moves its messages back to
the main queue; `discard` deletes what the fence makes obsolete, or purges the queue. `_sqs` holds
the SQS calls they share. Talks to SQS (and, to read the fence, DynamoDB) through injected
clients; must not depend on the CLI or the local stack. Every name is re-exported here, so callers
use `from orgsync.ops import dlq` without knowing the modules.
"""

from __future__ import annotations

from orgsync.ops.dlq.discard import (
    DiscardedMessage,
    DiscardError,
    DiscardResult,
    PurgeError,
    discard_stale,
    purge,
)
from orgsync.ops.dlq.messages import (
    MAX_RECEIVES_EXCEEDED,
    DlqMessage,
    count_messages,
    describe_message,
    peek_messages,
)
from orgsync.ops.dlq.redriving import (
    RedriveError,
    RedriveMethod,
    RedriveResult,
    copy_messages,
    redrive,
    redrive_deduplication_id,
    start_move_task,
)

__all__ = [
    "MAX_RECEIVES_EXCEEDED",
    "DiscardError",
    "DiscardResult",
    "DiscardedMessage",
    "DlqMessage",
    "PurgeError",
    "RedriveError",
    "RedriveMethod",
    "RedriveResult",
    "copy_messages",
    "count_messages",
    "describe_message",
    "discard_stale",
    "peek_messages",
    "purge",
    "redrive",
    "redrive_deduplication_id",
    "start_move_task",
]
