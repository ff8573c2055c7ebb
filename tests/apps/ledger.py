"""A worker application for the multi-process tests.

Every execution appends ``job_id attempt pid`` to the ledger file named by
``$REXECUTOR_LEDGER``: an account of what ran that does not depend on the queue itself.
``LedgerJob`` sleeps ``data`` ms without blocking; ``HogJob`` blocks the event loop for
``data`` ms, as careless user code would. With ``$CRON`` set, ``TickJob`` is scheduled by it.
With ``$LIMITS`` set, three executors with cross-node limits run too (each sleeps ``data`` ms).
``$POLL_MS`` sets the node's poll interval in ms (default 200).
With ``$PRUNE`` set to an executor's name, its complete jobs are pruned every second.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta

from rexecutor import Backend, Executor, Job, JobStatus, Pruner, PrunerConfig, RateLimit, Rexecutor


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


class HogJob(Executor[int, None]):
    """Blocks the event loop for ``data`` ms (a bug in user code), then records itself."""

    name = "hog"

    async def execute(self, job: Job[int, None]) -> None:
        time.sleep(job.data / 1000)  # noqa: ASYNC251 - the point of this job
        record(job)


class TickJob(Executor[int, None]):
    """Records each cron tick."""

    name = "tick"

    async def execute(self, job: Job[int, None]) -> None:
        record(job)


class _Sleeper(Executor[int, None], abstract=True):
    max_concurrency = 10

    async def execute(self, job: Job[int, None]) -> None:
        await asyncio.sleep(job.data / 1000)
        record(job)


class LimitedJob(_Sleeper):
    """At most 5 executing on all nodes together."""

    name = "limited"
    global_max_concurrency = 5


class TenantJob(_Sleeper):
    """At most 2 executing per partition key on all nodes together."""

    name = "tenant"
    partition_max_concurrency = 2


class RatedJob(_Sleeper):
    """At most 10 starts in any second, on all nodes together."""

    name = "rated"
    rate_limit = RateLimit(allowed=10, period=timedelta(seconds=1))


def _ms(name: str, default: str) -> timedelta:
    return timedelta(milliseconds=float(os.environ.get(name, default)))


def node(backend: Backend) -> Rexecutor:
    """The node every test worker runs."""
    rex = Rexecutor(
        backend,
        heartbeat_interval=_ms("HEARTBEAT_MS", "1000"),
        rescue_after=_ms("RESCUE_MS", "5000"),
        poll_interval=float(os.environ.get("POLL_MS", "200")) / 1000,
        cancel_check_interval=0.1,
    )
    rex.with_executor(LedgerJob).with_executor(HogJob)
    if os.environ.get("LIMITS"):
        rex.with_executor(LimitedJob).with_executor(TenantJob).with_executor(RatedJob)
    if os.environ.get("CRON"):
        rex.with_cron_executor(TickJob, os.environ["CRON"], data=0)
    if os.environ.get("PRUNE"):
        done = Pruner.max_age(timedelta(0), JobStatus.COMPLETE).only(os.environ["PRUNE"])
        rex.with_job_pruner(PrunerConfig("* * * * * *").with_pruner(done))
    return rex
