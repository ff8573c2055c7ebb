"""Conformance: ``record_progress``, the fenced write of a running job's progress.

It stores ``JobProgress.to_json()`` while the job is executing under the lease, replacing the
value before; with a stale lease it returns False and stores nothing; an unknown id raises
``JobNotFound``. Nothing else about the job changes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rexecutor.backend import Backend, Lease
from rexecutor.errors import JobNotFound
from rexecutor.job import JobProgress, JobStatus
from rexecutor.testing import FakeClock

from ._helpers import FAILURE, claim_one, enqueue, mark_complete, mark_retryable

AT = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


async def test_progress_is_stored_and_replaced_under_the_lease(backend: Backend) -> None:
    job_id = await enqueue(backend)
    job, lease = await claim_one(backend)
    assert job.progress is None
    first = JobProgress(12.5, "page 1 of 8", AT)
    assert await backend.record_progress(job_id, lease, first) is True
    assert (await backend.get_job(job_id)).progress == first
    second = JobProgress(100, None, AT.replace(second=10))
    assert await backend.record_progress(job_id, lease, second) is True
    stored = await backend.get_job(job_id)
    assert stored.progress == JobProgress(100.0, None, AT.replace(second=10))
    assert stored.status is JobStatus.EXECUTING
    assert stored.attempt == job.attempt


async def test_texts_of_every_kind_come_back_as_written(backend: Backend) -> None:
    job_id = await enqueue(backend)
    _, lease = await claim_one(backend)
    progress = JobProgress(0.0, "naïve 日本 🎉 'quoted' \"double\" \\ back", AT)
    assert await backend.record_progress(job_id, lease, progress)
    assert (await backend.get_job(job_id)).progress == progress


async def test_a_stale_lease_stores_nothing(backend: Backend) -> None:
    job_id = await enqueue(backend)
    _, lease = await claim_one(backend)
    kept = JobProgress(40, "kept", AT)
    assert await backend.record_progress(job_id, lease, kept)
    for stale in (Lease("other-node", lease.attempt), Lease(lease.node_id, lease.attempt + 1)):
        assert await backend.record_progress(job_id, stale, JobProgress(90, "no", AT)) is False
    assert (await backend.get_job(job_id)).progress == kept


async def test_a_finished_job_takes_no_more_progress(backend: Backend) -> None:
    job_id = await enqueue(backend)
    _, lease = await claim_one(backend)
    last = JobProgress(99, "almost", AT)
    assert await backend.record_progress(job_id, lease, last)
    assert await mark_complete(backend, job_id, lease)
    assert await backend.record_progress(job_id, lease, JobProgress(100, "late", AT)) is False
    done = await backend.get_job(job_id)
    assert done.status is JobStatus.COMPLETE
    assert done.progress == last  # the last report of the attempt stays readable


async def test_a_job_that_is_not_executing_takes_none(backend: Backend) -> None:
    job_id = await enqueue(backend)
    assert await backend.record_progress(job_id, Lease("n", 0), JobProgress(1, None, AT)) is False
    assert (await backend.get_job(job_id)).progress is None


async def test_an_unknown_job_is_not_found(backend: Backend) -> None:
    with pytest.raises(JobNotFound):
        await backend.record_progress(987654, Lease("n", 1), JobProgress(1, None, AT))
    with pytest.raises(JobNotFound):
        await backend.record_progress(2**70, Lease("n", 1), JobProgress(1, None, AT))


async def test_the_next_attempt_replaces_the_earlier_attempts_progress(
    backend: Backend, clock: FakeClock
) -> None:
    job_id = await enqueue(backend, max_attempts=3)
    _, lease = await claim_one(backend)
    assert await backend.record_progress(job_id, lease, JobProgress(70, "first", clock.now()))
    assert await mark_retryable(backend, job_id, lease, timedelta(0), FAILURE)
    clock.advance(seconds=5)
    again, lease2 = await claim_one(backend)
    assert again.attempt == 2
    assert again.progress is not None and again.progress.message == "first"
    assert await backend.record_progress(job_id, lease2, JobProgress(5, "second", clock.now()))
    assert (await backend.get_job(job_id)).progress == JobProgress(5, "second", clock.now())
