"""Polling helpers: wait for a condition instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rexecutor import Job, JobStatus
from rexecutor.backend import Backend


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0) -> None:
    """Wait until ``check()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)


async def wait_for_status(
    backend: Backend, job_id: int, *statuses: JobStatus, timeout: float = 10.0
) -> Job[Any, Any]:
    """Wait until the job has one of ``statuses``; returns it."""

    async def reached() -> bool:
        job = await backend.get_job(job_id)
        # A freshly enqueued job is already SCHEDULED: wait for an attempt when asked for it.
        attempted = job.attempted_at is not None or JobStatus.SCHEDULED not in statuses
        return job.status in statuses and attempted

    await eventually(reached, timeout)
    return await backend.get_job(job_id)
