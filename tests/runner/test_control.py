"""A running node obeys run-time control: pause, resume and scale through the Executor API,
and the telemetry they emit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rexecutor import Executor, ExecutorControl, Job, JobStatus, RateLimit, Rexecutor, telemetry
from rexecutor.backend import Backend, EnqueuableJob
from rexecutor.backends import InMemoryBackend, SqliteBackend
from rexecutor.telemetry import Event
from tests.support.waiting import eventually


class Slow(Executor[int, None]):
    """Sleeps ``data`` ms; counts how many run at once."""

    name = "slow"
    max_concurrency = 2
    global_max_concurrency = 8
    active = 0
    peak = 0

    async def execute(self, job: Job[int, None]) -> None:
        cls = type(self)
        cls.active += 1
        cls.peak = max(cls.peak, cls.active)
        try:
            await asyncio.sleep(job.data / 1000)
        finally:
            cls.active -= 1


@pytest.fixture(params=["memory", "sqlite"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    Slow.active = Slow.peak = 0
    store: Backend = (
        InMemoryBackend() if request.param == "memory" else SqliteBackend(tmp_path / "jobs.db")
    )
    async with store:
        yield store


def reaches(backend: Backend, wanted: dict[JobStatus, int]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await statuses(backend) == wanted

    return check


async def statuses(backend: Backend) -> dict[JobStatus, int]:
    counts: dict[JobStatus, int] = {}
    for (_, status), n in (await backend.count_jobs()).items():
        counts[status] = counts.get(status, 0) + n
    return counts


async def test_pause_stops_claims_resume_restarts_them(backend: Backend) -> None:
    node = Rexecutor(backend, poll_interval=0.05).with_executor(Slow)
    await Slow.pause_on_backend(backend)
    await backend.enqueue_many([EnqueuableJob("slow", 1) for _ in range(6)])
    await node.start()
    try:
        await asyncio.sleep(0.3)
        assert (await statuses(backend)) == {JobStatus.SCHEDULED: 6}
        state = await Slow.control_on_backend(backend)
        assert (state.paused, state.scheduled, state.global_max_concurrency) == (True, 6, 8)

        await Slow.resume_on_backend(backend)
        await eventually(reaches(backend, {JobStatus.COMPLETE: 6}), timeout=10)
    finally:
        await node.graceful_shutdown()


async def test_a_running_job_finishes_after_a_pause(backend: Backend) -> None:
    node = Rexecutor(backend, poll_interval=0.05).with_executor(Slow)
    await node.start()
    try:
        await backend.enqueue(EnqueuableJob("slow", 300))
        await eventually(reaches(backend, {JobStatus.EXECUTING: 1}))
        await Slow.pause_on_backend(backend)
        await backend.enqueue(EnqueuableJob("slow", 1))  # enqueuing still works
        await eventually(
            reaches(backend, {JobStatus.COMPLETE: 1, JobStatus.SCHEDULED: 1}), timeout=10
        )
    finally:
        await node.graceful_shutdown()


async def test_scale_changes_the_per_node_limit_at_run_time(backend: Backend) -> None:
    node = Rexecutor(backend, poll_interval=0.05).with_executor(Slow)
    await node.start()
    try:
        await Slow.scale_on_backend(5, backend)
        await backend.enqueue_many([EnqueuableJob("slow", 150) for _ in range(10)])
        await eventually(reaches(backend, {JobStatus.COMPLETE: 10}), timeout=10)
        assert Slow.peak == 5
        state: ExecutorControl = await Slow.control_on_backend(backend)
        assert (state.max_concurrency, state.scaled) == (5, True)

        await Slow.scale_on_backend(None, backend)
        state = await Slow.control_on_backend(backend)
        assert (state.max_concurrency, state.scaled) == (2, False)
    finally:
        await node.graceful_shutdown()


async def test_control_changes_emit_telemetry(backend: Backend) -> None:
    seen: list[Event] = []
    telemetry.attach(
        "control-test", ["executor.pause", "executor.resume", "executor.scale"], seen.append
    )
    try:
        await Slow.pause_on_backend(backend)
        await Slow.scale_on_backend(3, backend)
        await Slow.resume_on_backend(backend)
    finally:
        telemetry.detach("control-test")
    assert [e.name for e in seen] == ["executor.pause", "executor.scale", "executor.resume"]
    assert seen[1].measurements["max_concurrency"] == 3
    assert all(e.metadata["executor"] == "slow" for e in seen)


class Rated(Executor[int, None]):
    name = "rated"
    rate_limit = RateLimit(allowed=2, period=timedelta(seconds=30))

    async def execute(self, job: Job[int, None]) -> None:
        return None


async def test_jobs_held_back_are_counted_not_reported_per_poll(backend: Backend) -> None:
    seen: list[Event] = []
    telemetry.attach("held-test", ["executor.held"], seen.append)
    node = Rexecutor(backend, poll_interval=0.05).with_executor(Rated)
    try:
        await backend.enqueue_many([EnqueuableJob("rated", 0) for _ in range(5)])
        await node.start()
        await eventually(lambda: len(seen) >= 1, timeout=5)
        await asyncio.sleep(0.3)
    finally:
        await node.graceful_shutdown()
        telemetry.detach("held-test")
    assert seen[0].measurements["count"] >= 3
    # One event per poll interval at most, however often the runner looked.
    assert len(seen) <= 10
    counts = await statuses(backend)
    assert counts == {JobStatus.COMPLETE: 2, JobStatus.SCHEDULED: 3}
    state = await Rated.control_on_backend(backend)
    assert (state.started_in_window, state.rate_headroom) == (2, 0)


async def test_unknown_names_can_be_paused_for_later(backend: Backend) -> None:
    from rexecutor import control

    await control.pause(backend, "not-deployed-yet")
    state = await control.control(backend, "not-deployed-yet")
    assert state.paused
    listed: list[Any] = await control.controls(backend)
    assert [c.name for c in listed] == ["not-deployed-yet"]
