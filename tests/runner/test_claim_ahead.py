"""Claiming ahead: an executor with short attempts has its next jobs claimed while the current
ones run, yet never runs more than its limit at once; a job claimed ahead that finds no slot
in time, or whose node stops, is handed back unstarted, and one cancelled while it waits never
runs. On the in-memory backend, with real time (the runner's own timers)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from rexecutor import Executor, Job, JobStatus, Rexecutor, runner
from rexecutor.backend import EnqueuableJob
from rexecutor.backends import InMemoryBackend
from rexecutor.query import StatusIn
from tests.support.running import counted
from tests.support.waiting import eventually


class Short(Executor[int, None]):
    """Sleeps ``data`` milliseconds (0: none); records how many ran at once, and which ran."""

    name = "short"
    max_concurrency = 3
    active = 0
    peak = 0
    ran: ClassVar[list[int]] = []
    gate: ClassVar[asyncio.Event | None] = None

    async def execute(self, job: Job[int, None]) -> None:
        with counted(Short):  # subclasses count in the same place
            if job.data < 0 and Short.gate is not None:
                await Short.gate.wait()
            else:
                await asyncio.sleep(job.data / 1000)
        Short.ran.append(int(job.id))


@pytest.fixture(autouse=True)
def _reset() -> None:
    Short.active = Short.peak = 0
    Short.ran = []
    Short.gate = None


async def _enqueue(backend: InMemoryBackend, values: list[int]) -> list[int]:
    results = await backend.enqueue_many([EnqueuableJob("short", v) for v in values])
    return [int(r.job_id) for r in results]


async def _executing(backend: InMemoryBackend) -> int:
    return len(await backend.query(StatusIn((JobStatus.EXECUTING,))))


async def _most_executing_while(backend: InMemoryBackend, done: Any) -> int:
    most = 0
    while not done():
        most = max(most, await _executing(backend))
        await asyncio.sleep(0.0005)
    return most


async def test_short_jobs_are_claimed_ahead_but_never_run_beyond_the_limit() -> None:
    backend = InMemoryBackend()
    ids = await _enqueue(backend, [2] * 90)
    async with Rexecutor(backend).with_executor(Short):
        most = await _most_executing_while(backend, lambda: len(Short.ran) == 90)
    assert Short.peak == 3
    assert sorted(Short.ran) == ids  # each ran once
    # Up to the limit again was claimed beyond it, waiting for the next free slot.
    assert 3 < most <= 6


async def test_long_jobs_are_not_claimed_ahead() -> None:
    backend = InMemoryBackend()
    await _enqueue(backend, [int(runner.AHEAD_FOR * 1000) + 20] * 9)
    async with Rexecutor(backend).with_executor(Short):
        most = await _most_executing_while(backend, lambda: len(Short.ran) == 9)
    assert most == 3


async def test_executors_with_cross_node_limits_are_not_claimed_ahead() -> None:
    class Limited(Short):
        name = "short"
        global_max_concurrency = 5

    backend = InMemoryBackend()
    await _enqueue(backend, [2] * 60)
    async with Rexecutor(backend).with_executor(Limited):
        most = await _most_executing_while(backend, lambda: len(Short.ran) == 60)
    assert most <= 3


async def _short_then_blocked(backend: InMemoryBackend) -> list[int]:
    """Run short jobs until the runner claims ahead, then block the only slot; returns the
    ids of the jobs queued behind the blocked one."""
    Short.gate = asyncio.Event()
    await _enqueue(backend, [1] * 20)
    await eventually(lambda: len(Short.ran) == 20)
    [_blocked, *behind] = await _enqueue(backend, [-1, 1, 1])
    await eventually(lambda: Short.active == 1)
    return behind


class Single(Short):
    name = "short"
    max_concurrency = 1


async def test_a_job_claimed_ahead_that_finds_no_slot_in_time_is_handed_back_unharmed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner, "AHEAD_PATIENCE", 0.1)
    backend = InMemoryBackend()
    async with Rexecutor(backend).with_executor(Single):
        behind = await _short_then_blocked(backend)
        # The job claimed ahead waits behind the blocked one, then goes back to the queue,
        # and is not claimed ahead again while attempts are slow.
        await eventually(lambda: _claimed(backend, behind[0]))
        await eventually(lambda: _ready(backend, behind[0]), timeout=3)
        await asyncio.sleep(0.3)
        assert await _ready(backend, behind[0])
        assert Short.active == 1 and behind[0] not in Short.ran
        assert Short.gate is not None
        Short.gate.set()
        await eventually(lambda: len(Short.ran) == 23, timeout=3)
    for job_id in behind:
        job = await backend.get_job(job_id)
        assert (job.status, job.attempt, job.errors) == (JobStatus.COMPLETE, 1, [])


async def _ready(backend: InMemoryBackend, job_id: int) -> bool:
    job = await backend.get_job(job_id)
    return job.status in JobStatus.READY and job.attempt == 0


async def test_stopping_hands_back_the_jobs_waiting_for_a_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner, "AHEAD_PATIENCE", 30.0)
    backend = InMemoryBackend()
    rex = Rexecutor(backend).with_executor(Single)
    await rex.start()
    behind = await _short_then_blocked(backend)
    await eventually(lambda: _claimed(backend, behind[0]))
    stopping = asyncio.create_task(rex.graceful_shutdown(timeout=5))
    await eventually(lambda: _ready(backend, behind[0]), timeout=3)
    assert Short.gate is not None
    Short.gate.set()
    await stopping
    assert behind[0] not in Short.ran
    job = await backend.get_job(behind[0])
    assert (job.status, job.attempt) == (JobStatus.SCHEDULED, 0)


async def _claimed(backend: InMemoryBackend, job_id: int) -> bool:
    return (await backend.get_job(job_id)).status is JobStatus.EXECUTING


async def test_a_job_cancelled_while_it_waits_for_a_slot_never_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner, "AHEAD_PATIENCE", 30.0)
    backend = InMemoryBackend()
    async with Rexecutor(backend, cancel_check_interval=0.02).with_executor(Single):
        behind = await _short_then_blocked(backend)
        await eventually(lambda: _claimed(backend, behind[0]))
        assert await Single.cancel_job_on_backend(behind[0], "not wanted", backend)
        await asyncio.sleep(0.2)  # the watch stops it in its place in line
        assert Short.gate is not None
        Short.gate.set()
        await eventually(lambda: behind[1] in Short.ran, timeout=3)
    assert behind[0] not in Short.ran
    assert (await backend.get_job(behind[0])).status is JobStatus.CANCELLED
