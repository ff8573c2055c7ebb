"""awa-pg through its public Python SDK: ``AsyncClient.enqueue_many_copy`` (its COPY bulk
path), ``insert``, and ``start`` with one queue. Runs in the peer's own environment."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from importlib.metadata import version as _version
from typing import Any

import awa

from bench.peers.driver import record

QUEUE = "default"


def version() -> str:
    """The installed awa-pg version."""
    return _version("awa-pg")


@dataclass
class BenchNoop:
    """The job's arguments (awa derives the job kind from the class)."""

    i: int


class Peer:
    """One ``AsyncClient`` (its own connection pool, default size)."""

    def __init__(self, url: str) -> None:
        self.client = awa.AsyncClient(url)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        await self.client.close()

    async def install(self) -> None:
        # migrate() creates the canonical schema; enqueue_many_copy writes into the
        # queue-storage engine, which install_queue_storage() creates and activates.
        await self.client.migrate()
        await self.client.install_queue_storage()

    async def bulk(self, payloads: list[dict[str, Any]]) -> None:
        await self.client.enqueue_many_copy([BenchNoop(**p) for p in payloads], queue=QUEUE)

    async def one(self, payload: dict[str, Any]) -> None:
        await self.client.insert(BenchNoop(**payload), queue=QUEUE)

    async def work(
        self, concurrency: int, ready: Callable[[], None], stop: Awaitable[None]
    ) -> None:
        @self.client.task(BenchNoop, queue=QUEUE)
        async def noop(job: Any) -> None:
            record(asdict(job.args))

        await self.client.start([(QUEUE, concurrency)])
        ready()
        await stop
        await self.client.shutdown()
        # The SDK's shutdown returns once its runtime stopped; give its tasks a turn to finish.
        await asyncio.sleep(0)
