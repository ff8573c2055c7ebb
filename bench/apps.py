"""The worker application the benchmark runs: one no-op executor.

``BenchJob`` does nothing for data ``0``; for data ``1`` it records the moment ``execute``
started (``time.time()``, the wall clock every process on the machine shares) by appending
``job_id timestamp`` to the file named by ``$BENCH_LEDGER``. Its concurrency limit comes from
``$BENCH_CONCURRENCY`` (default 50). Its cross-node limits come from ``$BENCH_GLOBAL_MAX``,
``$BENCH_PARTITION_MAX`` and ``$BENCH_RATE`` (``allowed/seconds``), each unset by default
(bench/limits.py sets them on its workers).

Run as a worker with the library's own command line::

    python -m rexecutor --backend URL worker bench.apps:node
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

from rexecutor import Backend, Executor, Job, RateLimit, Rexecutor

NAME = "bench_noop"


def _concurrency() -> int:
    return int(os.environ.get("BENCH_CONCURRENCY", "50"))


def _limit(variable: str) -> int | None:
    value = os.environ.get(variable)
    return int(value) if value else None


def _rate() -> RateLimit | None:
    value = os.environ.get("BENCH_RATE")
    if not value:
        return None
    allowed, _, seconds = value.partition("/")
    return RateLimit(allowed=int(allowed), period=timedelta(seconds=float(seconds)))


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
    global_max_concurrency = _limit("BENCH_GLOBAL_MAX")
    partition_max_concurrency = _limit("BENCH_PARTITION_MAX")
    rate_limit = _rate()

    async def execute(self, job: Job[int, None]) -> None:
        if job.data:
            record(int(job.id), time.time())


def node(backend: Backend) -> Rexecutor:
    """The node every benchmark worker runs: default settings, one executor."""
    return Rexecutor(backend).with_executor(BenchJob)
