"""rexecutor: typed, asyncio-first job execution with in-memory, SQLite and PostgreSQL backends.

Define an :class:`Executor`, enqueue jobs with its :class:`JobBuilder`, and run them with a
:class:`Rexecutor` node on a backend.
"""

from typing import TYPE_CHECKING, Any

from rexecutor import telemetry
from rexecutor.backend import Backend, EnqueueResult
from rexecutor.backoff import BackoffStrategy, Jitter
from rexecutor.builder import JobBuilder, enqueue_many
from rexecutor.control import ExecutorControl
from rexecutor.cron import CronCatchUp, CronRegistration, CronSchedule
from rexecutor.errors import (
    BackendError,
    ConfigurationError,
    GlobalBackendNotSet,
    InvalidTransition,
    JobNotFound,
    PayloadTooLarge,
    RexecutorError,
    SchemaVersionError,
    ValidationError,
)
from rexecutor.executor import Executor
from rexecutor.job import ErrorType, Job, JobError, JobId, JobProgress, JobStatus
from rexecutor.limits import RateLimit
from rexecutor.progress import report_progress
from rexecutor.pruner import Pruner, PrunerConfig
from rexecutor.query import Where
from rexecutor.result import ExecutionResult
from rexecutor.rexecutor import Rexecutor
from rexecutor.uniqueness import Replace, UniquenessCriteria
from rexecutor.workflow import Step, Workflow

if TYPE_CHECKING:
    from rexecutor.backends.memory import InMemoryBackend
    from rexecutor.backends.postgres import PostgresBackend
    from rexecutor.backends.sqlite import SqliteBackend

__all__ = [
    "Backend",
    "BackendError",
    "BackoffStrategy",
    "ConfigurationError",
    "CronCatchUp",
    "CronRegistration",
    "CronSchedule",
    "EnqueueResult",
    "ErrorType",
    "ExecutionResult",
    "Executor",
    "ExecutorControl",
    "GlobalBackendNotSet",
    "InMemoryBackend",
    "InvalidTransition",
    "Jitter",
    "Job",
    "JobBuilder",
    "JobError",
    "JobId",
    "JobNotFound",
    "JobProgress",
    "JobStatus",
    "PayloadTooLarge",
    "PostgresBackend",
    "Pruner",
    "PrunerConfig",
    "RateLimit",
    "Replace",
    "Rexecutor",
    "RexecutorError",
    "SchemaVersionError",
    "SqliteBackend",
    "Step",
    "UniquenessCriteria",
    "ValidationError",
    "Where",
    "Workflow",
    "enqueue_many",
    "report_progress",
    "telemetry",
]


def __getattr__(name: str) -> Any:
    # The backends are imported on first use, so that ``import rexecutor`` needs no database
    # driver: a SQLite user never needs psycopg installed.
    if name in ("InMemoryBackend", "SqliteBackend", "PostgresBackend"):
        from rexecutor import backends

        value = getattr(backends, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
