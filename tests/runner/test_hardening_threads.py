"""Thread jobs keep their limits: an attempt that timed out or was cancelled holds its slot
until its thread returns, the job is never run twice at once, and the timeout counts from the
moment ``execute`` starts, not from when the job began waiting for a free thread."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from datetime import timedelta

import pytest

from rexecutor import ErrorType, Executor, Job, JobStatus, Rexecutor
from rexecutor.backend import Backend
from rexecutor.backends import InMemoryBackend
from tests.support.waiting import eventually, wait_for_status


class Tracked(Executor[float, None]):
    """Sleeps ``data`` seconds in its thread; records overlaps and attempt spans."""

    name = "tracked"
    max_concurrency = 1
    max_attempts = 3
    lock = threading.Lock()
    active = 0
    peak = 0
    spans: list[tuple[int, float, float]] = []

    def execute(self, job: Job[float, None]) -> None:
        cls = type(self)
        with cls.lock:
            cls.active += 1
            cls.peak = max(cls.peak, cls.active)
        began = time.monotonic()
        try:
            time.sleep(job.data)
        finally:
            with cls.lock:
                cls.active -= 1
                cls.spans.append((job.attempt, began, time.monotonic()))

    def timeout(self, job: Job[float, None]) -> timedelta | None:
        return timedelta(milliseconds=100) if job.attempt < 3 else None

    def backoff(self, job: Job[float, None]) -> timedelta:
        return timedelta(0)


@pytest.fixture(autouse=True)
def _reset() -> None:
    Tracked.active = Tracked.peak = 0
    Tracked.spans = []


async def test_a_timed_out_thread_keeps_its_slot_and_its_retry_waits_for_it(
    backend: Backend,
) -> None:
    async with Rexecutor(backend).with_executor(Tracked):
        job_id = await Tracked.builder().with_data(0.4).enqueue_to_backend(backend)
        job = await wait_for_status(backend, job_id, JobStatus.COMPLETE, timeout=15)
    assert [e.error_type for e in job.errors] == [ErrorType.TIMEOUT, ErrorType.TIMEOUT]
    assert Tracked.peak == 1
    spans = sorted(Tracked.spans)
    assert [attempt for attempt, _, _ in spans] == [1, 2, 3]
    for (_, _, ended), (_, began, _) in itertools.pairwise(spans):
        assert began >= ended  # each attempt started after the previous thread returned


async def test_a_retry_claimed_beside_its_zombie_waits_for_it() -> None:
    """With room for several, the same job still never runs twice at once on a node."""

    class Wide(Tracked):
        name = "tracked_wide"
        max_concurrency = 4

    backend = InMemoryBackend()
    async with Rexecutor(backend).with_executor(Wide):
        job_id = await Wide.builder().with_data(0.4).enqueue_to_backend(backend)
        await wait_for_status(backend, job_id, JobStatus.COMPLETE, timeout=15)
    assert Wide.peak == 1
    assert len(Wide.spans) == 3


class Gate(Executor[None, None]):
    """Blocks its thread until the test opens the gate."""

    name = "gate"
    max_concurrency = 1
    gate = threading.Event()
    started: list[int] = []

    def execute(self, job: Job[None, None]) -> None:
        type(self).started.append(int(job.id))
        type(self).gate.wait(30)


async def test_a_cancelled_thread_job_keeps_its_slot_until_the_thread_returns() -> None:
    Gate.gate.clear()
    Gate.started = []
    backend = InMemoryBackend()
    rex = Rexecutor(backend, cancel_check_interval=0.05).with_executor(Gate)
    async with rex:
        first = await Gate.builder().enqueue_to_backend(backend)
        await eventually(lambda: Gate.started == [first])
        assert await Gate.cancel_job_on_backend(first, "stop", backend)
        second = await Gate.builder().enqueue_to_backend(backend)
        runner = rex._runners[0]
        await eventually(lambda: first in runner.zombies and not runner.running)
        assert rex.running_jobs == 1  # the zombie thread counts
        # The runner stays at its limit: the second job is not claimed while the thread lives
        # (an absence, so give the runner, woken by the enqueue, a moment to show it).
        await asyncio.sleep(0.3)
        assert (await backend.get_job(second)).status is JobStatus.SCHEDULED
        Gate.gate.set()
        await wait_for_status(backend, second, JobStatus.COMPLETE)
    assert Gate.started == [first, second]
    assert (await backend.get_job(first)).status is JobStatus.CANCELLED


class Quick(Executor[None, None]):
    name = "quick"
    max_attempts = 1
    ran = 0

    def execute(self, job: Job[None, None]) -> None:
        type(self).ran += 1

    def timeout(self, job: Job[None, None]) -> timedelta | None:
        return timedelta(milliseconds=200)


class Long(Executor[None, None]):
    name = "long"

    def execute(self, job: Job[None, None]) -> None:
        time.sleep(0.8)


async def test_the_timeout_counts_from_the_start_of_execute() -> None:
    backend = InMemoryBackend()
    async with Rexecutor(backend, blocking_threads=1).with_executor(Long).with_executor(Quick):
        long_id = await Long.builder().enqueue_to_backend(backend)
        await wait_for_status(backend, long_id, JobStatus.EXECUTING)
        quick_id = await Quick.builder().enqueue_to_backend(backend)
        job = await wait_for_status(backend, quick_id, JobStatus.COMPLETE, JobStatus.DISCARDED)
    assert job.status is JobStatus.COMPLETE, job.errors
    assert Quick.ran == 1
