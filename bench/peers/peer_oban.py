"""oban-py (PyPI ``oban``) through its public API: ``Oban.enqueue_many`` / ``enqueue`` and an
``Oban`` instance with one queue, on the psycopg pool ``Oban.create_pool`` makes. Needs Python
3.12 or later (its own requirement). Runs in the peer's own environment."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.metadata import version as _version
from typing import Any

from oban import Oban, worker
from oban.schema import install

from bench.peers.driver import record

QUEUE = "default"


def version() -> str:
    """The installed oban version."""
    return _version("oban")


@worker(queue=QUEUE)
class BenchNoop:
    """The no-op worker (oban finds it by its module path in the worker process)."""

    async def process(self, job: Any) -> None:
        record(job.args)


class Peer:
    """A client-mode ``Oban`` (no queues) for enqueueing; a worker starts a server-mode one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool: Any = None

    async def open(self) -> None:
        self.pool = await Oban.create_pool(dsn=self.url)
        self.oban = Oban(pool=self.pool)

    async def close(self) -> None:
        await self.pool.close()

    async def install(self) -> None:
        await install(self.pool)

    async def bulk(self, payloads: list[dict[str, Any]]) -> None:
        await self.oban.enqueue_many([BenchNoop.new(p) for p in payloads])

    async def one(self, payload: dict[str, Any]) -> None:
        await self.oban.enqueue(BenchNoop.new(payload))

    async def work(
        self, concurrency: int, ready: Callable[[], None], stop: Awaitable[None]
    ) -> None:
        server = Oban(pool=self.pool, queues={QUEUE: concurrency})
        await server.start()
        ready()
        await stop
        await server.stop()
