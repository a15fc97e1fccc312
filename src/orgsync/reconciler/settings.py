"""The reconcile function's configuration, read from the Lambda environment once, at the entry
point (template.yaml sets every variable; a missing one is a deployment error, named at once)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orgsync.errors import OrgsyncError
from orgsync.ops.reconcile import Tables


class ConfigurationError(OrgsyncError):
    """Required environment variables are missing; the message names every one of them."""


@dataclass(frozen=True, slots=True)
class ReconcilerSettings:
    users_table_name: str
    organizations_table_name: str
    results_bucket_name: str

    @property
    def tables(self) -> Tables:
        return Tables(users=self.users_table_name, organizations=self.organizations_table_name)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ReconcilerSettings:
        required = {
            "users_table_name": "USERS_TABLE_NAME",
            "organizations_table_name": "ORGANIZATIONS_TABLE_NAME",
            "results_bucket_name": "RESULTS_BUCKET_NAME",
        }
        missing = [variable for variable in required.values() if not environ.get(variable)]
        if missing:
            raise ConfigurationError("missing environment variables: " + ", ".join(missing))
        return cls(**{field: environ[variable] for field, variable in required.items()})
