"""The job model: :class:`Job`, :class:`JobId`, :class:`JobStatus` and :class:`JobError`.

Pure data: nothing here does I/O.
"""

from __future__ import annotations

import enum
import operator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

__all__ = ["ErrorType", "Job", "JobError", "JobId", "JobProgress", "JobStatus"]

D = TypeVar("D")
M = TypeVar("M")


class JobId(int):
    """The identifier of a stored job: an ``int`` that prints as ``JobId(42)``.

    Example:
        >>> JobId(42)
        JobId(42)
        >>> JobId(42) == 42
        True
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"JobId({int(self)})"


class JobStatus(enum.StrEnum):
    """Where a job is in its life.

    ``SCHEDULED`` (waiting for its first attempt), ``EXECUTING`` (claimed by a node),
    ``RETRYABLE`` (attempted, waiting for another attempt), and the terminal ``COMPLETE``,
    ``CANCELLED`` and ``DISCARDED`` (out of attempts). ``JobStatus.ALL`` lists all six.
    """

    SCHEDULED = "scheduled"
    EXECUTING = "executing"
    RETRYABLE = "retryable"
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    DISCARDED = "discarded"

    ALL: ClassVar[tuple[JobStatus, ...]]
    TERMINAL: ClassVar[frozenset[JobStatus]]
    READY: ClassVar[frozenset[JobStatus]]

    @property
    def is_terminal(self) -> bool:
        """Whether no further transition happens without a rerun."""
        return self in JobStatus.TERMINAL


JobStatus.ALL = tuple(JobStatus)
JobStatus.TERMINAL = frozenset({JobStatus.COMPLETE, JobStatus.CANCELLED, JobStatus.DISCARDED})
JobStatus.READY = frozenset({JobStatus.SCHEDULED, JobStatus.RETRYABLE})


class ErrorType(enum.StrEnum):
    """Why an attempt failed, as recorded in :class:`JobError`.

    ``EXCEPTION``: ``execute`` raised (the seed's *panic*). ``TIMEOUT``: the attempt outran
    ``timeout``. ``CANCELLED``: the job was cancelled (by its result or from outside).
    ``USER``: ``execute`` returned ``ExecutionResult.Error``; :attr:`JobError.name` holds the
    user's error type. ``INVALID_DATA``: the stored data no longer validates. ``ORPHANED``: the
    node running the job died. ``SHUTDOWN``: the node stopped before the attempt finished and
    handed the job back.
    """

    EXCEPTION = "exception"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    USER = "user"
    INVALID_DATA = "invalid_data"
    ORPHANED = "orphaned"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True, slots=True)
class JobError:
    """One failed attempt, appended to :attr:`Job.errors` and never cleared.

    Attributes:
        attempt: the job's attempt number when the error was recorded.
        error_type: the kind of failure.
        details: a human-readable description (the exception text, the reason, ...).
        recorded_at: when it was recorded (UTC).
        name: the exception class or user-defined error type, when there is one.
        traceback: the formatted traceback of a raised exception.
    """

    attempt: int
    error_type: ErrorType
    details: str
    recorded_at: datetime
    name: str | None = None
    traceback: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Encode for storage."""
        return {
            "attempt": self.attempt,
            "type": self.error_type.value,
            "details": self.details,
            "at": self.recorded_at.isoformat(),
            "name": self.name,
            "traceback": self.traceback,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> JobError:
        """Decode a stored error."""
        return cls(
            attempt=int(value["attempt"]),
            error_type=ErrorType(value["type"]),
            details=str(value["details"]),
            recorded_at=datetime.fromisoformat(value["at"]),
            name=value.get("name"),
            traceback=value.get("traceback"),
        )


@dataclass(frozen=True, slots=True)
class JobProgress:
    """How far a running job says it is: ``percent`` (0 to 100), an optional ``message``,
    and when it was reported (UTC)."""

    percent: float
    message: str | None
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {"percent": self.percent, "message": self.message, "at": self.updated_at.isoformat()}

    @classmethod
    def from_json(cls, value: Any) -> JobProgress | None:
        """Read the stored form; a value rexecutor could not have written reads as None."""
        try:
            at = datetime.fromisoformat(value["at"])
            message = value.get("message")
            return cls(
                float(value["percent"]),
                None if message is None else str(message),
                at if at.tzinfo is not None else at.replace(tzinfo=UTC),
            )
        except (TypeError, KeyError, ValueError, AttributeError, OverflowError):
            return None


@dataclass(slots=True)
class Job(Generic[D, M]):
    """A stored job, with its data and metadata typed as the executor declares.

    Mutable: change ``data``, ``metadata``, ``max_attempts``, ``priority``, ``tags`` or
    ``scheduled_at`` and pass it to ``Executor.update_job`` to write them back.
    ``partition_key`` is the key given with ``JobBuilder.with_partition_key`` (None: none).
    ``result`` is what the job's ``ExecutionResult.Done(result)`` stored (decoded through the
    executor's ``result_type`` when read through the executor; None: none). ``progress`` is
    the last :class:`JobProgress` its attempt reported. ``workflow_id`` and ``workflow_step``
    place it in a :class:`~rexecutor.Workflow`; ``blocked`` is True while a dependency of it
    has not finished (it stays scheduled and is not claimed).
    Backends hand out ``Job[Any, Any]`` whose data is plain JSON; the executor validates it.
    """

    id: JobId
    status: JobStatus
    executor: str
    data: D
    metadata: M | None
    attempt: int
    max_attempts: int
    priority: int
    tags: list[str]
    errors: list[JobError]
    inserted_at: datetime
    scheduled_at: datetime
    attempted_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    discarded_at: datetime | None = None
    attempted_by: str | None = field(default=None, repr=False)
    partition_key: str | None = None
    result: Any = None
    progress: JobProgress | None = None
    workflow_id: str | None = None
    workflow_step: str | None = None
    blocked: bool = False
    has_dependents: bool = field(default=False, repr=False)

    @property
    def finished_at(self) -> datetime | None:
        """When the job reached its terminal status, if it has."""
        return self.completed_at or self.cancelled_at or self.discarded_at

    @property
    def is_final_attempt(self) -> bool:
        """Whether a failure of the current attempt discards the job."""
        return self.attempt >= self.max_attempts


#: Job's fields in the order of its constructor (every field is an init argument).
_JOB_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Job))
_job_values = operator.attrgetter(*_JOB_FIELDS)
_DATA, _METADATA, _RESULT = (_JOB_FIELDS.index(n) for n in ("data", "metadata", "result"))


def with_payload(job: Job[Any, Any], data: Any, metadata: Any, result: Any) -> Job[Any, Any]:
    """A copy of ``job`` with other data, metadata and result: what
    ``dataclasses.replace(job, data=..., metadata=..., result=...)`` gives, several times
    faster (one per job run)."""
    values = list(_job_values(job))
    values[_DATA], values[_METADATA], values[_RESULT] = data, metadata, result
    return Job(*values)
