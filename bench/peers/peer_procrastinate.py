"""procrastinate through its public API: ``Task.batch_defer_async`` / ``defer_async`` and
``App.run_worker_async``, on its psycopg connector. Runs in the peer's own environment."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from importlib.metadata import version as _version
from typing import Any

import procrastinate

from bench.peers.driver import record


def version() -> str:
    """The installed procrastinate version."""
    return _version("procrastinate")


class Peer:
    """One ``App`` with one task, ``bench_noop``."""

    def __init__(self, url: str) -> None:
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

        @self.app.task(name="bench_noop")
        async def noop(i: int) -> None:
            record({"i": i})

        self.task = noop

    async def open(self) -> None:
        await self.app.open_async()

    async def close(self) -> None:
        await self.app.close_async()

    async def install(self) -> None:
        await self.app.schema_manager.apply_schema_async()

    async def bulk(self, payloads: list[dict[str, Any]]) -> None:
        await self.task.batch_defer_async(*payloads)

    async def one(self, payload: dict[str, Any]) -> None:
        await self.task.defer_async(**payload)

    async def work(
        self, concurrency: int, ready: Callable[[], None], stop: Awaitable[None]
    ) -> None:
        worker = asyncio.create_task(
            self.app.run_worker_async(concurrency=concurrency, install_signal_handlers=False)
        )
        ready()
        await asyncio.wait([worker, asyncio.ensure_future(stop)], return_when="FIRST_COMPLETED")
        # Cancelling run_worker_async is its documented graceful stop (running jobs finish).
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
