"""The worker application the benchmark runs: one no-op executor.

``BenchJob`` does nothing for data ``0``; for data ``1`` it records the moment ``execute``
started (``time.time()``, the wall clock every process on the machine shares) by appending
``job_id timestamp`` to the file named by ``$BENCH_LEDGER``. Its concurrency limit comes from
``$BENCH_CONCURRENCY`` (default 50).

Run as a worker with the library's own command line::

    python -m rexecutor --backend URL worker bench.apps:node
"""

from __future__ import annotations

import os
import time

from rexecutor import Backend, Executor, Job, Rexecutor

NAME = "bench_noop"


def _concurrency() -> int:
    return int(os.environ.get("BENCH_CONCURRENCY", "50"))


def record(job_id: int, moment: float) -> None:
    """Append one line to the ledger (O_APPEND keeps concurrent writers' lines whole)."""
    fd = os.open(os.environ["BENCH_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{job_id} {moment!r}\n".encode())
    finally:
        os.close(fd)


class BenchJob(Executor[int, None]):
    """A no-op job; data 1 records when execute started."""

    name = NAME
    max_concurrency = _concurrency()

    async def execute(self, job: Job[int, None]) -> None:
        if job.data:
            record(int(job.id), time.time())


def node(backend: Backend) -> Rexecutor:
    """The node every benchmark worker runs: default settings, one executor."""
    return Rexecutor(backend).with_executor(BenchJob)
