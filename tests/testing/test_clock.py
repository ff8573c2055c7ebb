"""FakeClock: moving time fires scheduled jobs, retries, cron ticks, pruning and rescue at once.

The nodes here poll once a minute, so nothing but the clock's wake-ups can explain a job that
runs within the few seconds these tests wait.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from rexecutor import (
    ErrorType,
    ExecutionResult,
    Executor,
    Job,
    JobStatus,
    Pruner,
    PrunerConfig,
    Rexecutor,
    _clock,
)
from rexecutor.backend import Backend, NodeInfo
from rexecutor.backends import InMemoryBackend
from rexecutor.testing import FakeClock, drain
from tests.support.waiting import eventually, wait_for_status

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class Flaky(Executor[str, None]):
    """Fails its first attempt."""

    name = "flaky"

    async def execute(self, job: Job[str, None]) -> ExecutionResult | None:
        if job.attempt == 1:
            return ExecutionResult.Error(RuntimeError("first attempt fails"))
        return None

    def backoff(self, job: Job[str, None]) -> timedelta:
        return timedelta(minutes=10)


class Tick(Executor[None, None]):
    name = "tick"

    async def execute(self, job: Job[None, None]) -> None:
        return None


class Hold(Executor[None, None]):
    """Runs until released."""

    name = "hold"
    release = asyncio.Event()

    async def execute(self, job: Job[None, None]) -> None:
        await Hold.release.wait()


def node(backend: Backend, **settings: object) -> Rexecutor:
    return Rexecutor(backend, poll_interval=60, **settings)  # type: ignore[arg-type]


def test_install_read_move_and_uninstall() -> None:
    clock = FakeClock(START)
    assert clock.now() == START and not clock.installed
    with clock:
        assert clock.installed and _clock.now() == START
        assert clock.advance(hours=1, minutes=30) == START + timedelta(hours=1, minutes=30)
        assert clock.advance(timedelta(seconds=1), milliseconds=500) == START + timedelta(
            hours=1, minutes=30, seconds=1.5
        )
        assert _clock.now() == clock.now()
        assert clock.set(START - timedelta(days=1)) == START - timedelta(days=1)
        with pytest.raises(ValueError, match="forward only"):
            clock.advance(seconds=-1)
    assert not clock.installed and _clock.current_clock() is None
    with pytest.raises(Exception, match="timezone-aware"):
        FakeClock(datetime(2030, 1, 1))


def test_the_fixture_installs_a_clock_that_stands_still(rexecutor_clock: FakeClock) -> None:
    assert rexecutor_clock.installed
    first = _clock.now()
    assert _clock.now() == first
    assert abs(first - datetime.now(UTC)) < timedelta(minutes=1)


async def test_a_scheduled_job_runs_when_the_clock_reaches_it(clocked_backend: Backend) -> None:
    with FakeClock(START) as clock:
        async with node(clocked_backend).with_executor(Tick):
            later = (
                await Tick.builder()
                .schedule_in(timedelta(hours=3))
                .enqueue_to_backend(clocked_backend)
            )
            clock.advance(hours=2)
            await asyncio.sleep(0.2)
            assert (await clocked_backend.get_job(later)).status is JobStatus.SCHEDULED
            clock.advance(hours=1)
            job = await wait_for_status(clocked_backend, later, JobStatus.COMPLETE, timeout=5)
    assert job.completed_at == START + timedelta(hours=3)


async def test_a_retry_runs_when_its_backoff_has_passed(clocked_backend: Backend) -> None:
    with FakeClock(START) as clock:
        async with node(clocked_backend).with_executor(Flaky):
            job_id = await Flaky.builder().with_data("x").enqueue_to_backend(clocked_backend)
            waiting = await wait_for_status(clocked_backend, job_id, JobStatus.RETRYABLE)
            assert waiting.scheduled_at == START + timedelta(minutes=10)
            clock.advance(minutes=10)
            done = await wait_for_status(clocked_backend, job_id, JobStatus.COMPLETE, timeout=5)
    assert done.attempt == 2


async def test_drain_sees_the_fake_time(clocked_backend: Backend) -> None:
    with FakeClock(START) as clock:
        await Flaky.builder().with_data("x").enqueue_to_backend(clocked_backend)
        assert (await drain(Flaky, backend=clocked_backend)).retryable == 1
        clock.advance(minutes=9)
        assert (await drain(Flaky, backend=clocked_backend)).total == 0
        clock.advance(minutes=1)
        assert (await drain(Flaky, backend=clocked_backend)).complete == 1


async def test_a_cron_tick_fires_when_the_clock_gets_there(clocked_backend: Backend) -> None:
    with FakeClock(datetime(2030, 1, 1, 23, 59, 50, tzinfo=UTC)) as clock:
        async with node(clocked_backend).with_cron_executor(Tick, "0 0 * * *"):
            await asyncio.sleep(0.1)  # the cron loop computes its next tick
            assert await Tick.query_jobs_on_backend(None, clocked_backend) == []
            clock.advance(seconds=10)

            async def ran() -> bool:
                jobs = await Tick.query_jobs_on_backend(None, clocked_backend)
                return [j.status for j in jobs] == [JobStatus.COMPLETE]

            await eventually(ran, timeout=5)
    [job] = await Tick.query_jobs_on_backend(None, clocked_backend)
    assert job.scheduled_at == datetime(2030, 1, 2, tzinfo=UTC)


async def test_pruning_runs_on_its_schedule_and_by_age(clocked_backend: Backend) -> None:
    config = PrunerConfig("*/5 * * * *").with_pruner(
        Pruner.max_age(timedelta(days=1), JobStatus.COMPLETE)
    )
    with FakeClock(START) as clock:
        await Tick.builder().enqueue_to_backend(clocked_backend)
        assert (await drain(Tick, backend=clocked_backend)).complete == 1
        async with node(clocked_backend).with_job_pruner(config):
            await asyncio.sleep(0.1)
            clock.advance(minutes=5)  # a pruning tick, but the job is not a day old
            await asyncio.sleep(0.2)
            assert len(await Tick.query_jobs_on_backend(None, clocked_backend)) == 1
            clock.advance(days=1)

            async def pruned() -> bool:
                return await Tick.query_jobs_on_backend(None, clocked_backend) == []

            await eventually(pruned, timeout=5)


async def test_a_dead_nodes_job_is_rescued_once_the_window_has_passed(
    clocked_backend: Backend,
) -> None:
    with FakeClock(START) as clock:
        ghost = await Tick.builder().enqueue_to_backend(clocked_backend)
        await clocked_backend.record_heartbeat(NodeInfo("ghost"))
        [claimed] = await clocked_backend.claim_ready_jobs("tick", 1, "ghost")
        assert claimed.id == ghost
        live = node(
            clocked_backend,
            heartbeat_interval=timedelta(milliseconds=50),
            rescue_after=timedelta(seconds=30),
        )
        async with live.with_executor(Tick):
            await asyncio.sleep(0.2)
            assert (await clocked_backend.get_job(ghost)).status is JobStatus.EXECUTING
            clock.advance(seconds=31)
            job = await wait_for_status(clocked_backend, ghost, JobStatus.COMPLETE, timeout=5)
    assert [e.error_type for e in job.errors] == [ErrorType.ORPHANED]
    assert [n.node_id for n in await clocked_backend.list_nodes()] == []


async def test_a_live_node_keeps_its_running_job_across_a_long_jump() -> None:
    """Each heartbeat comes before the rescue pass that follows it, so a node's own running
    job survives a six-hour jump. (On the memory backend: the beat and the rescue are then
    back to back, which leaves a jump that lands exactly between them no room.)"""
    backend = InMemoryBackend()
    Hold.release = asyncio.Event()
    with FakeClock(START) as clock:
        live = node(
            backend,
            heartbeat_interval=timedelta(milliseconds=100),
            rescue_after=timedelta(seconds=30),
        )
        async with live.with_executor(Hold):
            job_id = await Hold.builder().enqueue_to_backend(backend)
            await wait_for_status(backend, job_id, JobStatus.EXECUTING)
            clock.advance(hours=6)
            await asyncio.sleep(0.35)  # several heartbeats, each followed by a rescue pass
            assert (await backend.get_job(job_id)).status is JobStatus.EXECUTING
            Hold.release.set()
            job = await wait_for_status(backend, job_id, JobStatus.COMPLETE)
    assert job.errors == [] and job.attempt == 1


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_on_postgresql_the_clock_moves_the_nodes_loops(backend: Backend) -> None:
    """PostgreSQL follows the fake clock like the other backends: a tick's job is stored for
    the fake tick time, is due at once by that clock, and the node runs it."""
    tick = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
    with FakeClock(tick - timedelta(seconds=5)) as clock:
        async with node(backend).with_cron_executor(Tick, "* * * * *"):
            await asyncio.sleep(0.1)
            clock.advance(seconds=5)

            async def ticked() -> bool:
                return bool(await Tick.query_jobs_on_backend(None, backend))

            await eventually(ticked, timeout=5)
            [job] = await Tick.query_jobs_on_backend(None, backend)
            done = await wait_for_status(backend, job.id, JobStatus.COMPLETE)
        assert job.scheduled_at == tick and done.completed_at is not None
        assert done.completed_at >= tick
