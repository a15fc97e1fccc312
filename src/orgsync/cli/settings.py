"""The CLI's configuration, resolved once at the command-line edge from options and environment.

Pure values: must not import boto3 or read the environment itself (Typer does that at the edge).
"""

from __future__ import annotations

from dataclasses import dataclass

# The seed's resource names (docs/design.md §3); a prefix lets several stacks share one account.
USERS_TABLE = "poc-users"
ORGANIZATIONS_TABLE = "poc-organizations"
MAIN_QUEUE = "user-dynamo-stream.fifo"
DEAD_LETTER_QUEUE = "user-dynamo-stream-deadletter.fifo"
# Where the pipe puts a stream record it could not deliver (template: UserTablePipeDeadLetterQueue).
PIPE_DEAD_LETTER_QUEUE = "user-table-dynamo-pipe-dlq"
# Written by the local pipe emulation; not part of the deployed template, so never prefixed.
PIPE_CHECKPOINT_TABLE = "orgsync-local-pipe-checkpoints"

# boto3 needs some region to sign requests; emulators accept any, so pick the common default.
DEFAULT_LOCAL_REGION = "us-east-1"


@dataclass(frozen=True)
class CliSettings:
    """Where the operator's commands go. `region=None` defers to the profile / boto3 defaults."""

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    name_prefix: str = ""

    @classmethod
    def from_options(
        cls,
        *,
        endpoint_url: str | None,
        profile: str | None,
        region: str | None,
        name_prefix: str | None,
    ) -> CliSettings:
        """Normalise raw option values (empty strings from env vars count as unset)."""
        return cls(
            endpoint_url=endpoint_url or None,
            profile=profile or None,
            region=region or None,
            name_prefix=name_prefix or "",
        )

    @property
    def users_table(self) -> str:
        return f"{self.name_prefix}{USERS_TABLE}"

    @property
    def organizations_table(self) -> str:
        return f"{self.name_prefix}{ORGANIZATIONS_TABLE}"

    @property
    def main_queue(self) -> str:
        return f"{self.name_prefix}{MAIN_QUEUE}"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name_prefix}{DEAD_LETTER_QUEUE}"

    @property
    def pipe_dead_letter_queue(self) -> str:
        return f"{self.name_prefix}{PIPE_DEAD_LETTER_QUEUE}"

    @property
    def pipe_checkpoint_table(self) -> str:
        return PIPE_CHECKPOINT_TABLE
