"""Synchronous helpers for process tests: seed jobs and read the queue through a backend URL."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rexecutor import Job, JobStatus, Where
from rexecutor.backend import Backend, EnqueuableJob
from rexecutor.backends import backend_from_url

T = TypeVar("T")


def with_backend(url: str, action: Callable[[Backend], Awaitable[T]]) -> T:
    """Connect to ``url``, run ``action``, close."""

    async def run() -> T:
        backend = backend_from_url(url)
        async with backend:
            return await action(backend)

    return asyncio.run(run())


def seed(url: str, executor: str, count: int, data: Any = 0, **fields: Any) -> list[int]:
    """Enqueue ``count`` jobs; returns their ids."""

    async def action(backend: Backend) -> list[int]:
        ids: list[int] = []
        for start in range(0, count, 1000):
            batch = [EnqueuableJob(executor, data, **fields)] * min(1000, count - start)
            ids += [int(r.job_id) for r in await backend.enqueue_many(batch)]
        return ids

    return with_backend(url, action)


def jobs(url: str) -> list[Job[Any, Any]]:
    """Every stored job, oldest first."""
    return with_backend(url, lambda b: b.query(Where.everything().node))


def statuses(url: str) -> Counter[JobStatus]:
    """How many jobs are in each status."""
    return Counter(j.status for j in jobs(url))
