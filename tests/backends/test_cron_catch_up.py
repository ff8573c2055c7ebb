"""Conformance: a cron schedule's missed ticks. Each tick's job is tagged with its schedule and
its tick; the last tick on record is read back from those jobs, and a starting node enqueues
the missed ticks its ``catch_up`` policy keeps, each once however many nodes start at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from rexecutor import Executor, Job, Rexecutor, admin
from rexecutor._cron_jobs import catch_up, enqueue_tick, last_enqueued_tick
from rexecutor.backend import Backend
from rexecutor.cron import CronCatchUp, CronSchedule
from rexecutor.testing import FakeClock
from tests.support.waiting import eventually

HOURLY = CronSchedule.parse("0 * * * *")
START = datetime(2030, 1, 1, 0, 0, tzinfo=UTC)


class Report(Executor[str, None]):
    name = "report"

    async def execute(self, job: Job[str, None]) -> None:
        return None


def hour(n: int) -> datetime:
    return START + timedelta(hours=n)


async def ticks_on_record(backend: Backend) -> list[datetime]:
    """The scheduled times of the schedule's jobs, in tick order."""
    return sorted(job.scheduled_at for job in await Report.query_jobs_on_backend(None, backend))


async def ran_until(backend: Backend, clock: FakeClock, last: int, data: str = "daily") -> None:
    """A node ran the schedule until hour ``last``: hours 0..last each have their job."""
    for n in range(last + 1):
        await enqueue_tick(Report, HOURLY, data, None, backend, hour(n))
    clock.set(hour(last) + timedelta(minutes=1))


async def test_the_last_tick_is_read_back_from_the_schedules_jobs(
    backend: Backend, clock: FakeClock
) -> None:
    assert await last_enqueued_tick(backend, "report", HOURLY, "daily") is None
    await ran_until(backend, clock, 3)
    assert await last_enqueued_tick(backend, "report", HOURLY, "daily") == hour(3)
    # Another schedule of the same executor (other data, other expression) is not this one.
    await enqueue_tick(Report, HOURLY, "weekly", None, backend, hour(9))
    other = CronSchedule.parse("30 * * * *")
    await enqueue_tick(Report, other, "daily", None, backend, hour(8))
    assert await last_enqueued_tick(backend, "report", HOURLY, "daily") == hour(3)
    assert await last_enqueued_tick(backend, "report", HOURLY, "weekly") == hour(9)


async def test_a_rerun_does_not_move_the_last_tick(backend: Backend, clock: FakeClock) -> None:
    await ran_until(backend, clock, 2)
    [first, *_] = await Report.query_jobs_on_backend(None, backend)
    clock.advance(hours=5)
    await admin.rerun(backend, first.id)  # scheduled_at is now, the tick it ran for is not
    assert await last_enqueued_tick(backend, "report", HOURLY, "daily") == hour(2)


async def test_skip_enqueues_nothing(backend: Backend, clock: FakeClock) -> None:
    await ran_until(backend, clock, 1)
    clock.set(hour(6) + timedelta(minutes=20))
    ticks = await catch_up(Report, HOURLY, "daily", None, CronCatchUp(), backend, clock.now())
    assert ticks == []
    assert await ticks_on_record(backend) == [hour(0), hour(1)]


async def test_latest_enqueues_the_latest_missed_tick(backend: Backend, clock: FakeClock) -> None:
    await ran_until(backend, clock, 1)
    clock.set(hour(6) + timedelta(minutes=20))
    policy = CronCatchUp("latest")
    ticks = await catch_up(Report, HOURLY, "daily", None, policy, backend, clock.now())
    assert ticks == [hour(6)]
    assert await ticks_on_record(backend) == [hour(0), hour(1), hour(6)]
    # Its job is ready at once (its tick is past), with the schedule's data.
    [job] = [
        j for j in await Report.query_jobs_on_backend(None, backend) if j.scheduled_at == hour(6)
    ]
    assert job.data == "daily"
    # Started again: the latest tick is on record now, so nothing was missed.
    assert await catch_up(Report, HOURLY, "daily", None, policy, backend, clock.now()) == []


async def test_all_enqueues_each_missed_tick(backend: Backend, clock: FakeClock) -> None:
    await ran_until(backend, clock, 1)
    clock.set(hour(4) + timedelta(minutes=20))
    policy = CronCatchUp("all")
    ticks = await catch_up(Report, HOURLY, "daily", None, policy, backend, clock.now())
    assert ticks == [hour(2), hour(3), hour(4)]
    assert await ticks_on_record(backend) == [hour(n) for n in range(5)]


async def test_all_over_the_bound_keeps_the_most_recent(backend: Backend, clock: FakeClock) -> None:
    await ran_until(backend, clock, 0)
    clock.set(hour(48))
    policy = CronCatchUp("all", limit=3)
    ticks = await catch_up(Report, HOURLY, "daily", None, policy, backend, clock.now())
    assert ticks == [hour(46), hour(47), hour(48)]
    assert await ticks_on_record(backend) == [hour(0), hour(46), hour(47), hour(48)]


async def test_a_schedule_with_no_job_on_record_missed_nothing(
    backend: Backend, clock: FakeClock
) -> None:
    clock.set(hour(10))
    policy = CronCatchUp("all")
    assert await catch_up(Report, HOURLY, "daily", None, policy, backend, clock.now()) == []
    assert await ticks_on_record(backend) == []


async def test_nodes_starting_at_once_enqueue_each_tick_once(
    backend: Backend, clock: FakeClock
) -> None:
    await ran_until(backend, clock, 0)
    clock.set(hour(5) + timedelta(minutes=1))
    policy = CronCatchUp("all")
    now = clock.now()
    await asyncio.gather(
        *(catch_up(Report, HOURLY, "daily", None, policy, backend, now) for _ in range(4))
    )
    assert await ticks_on_record(backend) == [hour(n) for n in range(6)]


async def test_a_starting_node_catches_up_then_ticks_on(backend: Backend, clock: FakeClock) -> None:
    await ran_until(backend, clock, 1)
    clock.set(hour(4) + timedelta(minutes=59, seconds=59))
    node = Rexecutor(backend).with_cron_executor(Report, "0 * * * *", data="daily", catch_up="all")
    async with node:
        expected = [hour(n) for n in range(5)]

        async def caught_up() -> bool:
            return await ticks_on_record(backend) == expected

        await eventually(caught_up)
        clock.advance(seconds=1)  # the schedule goes on from the next tick, once

        async def ticked() -> bool:
            return await ticks_on_record(backend) == [*expected, hour(5)]

        await eventually(ticked)
