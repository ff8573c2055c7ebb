"""Exceptions raised by rexecutor; every one derives from :class:`RexecutorError`."""

from __future__ import annotations

__all__ = [
    "BackendError",
    "ConfigurationError",
    "GlobalBackendNotSet",
    "InvalidTransition",
    "JobNotFound",
    "PayloadTooLarge",
    "RexecutorError",
    "SchemaVersionError",
    "ValidationError",
]


class RexecutorError(Exception):
    """Base class of every error this library raises."""


class GlobalBackendNotSet(RexecutorError):
    """An API that uses the global backend was called before one was set."""

    def __init__(self) -> None:
        super().__init__(
            "no global backend is set: call Rexecutor(backend).set_global_backend() first, "
            "or use the *_on_backend / enqueue_to_backend variant with an explicit backend"
        )


class JobNotFound(RexecutorError):
    """No job with the given id exists on the backend."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {int(job_id)} not found")
        self.job_id = int(job_id)


class InvalidTransition(RexecutorError):
    """The job's current status does not allow the requested operation."""


class ValidationError(RexecutorError):
    """Job data or metadata does not match the executor's declared types, or is not JSON."""


class PayloadTooLarge(ValidationError):
    """The encoded data and metadata of a job exceed the backend's size limit."""


class ConfigurationError(RexecutorError):
    """A setting is invalid: a cron expression, a timezone, an executor, a pruner, a URL."""


class BackendError(RexecutorError):
    """The backend failed: the database is unreachable, refused the request, or is corrupt."""


class SchemaVersionError(BackendError):
    """The database schema is newer than this version of the library understands."""
