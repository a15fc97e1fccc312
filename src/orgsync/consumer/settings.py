"""The consumer's configuration, read from the Lambda environment once, at the entry point."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orgsync.errors import OrgsyncError


class ConfigurationError(OrgsyncError):
    """Required environment variables are missing; the message names every one of them."""


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    organizations_table_name: str
    dead_letter_queue_url: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ConsumerSettings:
        required = {
            "organizations_table_name": "ORGANIZATIONS_TABLE_NAME",
            "dead_letter_queue_url": "DEAD_LETTER_QUEUE_URL",
        }
        missing = [variable for variable in required.values() if not environ.get(variable)]
        if missing:
            raise ConfigurationError("missing environment variables: " + ", ".join(missing))
        return cls(**{field: environ[variable] for field, variable in required.items()})
