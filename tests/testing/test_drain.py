"""drain(): every ready job of some executors, run now through the real runner, on every backend."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from rexecutor import ExecutionResult, Executor, Job, JobStatus, Rexecutor
from rexecutor.backend import Backend
from rexecutor.testing import DrainResult, drain


class Step(Executor[int, None]):
    """Counts down: each job enqueues the next, on the backend it is given."""

    name = "step"
    max_attempts = 2
    backend: Backend | None = None

    async def execute(self, job: Job[int, None]) -> ExecutionResult | None:
        if job.data < 0:
            raise ValueError("negative")
        if job.data == 100:
            return ExecutionResult.Cancel("too big")
        if job.data == 50:
            return ExecutionResult.Snooze(timedelta(hours=1))
        if job.data > 0:
            assert self.backend is not None
            await Step.builder().with_data(job.data - 1).enqueue_to_backend(self.backend)
        return None


class Threaded(Executor[str, None]):
    name = "threaded"
    blocking = True
    threads: list[str] = []

    async def execute(self, job: Job[str, None]) -> None:
        Threaded.threads.append(threading.current_thread().name)


@pytest.fixture(autouse=True)
def _wire(backend: Backend) -> None:
    Step.backend = backend


async def test_drains_ready_jobs_and_counts_outcomes(backend: Backend) -> None:
    for data in (0, -1, 100, 50):
        await Step.builder().with_data(data).enqueue_to_backend(backend)
    later = (
        await Step.builder()
        .with_data(0)
        .schedule_in(timedelta(hours=1))
        .enqueue_to_backend(backend)
    )
    result = await drain(Step, backend=backend)
    assert result == DrainResult(complete=1, retryable=1, cancelled=1, snoozed=1)
    assert (result.total, result.failed) == (4, 1)
    assert (await backend.get_job(later)).status is JobStatus.SCHEDULED
    # The failed job waits for its backoff: nothing is ready now.
    assert await drain(Step, backend=backend) == DrainResult()
    assert await backend.list_nodes() == []  # the drain's node is gone


async def test_only_the_jobs_ready_at_the_start_unless_recursive(backend: Backend) -> None:
    await Step.builder().with_data(3).enqueue_to_backend(backend)
    assert (await drain(Step, backend=backend)).complete == 1
    assert (await drain(Step, backend=backend, recursive=True)).complete == 3
    statuses = [j.status for j in await Step.query_jobs_on_backend(None, backend)]
    assert statuses == [JobStatus.COMPLETE] * 4


async def test_with_scheduled_runs_future_jobs_and_waiting_retries(backend: Backend) -> None:
    await Step.builder().with_data(0).schedule_in(timedelta(days=1)).enqueue_to_backend(backend)
    failing = await Step.builder().with_data(-5).enqueue_to_backend(backend)
    assert await drain(Step, backend=backend) == DrainResult(retryable=1)
    result = await drain(Step, backend=backend, with_scheduled=True)
    assert result == DrainResult(complete=1, discarded=1)
    assert (await backend.get_job(failing)).status is JobStatus.DISCARDED


async def test_a_job_that_never_settles_stops_a_recursive_drain(backend: Backend) -> None:
    snoozer = await Step.builder().with_data(50).enqueue_to_backend(backend)
    with pytest.raises(AssertionError, match="still ready after 3 rounds"):
        await drain(Step, backend=backend, recursive=True, with_scheduled=True, max_rounds=3)
    job = await backend.get_job(snoozer)
    assert job.status is JobStatus.SCHEDULED and job.attempt == 0


async def test_a_rexecutor_brings_its_executors_and_backend(backend: Backend) -> None:
    node = Rexecutor(backend).with_executor(Step).with_executor(Threaded)
    await Step.builder().with_data(1).enqueue_to_backend(backend)
    await Threaded.builder().with_data("x").enqueue_to_backend(backend)
    Threaded.threads.clear()
    assert (await drain(node, recursive=True)).complete == 3
    assert Threaded.threads and Threaded.threads[0].startswith("rexecutor-drain")


async def test_the_global_backend_is_the_default(rexecutor_backend: Backend) -> None:
    Step.backend = rexecutor_backend
    await Step.builder().with_data(2).enqueue()
    assert (await drain(Step, recursive=True)).complete == 3


async def test_needs_an_executor(backend: Backend) -> None:
    with pytest.raises(Exception, match="at least one executor"):
        await drain(backend=backend)
    with pytest.raises(Exception, match="drain takes Executor classes"):
        await drain("step", backend=backend)  # type: ignore[arg-type]
