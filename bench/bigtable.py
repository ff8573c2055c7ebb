"""Big tables (issue 16): claims, pick-up and pruning with millions of finished jobs.

``python -m bench.run --only bigtable`` (PostgreSQL; ``--layout partitioned`` for the
partitioned layout, ``--rows N`` for another size). In every run, against the empty table of
the same run: processing (1 worker process, concurrency 50) and pick-up latency from another
process with the finished jobs in the table; then a steady load on one worker, without and
then during a prune of every filled job, for the workers' throughput and their worst pick-up
and acknowledgement latencies, the prune's duration and its longest transaction (sampled
from ``pg_stat_activity``).

The filled jobs are written by ``INSERT ... SELECT generate_series`` in chunks, with payloads
like an application's (a small JSON object, tags, a node name) and finished times spread
over the 30 days before yesterday, then vacuumed and analysed as autovacuum would.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql

from bench.apps import NAME, BenchJob
from bench.common import Scratch
from bench.inproc import latencies
from bench.stores import PgStore
from bench.workers import Workers
from rexecutor.backend import Backend, PruneSpec
from rexecutor.backends.postgres import partitions
from rexecutor.backends.postgres.partitions import AHEAD_DAYS
from rexecutor.job import JobStatus

#: Rows filled by default, and in a ``--quick`` run.
ROWS = 10_000_000
QUICK_ROWS = 3_000
#: Rows per INSERT while filling.
CHUNK = 1_000_000
#: Days over which the filled jobs finished (ending a day ago): 30 day partitions when
#: partitioned.
DAYS = 30
#: The steady load: jobs enqueued per second, one at a time, for this many seconds (and in a
#: ``--quick`` run).
RATE = 100.0
SECONDS = 20.0
QUICK_SECONDS = 3.0
#: Rows per prune batch (the pruner's default).
BATCH = 1000


async def fill(store: PgStore, rows: int) -> float:
    """Write ``rows`` finished jobs and vacuum-analyse; returns the seconds it took. In the
    partitioned layout their day partitions are made first (else they would all land in the
    live partition, as jobs finished on days without a partition do)."""
    began = time.monotonic()
    async with await psycopg.AsyncConnection.connect(store.url, autocommit=True) as conn:
        jobs = sql.Identifier("public", "rexecutor_jobs")
        if await partitions.is_partitioned(conn, jobs):
            row = await conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date")
            today = (await row.fetchone() or [None])[0]
            first = today - timedelta(days=DAYS + 2)
            await partitions.ensure_ahead(conn, "public", jobs, first, DAYS + 2 + AHEAD_DAYS)
    done = 0
    while done < rows:
        n = min(CHUNK, rows - done)
        store.conn.execute(
            "INSERT INTO rexecutor_jobs (status, executor, data, metadata, attempt, tags, "
            "inserted_at, scheduled_at, attempted_at, completed_at, attempted_by) "
            "SELECT 'complete', %(name)s, jsonb_build_object('user_id', g, 'email', "
            "'user' || g || '@example.com', 'items', jsonb_build_array(g %% 7, g %% 11)), "
            "'null', 1, ARRAY['fill'], t, t, t, t + interval '5 ms', 'node-' || (g %% 4) "
            "FROM (SELECT g, now() - interval '1 day' - "
            "(g %% %(spread)s::bigint) * interval '1 second' AS t "
            "FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g) AS s",
            {"name": NAME, "spread": DAYS * 86400, "first": done + 1, "last": done + n},
        )
        done += n
    store.tidy()
    return time.monotonic() - began


@dataclass
class Steady:
    """What the steady load saw."""

    jobs_s: float
    pickup: dict[str, Any]
    #: The longest time from a job's start (its execute) to its stored completion, ms.
    worst_ack_ms: float
    pickup_max_ms: float


async def steady(
    store: PgStore,
    backend: Backend,
    scratch: Scratch,
    seconds: float,
    during: Any = None,
) -> tuple[Steady, Any]:
    """Enqueue ``RATE`` jobs a second for ``seconds`` to one idle worker process
    (concurrency 50), running the coroutine ``during`` (if any) alongside from the first
    second; returns what the load saw and what ``during`` returned."""
    after = store.max_id()
    ledger = scratch.ledger()
    workers = Workers(store.worker_url, 1, 50, ledger, scratch.path)
    workers.start()
    task: asyncio.Task[Any] | None = None
    try:
        await workers.wait_ready(store)
        enqueued: dict[int, tuple[float, float]] = {}
        start = time.monotonic() + 0.05
        count = int(seconds * RATE)
        for i in range(count):
            if during is not None and task is None and i >= RATE:
                task = asyncio.ensure_future(during)
            delay = start + i / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            called = time.time()
            job_id = await BenchJob.builder().with_data(1).enqueue_to_backend(backend)
            enqueued[int(job_id)] = (called, time.time())
        deadline = time.monotonic() + 300
        while store.count_complete(after) < count:
            workers.alive()
            if time.monotonic() > deadline:
                raise RuntimeError("the steady load did not complete in time")
            await asyncio.sleep(0.05)
        result = await task if task is not None else None
    finally:
        workers.stop()
        if task is not None and not task.done():
            task.cancel()
    pickup = latencies(enqueued, ledger)
    starts = _starts(ledger)
    row = store.conn.execute(
        "SELECT count(*), EXTRACT(EPOCH FROM max(completed_at) - min(attempted_at)) "
        "FROM rexecutor_jobs WHERE id > %s AND status = 'complete'",
        (after,),
    ).fetchone()
    assert row is not None
    completed = store.conn.execute(
        "SELECT id, EXTRACT(EPOCH FROM completed_at) FROM rexecutor_jobs WHERE id > %s",
        (after,),
    ).fetchall()
    acks = [(float(at) - starts[int(i)]) * 1000 for i, at in completed if int(i) in starts]
    picks = [(starts[j] - enqueued[j][1]) * 1000 for j in enqueued]
    return (
        Steady(
            jobs_s=int(row[0]) / float(row[1] or 1.0),
            pickup=pickup,
            worst_ack_ms=max(acks, default=0.0),
            pickup_max_ms=max(picks, default=0.0),
        ),
        result,
    )


def _starts(ledger: str) -> dict[int, float]:
    started: dict[int, float] = {}
    with open(ledger) as f:
        for line in f:
            job_id, moment = line.split()
            started.setdefault(int(job_id), float(moment))
    return started


async def prune_all(store: PgStore, backend: Backend) -> dict[str, float]:
    """Prune every filled job (finished before yesterday), sampling the longest prune
    transaction every 20 ms; returns the jobs pruned, the seconds and that transaction's ms."""
    longest = 0.0
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal longest
        while not stop.is_set():
            row = store.conn.execute(
                "SELECT COALESCE(max(EXTRACT(EPOCH FROM clock_timestamp() - xact_start)), 0) "
                "FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state <> 'idle' "
                "AND (query LIKE '%%DELETE FROM%%' OR query LIKE '%%DETACH%%' "
                "OR query LIKE '%%LOCK TABLE%%' OR query LIKE '%%count(*)%%')"
            ).fetchone()
            longest = max(longest, float(row[0]) if row else 0.0)
            await asyncio.sleep(0.02)

    sampler = asyncio.ensure_future(sample())
    began = time.monotonic()
    try:
        pruned = await backend.prune_jobs(
            PruneSpec(JobStatus.COMPLETE, max_age=timedelta(hours=12)), batch_size=BATCH
        )
    finally:
        stop.set()
        await sampler
    return {"pruned": pruned, "seconds": time.monotonic() - began, "longest_ms": longest * 1000}
