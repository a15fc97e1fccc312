"""Errors of the embedded local stack (template model, emulator processes, resources, drain).

Nothing here is raised on the Lambda import path: only `orgsync.local` and its callers see these.
"""

from __future__ import annotations

from orgsync.errors import OrgsyncError


class LocalStackError(OrgsyncError):
    """The local stack could not do what was asked of it."""


class TemplateError(LocalStackError):
    """template.yaml could not be read or an intrinsic function could not be resolved locally."""


class EmulatorStartError(LocalStackError):
    """An emulator process or server did not come up (port taken, Java missing, crash at start)."""


class DynamoDBLocalNotFoundError(EmulatorStartError):
    """Java or DynamoDB Local's jar is missing (`orgsync local install-dynamodb-local` gets it)."""


class ResourceCreationError(LocalStackError):
    """A table or queue the template declares could not be created on the endpoint."""


class HandlerImportError(LocalStackError):
    """The function's Handler (module.function) could not be imported."""


class DrainTimeoutError(LocalStackError):
    """The pipeline did not become quiet in time; the message says what is still pending."""

    def __init__(self, message: str, pending: tuple[str, ...]) -> None:
        super().__init__(message)
        self.pending = pending
