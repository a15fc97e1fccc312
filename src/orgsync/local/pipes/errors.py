"""Errors of the local Pipe emulation; AWS errors are translated into these at the boundary.

Depends only on `orgsync.errors`.
"""

from __future__ import annotations

from orgsync.errors import OrgsyncError


class PipeError(OrgsyncError):
    """The pipe could not make progress; the run loop retries from the last checkpoint."""


class PipeSettingsError(PipeError):
    """Settings AWS would refuse when creating the pipe (batch size, starting position, filters)."""


class PipeFilterError(PipeSettingsError):
    """A FilterCriteria pattern is not valid EventBridge pattern JSON."""


class TargetParameterError(PipeError):
    """A record's MessageGroupId/MessageDeduplicationId path resolved to nothing usable."""


class PipeSourceError(PipeError):
    """Reading the stream failed (DescribeStream, GetShardIterator or GetRecords)."""


class PipeTargetError(PipeError):
    """SendMessageBatch failed or kept failing entries past our retries."""


class PipeCheckpointError(PipeError):
    """The checkpoint table could not be created, read or written."""
