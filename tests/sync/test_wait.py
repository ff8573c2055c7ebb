"""``Executor.wait_for_job`` and ``rexecutor.sync.wait_for_job``: the typed job once it
finished, on every backend, from the event loop and from a plain thread."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest

from rexecutor import ExecutionResult, Executor, Job, JobNotFound, JobStatus, Rexecutor, sync
from rexecutor.backend import Backend, Lease
from rexecutor.testing import reset_global_backend


class Order(Executor[int, dict[str, int]]):
    name = "order"

    async def execute(self, job: Job[int, dict[str, int]]) -> ExecutionResult | None:
        return None


@pytest.fixture(autouse=True)
def _close_facade() -> Iterator[None]:
    yield
    sync.close()
    reset_global_backend()


async def _claimed(backend: Backend) -> tuple[int, Lease]:
    job_id = await Order.builder().with_data(7).with_metadata({"n": 1}).enqueue_to_backend(backend)
    [job] = await backend.claim_ready_jobs("order", 1, "node-1")
    return int(job_id), Lease("node-1", job.attempt)


async def test_executor_wait_for_job_returns_the_typed_job(backend: Backend) -> None:
    Rexecutor(backend).set_global_backend()
    job_id, lease = await _claimed(backend)
    waiter = asyncio.ensure_future(Order.wait_for_job(job_id, timeout=timedelta(minutes=1)))
    assert await backend.complete_jobs([(job_id, lease)]) == [True]
    job = await asyncio.wait_for(waiter, 60)
    assert (job.id, job.status, job.data, job.metadata) == (
        job_id,
        JobStatus.COMPLETE,
        7,
        {"n": 1},
    )


async def test_wait_for_job_on_backend_raises_for_an_unknown_id(backend: Backend) -> None:
    with pytest.raises(JobNotFound):
        await Order.wait_for_job_on_backend(424242, backend, timeout=timedelta(minutes=1))


async def test_sync_wait_for_job_blocks_a_thread_until_the_job_finishes(
    backend: Backend,
) -> None:
    job_id, lease = await _claimed(backend)
    waiting = asyncio.ensure_future(
        asyncio.to_thread(sync.wait_for_job, Order, job_id, backend, timeout=timedelta(minutes=1))
    )
    assert await backend.complete_jobs([(job_id, lease)]) == [True]
    job = await asyncio.wait_for(waiting, 60)
    assert (job.status, job.data) == (JobStatus.COMPLETE, 7)


async def test_sync_wait_for_job_times_out(backend: Backend) -> None:
    job_id = await Order.builder().with_data(1).enqueue_to_backend(backend)
    with pytest.raises(TimeoutError):
        await asyncio.to_thread(
            sync.wait_for_job, Order, job_id, backend, timeout=timedelta(milliseconds=50)
        )
