"""pgqueuer through its public API: ``Queries.enqueue`` (lists: one batch insert) and a
``QueueManager`` with one entrypoint, on asyncpg (the driver its documentation starts with).
Runs in the peer's own environment (bench/peers/driver.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from importlib.metadata import version as _version
from typing import Any

import asyncpg
from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager

from bench.peers.driver import record

ENTRYPOINT = "bench_noop"


def version() -> str:
    """The installed pgqueuer version."""
    return _version("pgqueuer")


class Peer:
    """One asyncpg connection, shared by the queries and (in a worker) the queue manager."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None

    async def open(self) -> None:
        self.conn = await asyncpg.connect(self.url)
        self.queries = Queries(AsyncpgDriver(self.conn))

    async def close(self) -> None:
        await self.conn.close()

    async def install(self) -> None:
        await self.queries.install()

    async def bulk(self, payloads: list[dict[str, Any]]) -> None:
        n = len(payloads)
        await self.queries.enqueue(
            [ENTRYPOINT] * n, [json.dumps(p).encode() for p in payloads], [0] * n
        )

    async def one(self, payload: dict[str, Any]) -> None:
        await self.queries.enqueue(ENTRYPOINT, json.dumps(payload).encode())

    async def work(
        self, concurrency: int, ready: Callable[[], None], stop: Awaitable[None]
    ) -> None:
        qm = QueueManager(self.queries)

        @qm.entrypoint(ENTRYPOINT)
        async def noop(job: Job) -> None:
            record(json.loads(job.payload or b"{}"))

        # max_concurrent_tasks is this worker's cap; pgqueuer requires it to be at least twice
        # the dequeue batch, so the batch is concurrency // 2 (default 10 would forbid 10).
        task = asyncio.create_task(
            qm.run(batch_size=max(1, concurrency // 2), max_concurrent_tasks=concurrency)
        )
        ready()
        await asyncio.wait([task, asyncio.ensure_future(stop)], return_when="FIRST_COMPLETED")
        qm.shutdown.set()
        await task
