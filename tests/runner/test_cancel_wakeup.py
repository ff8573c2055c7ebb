"""A cancel reaches the node running the job at once, not at its next periodic check,
on every backend (PostgreSQL through a notification from another connection)."""

from __future__ import annotations

import asyncio
import time

from rexecutor import Executor, Job, JobStatus, Rexecutor
from rexecutor.backend import Backend
from tests.support.waiting import eventually, wait_for_status


class Endless(Executor[None, None]):
    name = "endless"
    running = 0

    async def execute(self, job: Job[None, None]) -> None:
        type(self).running += 1
        try:
            await asyncio.sleep(60)
        finally:
            type(self).running -= 1


async def test_a_cancel_from_elsewhere_stops_the_job_without_waiting_for_a_poll(
    backend: Backend,
) -> None:
    other = backend.for_thread()  # PostgreSQL: another pool, so the cancel arrives by NOTIFY
    await other.connect()
    try:
        async with Rexecutor(backend, cancel_check_interval=60).with_executor(Endless):
            job_id = await Endless.builder().enqueue_to_backend(backend)
            await wait_for_status(backend, job_id, JobStatus.EXECUTING)
            await eventually(lambda: Endless.running == 1)
            started = time.monotonic()
            assert await Endless.cancel_job_on_backend(job_id, "stop", other)
            await eventually(lambda: Endless.running == 0, timeout=5)
            assert time.monotonic() - started < 5
    finally:
        if other is not backend:
            await other.close()
    assert (await backend.get_job(job_id)).status is JobStatus.CANCELLED
