"""The node as a whole: concurrency, threads, shutdown, cancellation, cron, pruning, rescue."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from rexecutor import (
    ConfigurationError,
    CronCatchUp,
    CronRegistration,
    CronSchedule,
    ErrorType,
    Executor,
    Job,
    JobStatus,
    Pruner,
    PrunerConfig,
    Rexecutor,
)
from rexecutor.backend import EnqueuableJob, NodeInfo
from rexecutor.backends import InMemoryBackend
from tests.support.running import counted
from tests.support.waiting import eventually, wait_for_status


class Counted(Executor[int, None]):
    """Sleeps ``data`` milliseconds and records how many ran at once."""

    name = "counted"
    max_concurrency = 3
    active = 0
    peak = 0
    finished: list[int] = []

    async def execute(self, job: Job[int, None]) -> None:
        with counted(type(self)):
            await asyncio.sleep(job.data / 1000)
        type(self).finished.append(int(job.id))


@pytest.fixture(autouse=True)
def _reset_counted() -> None:
    Counted.active = Counted.peak = 0
    Counted.finished = []


async def enqueue_many(
    backend: InMemoryBackend, executor: str, values: list[Any], **kw: Any
) -> list[int]:
    results = await backend.enqueue_many([EnqueuableJob(executor, v, **kw) for v in values])
    return [int(r.job_id) for r in results]


async def test_max_concurrency_is_never_exceeded() -> None:
    backend = InMemoryBackend()
    ids = await enqueue_many(backend, "counted", [30] * 12)
    async with Rexecutor(backend).with_executor(Counted):
        await eventually(lambda: len(Counted.finished) == 12)
    assert Counted.peak == 3
    assert sorted(Counted.finished) == ids


async def test_higher_priority_jobs_run_first() -> None:
    backend = InMemoryBackend()

    class Serial(Counted):
        name = "serial"
        max_concurrency = 1

    low = await enqueue_many(backend, "serial", [1, 1], priority=5)
    high = await enqueue_many(backend, "serial", [1, 1], priority=0)
    async with Rexecutor(backend).with_executor(Serial):
        await eventually(lambda: len(Counted.finished) == 4)
    assert Counted.finished == high + low


class Blocking(Executor[float, None]):
    name = "blocking"
    threads: set[int] = set()

    def execute(self, job: Job[float, None]) -> None:
        type(self).threads.add(threading.get_ident())
        time.sleep(job.data)


async def test_plain_def_executors_run_in_threads_and_never_stall_the_loop() -> None:
    backend = InMemoryBackend()
    await enqueue_many(backend, "blocking", [0.3, 0.3])
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    async with Rexecutor(backend).with_executor(Blocking):
        await eventually(lambda: len(Blocking.threads) >= 1, timeout=5)
        await asyncio.sleep(0.4)
    task.cancel()
    jobs = await Blocking.query_jobs_on_backend(None, backend)
    assert [j.status for j in jobs] == [JobStatus.COMPLETE, JobStatus.COMPLETE]
    assert threading.get_ident() not in Blocking.threads
    assert ticks >= 20  # the loop kept ticking every 10 ms while the jobs slept


class AsyncBlocking(Executor[None, None]):
    name = "async_blocking"
    blocking = True
    thread: int | None = None

    async def execute(self, job: Job[None, None]) -> None:
        type(self).thread = threading.get_ident()


async def test_blocking_async_executors_run_in_a_worker_thread() -> None:
    backend = InMemoryBackend()
    async with Rexecutor(backend).with_executor(AsyncBlocking):
        job_id = await AsyncBlocking.builder().enqueue_to_backend(backend)
        await wait_for_status(backend, job_id, JobStatus.COMPLETE)
    assert AsyncBlocking.thread not in (None, threading.get_ident())


async def test_graceful_shutdown_lets_running_jobs_finish() -> None:
    backend = InMemoryBackend()
    [job_id] = await enqueue_many(backend, "counted", [200])
    rex = Rexecutor(backend).with_executor(Counted)
    await rex.start()
    await eventually(lambda: Counted.active == 1)
    await rex.graceful_shutdown()
    assert (await backend.get_job(job_id)).status is JobStatus.COMPLETE


async def test_shutdown_deadline_hands_running_jobs_back_without_using_an_attempt() -> None:
    backend = InMemoryBackend()
    [job_id] = await enqueue_many(backend, "counted", [10_000])
    rex = Rexecutor(backend).with_executor(Counted)
    await rex.start()
    await eventually(lambda: Counted.active == 1)
    started = time.monotonic()
    await rex.graceful_shutdown(timeout=0.1)
    assert time.monotonic() - started < 2
    job = await backend.get_job(job_id)
    assert (job.status, job.attempt) == (JobStatus.SCHEDULED, 0)
    assert job.errors[-1].error_type is ErrorType.SHUTDOWN


async def test_no_job_starts_after_shutdown() -> None:
    backend = InMemoryBackend()
    rex = Rexecutor(backend).with_executor(Counted)
    async with rex:
        pass
    [job_id] = await enqueue_many(backend, "counted", [1])
    await asyncio.sleep(0.1)
    assert (await backend.get_job(job_id)).status is JobStatus.SCHEDULED


async def test_cancelling_a_running_job_stops_it_and_the_cancel_wins() -> None:
    backend = InMemoryBackend()
    [job_id] = await enqueue_many(backend, "counted", [10_000])
    async with Rexecutor(backend, cancel_check_interval=0.02).with_executor(Counted):
        await eventually(lambda: Counted.active == 1)
        assert await Counted.cancel_job_on_backend(job_id, "user asked", backend)
        await eventually(lambda: Counted.active == 0, timeout=2)
    job = await backend.get_job(job_id)
    assert job.status is JobStatus.CANCELLED
    assert job.errors[-1].details == "user asked"
    assert Counted.finished == []


async def test_a_job_scheduled_in_the_future_runs_when_due() -> None:
    backend = InMemoryBackend()
    async with Rexecutor(backend).with_executor(Counted):
        job_id = (
            await Counted.builder()
            .with_data(1)
            .schedule_in(timedelta(milliseconds=300))
            .enqueue_to_backend(backend)
        )
        await asyncio.sleep(0.1)
        assert (await backend.get_job(job_id)).status is JobStatus.SCHEDULED
        job = await wait_for_status(backend, job_id, JobStatus.COMPLETE, timeout=3)
    assert job.attempted_at is not None and job.attempted_at >= job.scheduled_at


class Tick(Executor[str, None]):
    name = "tick"
    runs: list[str] = []

    async def execute(self, job: Job[str, None]) -> None:
        self.runs.append(job.data)


async def test_cron_enqueues_each_tick_once_across_nodes() -> None:
    backend = InMemoryBackend()
    Tick.runs = []
    nodes = [
        Rexecutor(backend).with_cron_executor(Tick, "* * * * * *", data="every second")
        for _ in range(3)
    ]
    for node in nodes:
        await node.start()
    await asyncio.sleep(2.5)
    for node in nodes:
        await node.graceful_shutdown()
    jobs = await Tick.query_jobs_on_backend(None, backend)
    ticks = [j.scheduled_at for j in jobs]
    assert len(ticks) >= 2
    assert len(set(ticks)) == len(ticks)  # one job per tick, although three nodes ran it
    assert all(t.microsecond == 0 for t in ticks)


@pytest.mark.parametrize(
    ("expression", "zone"), [("61 * * * *", "UTC"), ("* * * *", "UTC"), ("* * * * *", "Mars/Base")]
)
def test_bad_cron_registration_fails_at_once(expression: str, zone: str) -> None:
    with pytest.raises(ConfigurationError):
        Rexecutor(InMemoryBackend()).with_cron_executor(Tick, expression, data="x", timezone=zone)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"catch_up": "sometimes"}, "use one of 'skip', 'latest', 'all'"),
        ({"catch_up": "all", "catch_up_limit": 0}, "at least 1"),
    ],
)
def test_bad_catch_up_fails_at_once(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        Rexecutor(InMemoryBackend()).with_cron_executor(Tick, "* * * * *", data="x", **options)


def test_the_node_lists_its_cron_schedules() -> None:
    rex = (
        Rexecutor(InMemoryBackend())
        .with_cron_executor(Tick, "0 3 * * *", data="a", timezone="Europe/London")
        .with_cron_executor(Tick, "@hourly", data="b", catch_up="all", catch_up_limit=5)
    )
    assert rex.cron_schedules == [
        CronRegistration("tick", CronSchedule("0 3 * * *", "Europe/London"), "a"),
        CronRegistration("tick", CronSchedule("@hourly"), "b", None, CronCatchUp("all", 5)),
    ]


async def test_the_pruner_deletes_old_finished_jobs_on_its_schedule() -> None:
    backend = InMemoryBackend()
    await enqueue_many(backend, "counted", [1] * 5)
    rex = (
        Rexecutor(backend)
        .with_executor(Counted)
        .with_job_pruner(
            PrunerConfig("* * * * * *").with_pruner(Pruner.max_length(2, JobStatus.COMPLETE))
        )
    )
    async with rex:
        await eventually(lambda: len(Counted.finished) == 5)

        async def pruned() -> bool:
            return len(await backend.query(_all())) == 2

        await eventually(pruned, timeout=5)


def _all() -> Any:
    from rexecutor.query import And

    return And(())


def test_pruning_a_non_terminal_status_is_refused_at_configuration() -> None:
    with pytest.raises(ConfigurationError, match="only complete, cancelled and discarded"):
        Pruner.max_age(timedelta(days=1), JobStatus.EXECUTING)


async def test_jobs_of_a_dead_node_are_rescued() -> None:
    backend = InMemoryBackend()
    [job_id] = await enqueue_many(backend, "counted", [1])
    await backend.record_heartbeat(NodeInfo("dead-node"))
    [claimed] = await backend.claim_ready_jobs("counted", 1, "dead-node")
    rex = Rexecutor(
        backend,
        heartbeat_interval=timedelta(milliseconds=50),
        rescue_after=timedelta(milliseconds=200),
    ).with_executor(Counted)
    async with rex:
        job = await wait_for_status(backend, job_id, JobStatus.COMPLETE, timeout=5)
    assert job.attempt == 2
    assert job.errors[0].error_type is ErrorType.ORPHANED
    assert claimed.attempt == 1


async def test_a_long_job_on_a_live_node_is_never_rescued() -> None:
    backend = InMemoryBackend()
    [job_id] = await enqueue_many(backend, "counted", [600])
    rex = Rexecutor(
        backend,
        heartbeat_interval=timedelta(milliseconds=50),
        rescue_after=timedelta(milliseconds=150),
    ).with_executor(Counted)
    async with rex:
        job = await wait_for_status(backend, job_id, JobStatus.COMPLETE, timeout=5)
    assert (job.attempt, job.errors) == (1, [])


def test_registering_two_executors_with_one_name_is_an_error() -> None:
    class Other(Executor[int, None]):
        name = "counted"

        async def execute(self, job: Job[int, None]) -> None:
            return None

    rex = Rexecutor(InMemoryBackend()).with_executor(Counted).with_executor(Counted)
    with pytest.raises(ConfigurationError, match="already registered"):
        rex.with_executor(Other)


class Mailer(Executor[str, None]):
    name = "mailer"

    def __init__(self, outbox: list[str]) -> None:
        self.outbox = outbox

    async def execute(self, job: Job[str, None]) -> None:
        self.outbox.append(job.data)


async def test_an_executor_instance_carries_its_dependencies() -> None:
    backend = InMemoryBackend()
    outbox: list[str] = []
    async with Rexecutor(backend).with_executor(Mailer(outbox)):
        job_id = await Mailer.builder().with_data("hi").enqueue_to_backend(backend)
        await wait_for_status(backend, job_id, JobStatus.COMPLETE)
    assert outbox == ["hi"]


async def test_run_returns_after_graceful_shutdown() -> None:
    rex = Rexecutor(InMemoryBackend()).with_executor(Counted)
    runner = asyncio.create_task(rex.run())
    await asyncio.sleep(0.05)
    await rex.graceful_shutdown()
    await asyncio.wait_for(runner, 2)
