"""rexecutor: typed, asyncio-first job execution with in-memory, SQLite and PostgreSQL backends.

Define an :class:`Executor`, enqueue jobs with its :class:`JobBuilder`, and run them with a
:class:`Rexecutor` node on a backend.
"""

from rexecutor import telemetry
from rexecutor.backend import Backend, EnqueueResult
from rexecutor.backoff import BackoffStrategy, Jitter
from rexecutor.builder import JobBuilder, enqueue_many
from rexecutor.cron import CronSchedule
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
from rexecutor.job import ErrorType, Job, JobError, JobId, JobStatus
from rexecutor.pruner import Pruner, PrunerConfig
from rexecutor.query import Where
from rexecutor.result import ExecutionResult
from rexecutor.rexecutor import Rexecutor
from rexecutor.uniqueness import Replace, UniquenessCriteria

__all__ = [
    "Backend",
    "BackendError",
    "BackoffStrategy",
    "ConfigurationError",
    "CronSchedule",
    "EnqueueResult",
    "ErrorType",
    "ExecutionResult",
    "Executor",
    "GlobalBackendNotSet",
    "InvalidTransition",
    "Jitter",
    "Job",
    "JobBuilder",
    "JobError",
    "JobId",
    "JobNotFound",
    "JobStatus",
    "PayloadTooLarge",
    "Pruner",
    "PrunerConfig",
    "Replace",
    "Rexecutor",
    "RexecutorError",
    "SchemaVersionError",
    "UniquenessCriteria",
    "ValidationError",
    "Where",
    "enqueue_many",
    "telemetry",
]
