"""Set-up shared by the backend conformance suite.

Everything here goes through the public protocol of :class:`rexecutor.backend.Backend`, so the
helpers work unchanged on every backend. Times are compared with a generous slack, because the
SQL backends take "now" from the database clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from rexecutor import admin, lifecycle
from rexecutor.backend import Backend, EnqueuableJob, FailureRecord, Lease
from rexecutor.job import ErrorType, Job, JobId, JobStatus
from rexecutor.lifecycle import Fence, Transition
from rexecutor.query import QueryNode, Where

#: How far a backend's "now" may be from the test's own clock readings around the call.
SLACK = timedelta(seconds=2)

#: A typical failure, with every optional field filled in.
FAILURE = FailureRecord(
    ErrorType.EXCEPTION,
    "boom: it's 100% broken",
    name="ValueError",
    traceback='Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom',
)

#: What a runner records when a job is cancelled.
CANCEL = FailureRecord(ErrorType.CANCELLED, "no longer needed")

FAR_FUTURE = timedelta(hours=1)


def utcnow() -> datetime:
    """The test's own clock, aware UTC."""
    return datetime.now(UTC)


def new_job(executor: str = "ex", data: Any = None, **fields: Any) -> EnqueuableJob:
    """An enqueuable job with data ``{}`` unless given."""
    return EnqueuableJob(executor, {} if data is None else data, **fields)


async def enqueue(backend: Backend, executor: str = "ex", data: Any = None, **fields: Any) -> JobId:
    """Enqueue one job and return its id."""
    result = await backend.enqueue(new_job(executor, data, **fields))
    return result.job_id


async def claim_one(
    backend: Backend, executor: str = "ex", node: str = "node-1"
) -> tuple[Job[Any, Any], Lease]:
    """Claim exactly one job of ``executor``; return it and the lease that fences its writes."""
    claimed = await backend.claim_ready_jobs(executor, 1, node)
    assert len(claimed) == 1, f"expected one ready job of {executor!r}, got {claimed!r}"
    job = claimed[0]
    return job, Lease(node, job.attempt)


async def executing(
    backend: Backend, executor: str = "ex", node: str = "node-1", **fields: Any
) -> tuple[Job[Any, Any], Lease]:
    """Enqueue a due job of ``executor`` (which must have no other ready job) and claim it."""
    job_id = await enqueue(backend, executor, **fields)
    job, lease = await claim_one(backend, executor, node)
    assert job.id == job_id
    return job, lease


async def retryable(
    backend: Backend,
    executor: str = "ex",
    node: str = "node-1",
    delay: timedelta = timedelta(0),
    **fields: Any,
) -> JobId:
    """A job that failed its first attempt and waits ``delay`` for the next."""
    job, lease = await executing(backend, executor, node, **fields)
    assert await mark_retryable(backend, job.id, lease, delay, FAILURE)
    return job.id


async def finished(
    backend: Backend, status: JobStatus, executor: str = "ex", **fields: Any
) -> JobId:
    """A job that ran once and ended in the terminal ``status`` just now."""
    job, lease = await executing(backend, executor, **fields)
    if status is JobStatus.COMPLETE:
        assert await mark_complete(backend, job.id, lease)
    elif status is JobStatus.DISCARDED:
        assert await mark_discarded(backend, job.id, lease, FAILURE)
    elif status is JobStatus.CANCELLED:
        assert await mark_cancelled(backend, job.id, lease, CANCEL)
    else:
        raise AssertionError(f"{status} is not terminal")
    return job.id


async def find(backend: Backend, where: Where[Any, Any] | QueryNode, **options: Any) -> list[int]:
    """The ids of the jobs matching ``where``, in the order the backend returns them."""
    node = where.node if isinstance(where, Where) else where
    return [int(job.id) for job in await backend.query(node, **options)]


def ids(jobs: Iterable[Job[Any, Any]]) -> list[int]:
    """The ids of ``jobs`` as plain ints, in order."""
    return [int(job.id) for job in jobs]


def assert_utc(moment: datetime | None) -> None:
    """``moment`` is set, timezone-aware and in UTC."""
    assert moment is not None
    assert moment.tzinfo is not None, f"{moment!r} is naive"
    assert moment.utcoffset() == timedelta(0), f"{moment!r} is not in UTC"


def assert_between(
    moment: datetime | None, low: datetime, high: datetime, slack: timedelta = SLACK
) -> None:
    """``moment`` is aware UTC and lies in [low, high], give or take ``slack``."""
    assert_utc(moment)
    assert moment is not None
    assert low - slack <= moment <= high + slack, f"{moment} not within [{low}, {high}]"


# -- transitions, as the runner and the admin operations store them ------------------------------
# Each write goes through the one backend primitive, apply_transition, with the transition the
# lifecycle decides (or, for retryable and discarded, the one a test wants to store as it is).


async def mark_complete(backend: Backend, job_id: int, lease: Lease) -> bool:
    """Executing → complete, fenced by ``lease``."""
    return await backend.apply_transition(job_id, Fence.held(lease), lifecycle.completed())


async def mark_retryable(
    backend: Backend, job_id: int, lease: Lease, delay: timedelta, error: FailureRecord
) -> bool:
    """Executing → retryable at now + ``delay``, appending ``error``; fenced."""
    transition = Transition(JobStatus.RETRYABLE, run_in=delay, error=error)
    return await backend.apply_transition(job_id, Fence.held(lease), transition)


async def mark_discarded(backend: Backend, job_id: int, lease: Lease, error: FailureRecord) -> bool:
    """Executing → discarded, appending ``error``; fenced."""
    transition = Transition(JobStatus.DISCARDED, error=error)
    return await backend.apply_transition(job_id, Fence.held(lease), transition)


async def mark_snoozed(
    backend: Backend,
    job_id: int,
    lease: Lease,
    delay: timedelta,
    error: FailureRecord | None = None,
) -> bool:
    """A snooze (the attempt given back), as the runner stores it; fenced."""
    transition = lifecycle.snoozed(lease.attempt, delay, error)
    return await backend.apply_transition(job_id, Fence.held(lease), transition)


async def mark_cancelled(
    backend: Backend, job_id: int, lease: Lease | None, error: FailureRecord
) -> bool:
    """With a lease, the job's own cancel (fenced); without, an external cancel (admin)."""
    if lease is None:
        return await admin.cancel(backend, job_id, error.details)
    return await backend.apply_transition(job_id, Fence.held(lease), lifecycle.cancelled(error))


async def rerun(backend: Backend, job_id: int) -> None:
    """Run a job again now (admin)."""
    await admin.rerun(backend, job_id)


async def rescue(backend: Backend, dead_after: timedelta) -> list[JobId]:
    """Hand back dead nodes' jobs (admin)."""
    return await admin.rescue_orphans(backend, dead_after)
