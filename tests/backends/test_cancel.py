"""Conformance: an external cancel (no lease) stops any unfinished job, and wins over the
late result of the node that was running it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rexecutor.backend import Backend, Lease
from rexecutor.errors import JobNotFound
from rexecutor.job import ErrorType, JobStatus

from ._helpers import (
    CANCEL,
    FAILURE,
    FAR_FUTURE,
    assert_between,
    enqueue,
    executing,
    finished,
    mark_cancelled,
    mark_complete,
    mark_discarded,
    mark_retryable,
    mark_snoozed,
    retryable,
    utcnow,
)


async def test_cancel_of_a_scheduled_job(backend: Backend) -> None:
    job_id = await enqueue(backend, scheduled_at=utcnow() + FAR_FUTURE)
    before = utcnow()
    assert await mark_cancelled(backend, job_id, None, CANCEL) is True
    after = utcnow()
    stored = await backend.get_job(job_id)
    assert stored.status is JobStatus.CANCELLED
    assert stored.attempt == 0
    assert_between(stored.cancelled_at, before, after)
    [error] = stored.errors
    assert error.attempt == 0
    assert error.error_type is ErrorType.CANCELLED
    assert error.details == "no longer needed"
    assert_between(error.recorded_at, before, after)


async def test_cancel_of_a_retryable_job(backend: Backend) -> None:
    job_id = await retryable(backend, delay=FAR_FUTURE)
    assert await mark_cancelled(backend, job_id, None, CANCEL) is True
    stored = await backend.get_job(job_id)
    assert stored.status is JobStatus.CANCELLED
    assert stored.attempt == 1
    assert [e.error_type for e in stored.errors] == [ErrorType.EXCEPTION, ErrorType.CANCELLED]
    assert stored.errors[1].attempt == 1


async def test_cancel_of_an_executing_job(backend: Backend) -> None:
    job, _ = await executing(backend)
    assert await mark_cancelled(backend, job.id, None, CANCEL) is True
    stored = await backend.get_job(job.id)
    assert stored.status is JobStatus.CANCELLED
    assert stored.cancelled_at is not None
    assert stored.errors[-1].attempt == 1


async def test_cancelled_jobs_are_not_claimed(backend: Backend) -> None:
    job_id = await enqueue(backend)
    assert await mark_cancelled(backend, job_id, None, CANCEL)
    assert await backend.claim_ready_jobs("ex", 10, "node-1") == []


@pytest.mark.parametrize("status", [JobStatus.COMPLETE, JobStatus.CANCELLED, JobStatus.DISCARDED])
async def test_cancel_of_a_finished_job_returns_false_and_changes_nothing(
    backend: Backend, status: JobStatus
) -> None:
    job_id = await finished(backend, status)
    before = await backend.get_job(job_id)
    assert await mark_cancelled(backend, job_id, None, CANCEL) is False
    assert await backend.get_job(job_id) == before


async def test_cancel_wins_over_the_running_nodes_late_result(backend: Backend) -> None:
    job, lease = await executing(backend)
    assert await mark_cancelled(backend, job.id, None, CANCEL)
    cancelled = await backend.get_job(job.id)

    assert await mark_complete(backend, job.id, lease) is False
    assert await backend.complete_jobs([(job.id, lease)]) == [False]
    assert await mark_retryable(backend, job.id, lease, timedelta(0), FAILURE) is False
    assert await mark_discarded(backend, job.id, lease, FAILURE) is False
    assert await mark_snoozed(backend, job.id, lease, timedelta(0)) is False
    assert await mark_cancelled(backend, job.id, lease, CANCEL) is False
    assert await backend.get_job(job.id) == cancelled


async def test_cancel_of_an_unknown_job_raises_job_not_found(backend: Backend) -> None:
    await enqueue(backend)
    with pytest.raises(JobNotFound):
        await mark_cancelled(backend, 987654, None, CANCEL)


async def test_cancel_with_a_stale_lease_changes_nothing(backend: Backend) -> None:
    job, lease = await executing(backend)
    before = await backend.get_job(job.id)
    stale = Lease(lease.node_id, lease.attempt + 1)
    assert await mark_cancelled(backend, job.id, stale, CANCEL) is False
    assert await backend.get_job(job.id) == before
