"""The CLI's configuration, resolved once at the command-line edge from options and environment.

Pure values: must not import boto3 or read the environment itself (Typer does that at the edge).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

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

_ENDPOINT_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class NameOverrides:
    """Exact names for stacks that do not follow the name-prefix scheme; None: prefix + seed's."""

    users_table: str | None = None
    organizations_table: str | None = None
    main_queue: str | None = None
    dead_letter_queue: str | None = None
    pipe_dead_letter_queue: str | None = None

    @classmethod
    def of(cls, **names: str | None) -> NameOverrides:
        """Empty strings (an exported but empty env var) count as unset."""
        return cls(**{option: name or None for option, name in names.items()})

    @property
    def given(self) -> bool:
        return any(vars(self).values())


@dataclass(frozen=True)
class CliSettings:
    """Where the operator's commands go. `region=None` defers to the profile / boto3 defaults."""

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    name_prefix: str = ""
    names: NameOverrides = NameOverrides()
    # Whether --endpoint-url was typed on this command line (not taken from AWS_ENDPOINT_URL):
    # `bench` leaves the embedded store only when asked for in so many words.
    endpoint_url_on_command_line: bool = False

    @classmethod
    def from_options(
        cls,
        *,
        endpoint_url: str | None,
        profile: str | None,
        region: str | None,
        name_prefix: str | None,
        names: NameOverrides | None = None,
        endpoint_url_on_command_line: bool = False,
    ) -> CliSettings:
        """Normalise raw option values (empty strings from env vars count as unset)."""
        return cls(
            endpoint_url=endpoint_url or None,
            profile=profile or None,
            region=region or None,
            name_prefix=name_prefix or "",
            names=names or NameOverrides(),
            endpoint_url_on_command_line=endpoint_url_on_command_line and bool(endpoint_url),
        )

    @property
    def users_table(self) -> str:
        return self.names.users_table or f"{self.name_prefix}{USERS_TABLE}"

    @property
    def organizations_table(self) -> str:
        return self.names.organizations_table or f"{self.name_prefix}{ORGANIZATIONS_TABLE}"

    @property
    def main_queue(self) -> str:
        return self.names.main_queue or f"{self.name_prefix}{MAIN_QUEUE}"

    @property
    def dead_letter_queue(self) -> str:
        return self.names.dead_letter_queue or f"{self.name_prefix}{DEAD_LETTER_QUEUE}"

    @property
    def pipe_dead_letter_queue(self) -> str:
        return self.names.pipe_dead_letter_queue or f"{self.name_prefix}{PIPE_DEAD_LETTER_QUEUE}"

    @property
    def pipe_checkpoint_table(self) -> str:
        return PIPE_CHECKPOINT_TABLE


def endpoint_url_problem(url: str) -> str | None:
    """Why boto3 could not use `url` as an endpoint, or None (it would raise a ValueError deep
    inside client creation): an http or https scheme and a host are needed, a port is optional."""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        return "its port is not a number from 1 to 65535"
    if parts.scheme not in _ENDPOINT_SCHEMES:
        return "it needs an http:// or https:// scheme, e.g. http://127.0.0.1:4566"
    if not parts.hostname:
        return "it names no host, e.g. http://127.0.0.1:4566"
    if not port_ok:
        return "its port is not a number from 1 to 65535"
    if any(character.isspace() for character in url):
        return "it holds whitespace"
    return None
