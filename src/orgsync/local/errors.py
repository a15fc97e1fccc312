"""Errors of the embedded local stack (template model, emulator processes, resources, drain).

Nothing here is raised on the Lambda import path: only `orgsync.local` and its callers see these.
"""

from __future__ import annotations

from orgsync.errors import OrgsyncError


class EmbeddedStackError(OrgsyncError):
    """The local stack could not do what was asked of it."""


class TemplateError(EmbeddedStackError):
    """template.yaml could not be read or an intrinsic function could not be resolved locally."""


class EmulatorStartError(EmbeddedStackError):
    """An emulator process or server did not come up (port taken, Java missing, crash at start)."""


class DynamoDBLocalNotFoundError(EmulatorStartError):
    """Java or DynamoDB Local's jar is missing (`orgsync local install-dynamodb-local` gets it)."""


class ResourceCreationError(EmbeddedStackError):
    """A table or queue the template declares could not be created on the endpoint."""


class HandlerImportError(EmbeddedStackError):
    """The function's Handler (module.function) could not be imported."""


class DrainTimeoutError(EmbeddedStackError):
    """The pipeline did not become quiet in time; the message says what is still pending."""

    def __init__(self, message: str, pending: tuple[str, ...]) -> None:
        super().__init__(message)
        self.pending = pending

    def __reduce__(self) -> tuple[type[DrainTimeoutError], tuple[str, tuple[str, ...]]]:
        # Raised in the fixture's stack process, re-raised in the test's (local.remote).
        return type(self), (str(self), self.pending)
