"""A test clock that jumps wakes runners and cron loops at once (no sleeping through it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from rexecutor import Executor, Job, JobStatus, Rexecutor, _clock
from rexecutor.backends import InMemoryBackend
from tests.support.waiting import eventually, wait_for_status


class Later(Executor[None, None]):
    name = "later"

    async def execute(self, job: Job[None, None]) -> None:
        return None


async def test_a_job_scheduled_in_an_hour_runs_as_soon_as_the_clock_gets_there() -> None:
    backend = InMemoryBackend()
    async with Rexecutor(backend, poll_interval=60).with_executor(Later):
        job_id = await Later.builder().schedule_in(timedelta(hours=1)).enqueue_to_backend(backend)
        jumped = datetime.now(UTC) + timedelta(hours=1, seconds=1)
        _clock.set_clock(lambda: jumped)
        job = await wait_for_status(backend, job_id, JobStatus.COMPLETE, timeout=3)
    assert job.completed_at == jumped


async def test_a_daily_cron_tick_fires_when_the_clock_jumps_to_it() -> None:
    backend = InMemoryBackend()
    start = datetime(2030, 1, 1, 23, 59, 59, tzinfo=UTC)
    current = [start]
    _clock.set_clock(lambda: current[0])
    async with Rexecutor(backend).with_cron_executor(Later, "0 0 * * *"):
        await asyncio.sleep(0.05)  # the cron loop computes its next tick from 23:59:59
        current[0] = datetime(2030, 1, 2, 0, 0, 1, tzinfo=UTC)
        _clock.changed()

        async def ticked() -> bool:
            return len(await Later.query_jobs_on_backend(None, backend)) == 1

        await eventually(ticked, timeout=3)
    [job] = await Later.query_jobs_on_backend(None, backend)
    assert job.scheduled_at == datetime(2030, 1, 2, tzinfo=UTC)
