"""A worker application for the multi-process tests.

Every execution appends ``job_id attempt pid`` to the ledger file named by
``$REXECUTOR_LEDGER``: an account of what ran that does not depend on the queue itself.
Jobs sleep ``data`` milliseconds.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

from rexecutor import Backend, Executor, Job, Rexecutor


def record(job: Job[int, None]) -> None:
    """Append one line to the ledger (O_APPEND keeps concurrent writers' lines whole)."""
    fd = os.open(os.environ["REXECUTOR_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{int(job.id)} {job.attempt} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


class LedgerJob(Executor[int, None]):
    """Sleeps ``data`` ms, then records itself."""

    name = "ledger"
    max_concurrency = 20

    async def execute(self, job: Job[int, None]) -> None:
        if job.data:
            await asyncio.sleep(job.data / 1000)
        record(job)


def node(backend: Backend) -> Rexecutor:
    """The node every test worker runs."""
    return Rexecutor(
        backend,
        heartbeat_interval=timedelta(milliseconds=float(os.environ.get("HEARTBEAT_MS", "1000"))),
        rescue_after=timedelta(milliseconds=float(os.environ.get("RESCUE_MS", "5000"))),
        poll_interval=0.2,
    ).with_executor(LedgerJob)
