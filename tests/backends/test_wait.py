"""Conformance: ``wait_for_job`` returns a job once it is complete, discarded or cancelled,
woken by the backend's own notifications; an unknown id fails at once, a timeout raises
``TimeoutError``, and any number of waiters share one subscription.

The safety re-check is pushed out of reach here, so that a waiter that returns was woken by
a notification, never by the re-check. The hang guard (``GUARD``) only stops a broken test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from rexecutor import _waiting, lifecycle
from rexecutor.backend import Backend, Lease
from rexecutor.backends.postgres import PostgresBackend
from rexecutor.backends.sqlite import SqliteBackend
from rexecutor.errors import ConfigurationError, JobNotFound
from rexecutor.job import JobStatus
from rexecutor.lifecycle import Fence
from rexecutor.testing import FakeClock

from ._helpers import (
    CANCEL,
    FAILURE,
    enqueue,
    executing,
    finished,
    mark_complete,
    mark_discarded,
    mark_retryable,
    new_job,
)

T = TypeVar("T")

#: Only against a hang: nothing here waits for time to pass.
GUARD = 60.0


@pytest.fixture(autouse=True)
def _no_safety_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_waiting, "SAFETY_RECHECK", 3600.0)


async def guarded(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, GUARD)


def start(backend: Backend, job_id: int, **options: Any) -> asyncio.Task[Any]:
    return asyncio.ensure_future(_waiting.wait_for_job(backend, job_id, **options))


async def read_once(backend: Backend, *job_ids: int) -> None:
    """Until every waiter of ``job_ids`` has had its job read (so what follows must wake it)."""
    await asyncio.sleep(0)  # the waiting tasks register before their first await
    registry = _waiting._registry(backend)
    waiters = [w for i in job_ids for w in registry._waiting.get(int(i), [])]
    assert len(waiters) >= len(job_ids)
    await guarded(asyncio.gather(*(w.checked for w in waiters)))


def subscribers(backend: Backend) -> int:
    return backend.wakeups.finished.subscriber_count


@pytest.mark.parametrize("status", [JobStatus.COMPLETE, JobStatus.DISCARDED, JobStatus.CANCELLED])
async def test_a_finished_job_is_returned_at_once(backend: Backend, status: JobStatus) -> None:
    job_id = await finished(backend, status)
    job = await guarded(_waiting.wait_for_job(backend, job_id, timeout=timedelta(0)))
    assert (job.id, job.status) == (job_id, status)
    assert subscribers(backend) == 0


async def test_a_waiter_is_woken_by_the_completion(backend: Backend) -> None:
    job, lease = await executing(backend)
    waiter = start(backend, job.id, timeout=timedelta(hours=1))
    await read_once(backend, job.id)
    assert not waiter.done()
    assert await backend.complete_jobs([(job.id, lease)]) == [True]
    done = await guarded(waiter)
    assert done.status is JobStatus.COMPLETE
    assert done.completed_at is not None


async def test_a_waiter_is_woken_by_a_fenced_transition(backend: Backend) -> None:
    job, lease = await executing(backend)
    waiter = start(backend, job.id)
    await read_once(backend, job.id)
    assert await mark_complete(backend, job.id, lease)
    assert (await guarded(waiter)).status is JobStatus.COMPLETE


async def test_a_waiter_is_woken_by_a_discard(backend: Backend) -> None:
    job, lease = await executing(backend)
    waiter = start(backend, job.id)
    await read_once(backend, job.id)
    assert await mark_discarded(backend, job.id, lease, FAILURE)
    assert (await guarded(waiter)).status is JobStatus.DISCARDED


async def test_a_waiter_is_woken_by_an_external_cancel(backend: Backend) -> None:
    job_id = await enqueue(backend)  # still scheduled: cancelled before it ever ran
    waiter = start(backend, job_id)
    await read_once(backend, job_id)
    assert await backend.apply_transition(
        job_id, Fence(JobStatus.SCHEDULED, 0), lifecycle.cancelled(CANCEL)
    )
    assert (await guarded(waiter)).status is JobStatus.CANCELLED


async def test_a_retry_does_not_end_the_wait(backend: Backend, clock: FakeClock) -> None:
    job, lease = await executing(backend)
    waiter = start(backend, job.id)
    await read_once(backend, job.id)
    assert await mark_retryable(backend, job.id, lease, timedelta(0), FAILURE)
    # The retry wakes nobody; the next attempt's completion does.
    clock.advance(timedelta(seconds=1))
    claimed = await backend.claim_ready_jobs("ex", 1, "node-2")
    assert [c.id for c in claimed] == [job.id]
    assert not waiter.done()
    assert await backend.complete_jobs([(job.id, Lease("node-2", 2))]) == [True]
    done = await guarded(waiter)
    assert (done.status, done.attempt) == (JobStatus.COMPLETE, 2)


async def test_an_unknown_id_raises_job_not_found_at_once(backend: Backend) -> None:
    with pytest.raises(JobNotFound):
        await guarded(_waiting.wait_for_job(backend, 987654, timeout=timedelta(hours=1)))
    assert subscribers(backend) == 0


async def test_the_timeout_raises_timeout_error_and_removes_the_waiter(
    backend: Backend, clock: FakeClock
) -> None:
    job_id = await enqueue(backend)
    waiter = start(backend, job_id, timeout=timedelta(seconds=30))
    await read_once(backend, job_id)
    assert subscribers(backend) == 1
    clock.advance(timedelta(seconds=29))
    await asyncio.sleep(0)
    assert not waiter.done()
    clock.advance(timedelta(seconds=2))
    with pytest.raises(TimeoutError, match=f"job {int(job_id)} did not finish"):
        await guarded(waiter)
    assert subscribers(backend) == 0
    assert _waiting._registry(backend)._waiting == {}


async def test_a_bad_timeout_is_refused(backend: Backend) -> None:
    job_id = await enqueue(backend)
    with pytest.raises(ConfigurationError, match="must not be negative"):
        await _waiting.wait_for_job(backend, job_id, timeout=timedelta(seconds=-1))
    with pytest.raises(ConfigurationError, match="timedelta"):
        await _waiting.wait_for_job(backend, job_id, timeout=5)  # type: ignore[arg-type]
    assert subscribers(backend) == 0


async def test_a_cancelled_caller_leaves_no_waiter_behind(backend: Backend) -> None:
    job_id = await enqueue(backend)
    waiter = start(backend, job_id)
    await read_once(backend, job_id)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert subscribers(backend) == 0


async def test_a_thousand_waiters_share_one_subscription(backend: Backend) -> None:
    count = 1000
    results = await backend.enqueue_many([new_job("ex") for _ in range(count)])
    job_ids = [int(r.job_id) for r in results]
    claimed = await backend.claim_ready_jobs("ex", count, "node-1")
    assert len(claimed) == count
    waiters = [start(backend, job_id) for job_id in job_ids]
    waiters.append(start(backend, job_ids[0]))  # two callers may wait for the same job
    await read_once(backend, *job_ids)
    assert subscribers(backend) == 1
    assert not any(w.done() for w in waiters)
    leases = [(int(j.id), Lease("node-1", j.attempt)) for j in claimed]
    for at in range(0, count, 100):
        assert all(await backend.complete_jobs(leases[at : at + 100]))
    jobs = await guarded(asyncio.gather(*waiters))
    assert [int(j.id) for j in jobs] == [*job_ids, job_ids[0]]
    assert {j.status for j in jobs} == {JobStatus.COMPLETE}
    assert subscribers(backend) == 0


@asynccontextmanager
async def another_process(backend: Backend) -> AsyncIterator[Backend]:
    """A second instance on the same store, standing for another process: what it writes
    reaches ``backend`` only through the store's own notifications."""
    if isinstance(backend, SqliteBackend):
        other: Backend = SqliteBackend(backend.path)
    elif isinstance(backend, PostgresBackend):
        other = backend.for_thread()
    else:
        pytest.skip(f"{type(backend).__name__} is not shared by several processes")
    async with other:
        yield other


async def test_a_completion_in_another_process_wakes_the_waiter(backend: Backend) -> None:
    async with another_process(backend) as other:
        job, lease = await executing(other)
        waiter = start(backend, job.id)
        await read_once(backend, job.id)
        assert await other.complete_jobs([(job.id, lease)]) == [True]
        assert (await guarded(waiter)).status is JobStatus.COMPLETE


async def test_a_cancel_in_another_process_wakes_the_waiter(backend: Backend) -> None:
    async with another_process(backend) as other:
        job_ids = [await enqueue(other) for _ in range(3)]
        waiters = [start(backend, job_id) for job_id in job_ids]
        await read_once(backend, *job_ids)
        for job_id in job_ids:
            assert await other.apply_transition(
                job_id, Fence(JobStatus.SCHEDULED, 0), lifecycle.cancelled(CANCEL)
            )
        done = await guarded(asyncio.gather(*waiters))
        assert {j.status for j in done} == {JobStatus.CANCELLED}
