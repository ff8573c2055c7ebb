"""Bulk enqueue and claiming at volume: 10,000 jobs in one call, and a claim that stays on its
index however many finished jobs pile up."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from rexecutor.backend import Lease
from rexecutor.backends.postgres import PostgresBackend
from rexecutor.backends.postgres.enqueue import COPY_AT_LEAST
from rexecutor.errors import ValidationError
from rexecutor.job import JobStatus
from rexecutor.query import StatusIn, Where
from rexecutor.uniqueness import UniquenessCriteria

from ..backends._helpers import find, new_job, utcnow

pytestmark = pytest.mark.postgres

N = 10_000


async def test_enqueue_many_of_ten_thousand_jobs(pg: PostgresBackend, capsys: Any) -> None:
    later = utcnow() + timedelta(hours=1)
    jobs = [
        new_job(
            f"ex-{i % 3}",
            {"i": i, "text": "x" * (i % 50)},
            metadata={"m": i} if i % 2 else None,
            tags=(f"t{i % 7}", "bulk")[: 1 + i % 2],
            priority=i % 5,
            max_attempts=1 + i % 9,
            scheduled_at=later if i % 4 == 0 else None,
        )
        for i in range(N)
    ]
    start = time.perf_counter()
    results = await pg.enqueue_many(jobs)
    elapsed = time.perf_counter() - start

    assert len(results) == N
    assert [r.job_id for r in results] == sorted(r.job_id for r in results)
    assert len({r.job_id for r in results}) == N
    assert not any(r.duplicate for r in results)
    stored = {job.id: job for job in await pg.query(StatusIn((JobStatus.SCHEDULED,)))}
    assert len(stored) == N
    for result, job in zip(results, jobs, strict=True):
        row = stored[result.job_id]
        assert (row.executor, row.data, row.metadata, tuple(row.tags)) == (
            job.executor,
            job.data,
            job.metadata,
            job.tags,
        )
        assert (row.priority, row.max_attempts) == (job.priority, job.max_attempts)
        if job.scheduled_at is not None:
            assert row.scheduled_at == job.scheduled_at
    with capsys.disabled():
        print(f"\nenqueue_many: {N} jobs in {elapsed:.3f} s ({N / elapsed:,.0f} jobs/s)")


async def test_a_batch_stored_by_copy_joins_the_callers_transaction_and_wakes_on_commit(
    pg: PostgresBackend, postgres_url: str, admin: psycopg.AsyncConnection[Any]
) -> None:
    size = COPY_AT_LEAST + 20
    await admin.execute('LISTEN "public_rexecutor_jobs"')
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        async with conn.transaction(force_rollback=True):
            await pg.enqueue_many([new_job("copied") for _ in range(size)], connection=conn)
            assert await find(pg, Where.everything()) == []  # not committed
        assert await find(pg, Where.everything()) == []  # rolled back
        async with conn.transaction():
            results = await pg.enqueue_many(
                [new_job("copied", {"i": i}) for i in range(size)], connection=conn
            )
    stored = await find(pg, Where.everything())
    assert sorted(stored) == [r.job_id for r in results]
    notes = [n.payload async for n in admin.notifies(timeout=10, stop_after=1)]
    assert notes == ["copied"]  # one notification for the whole batch, at its commit


async def test_a_refused_job_in_a_large_batch_leaves_the_callers_transaction_usable(
    pg: PostgresBackend, postgres_url: str
) -> None:
    jobs = [new_job("copied", {"i": i}) for i in range(COPY_AT_LEAST + 20)]
    jobs[-1] = new_job("copied", {"bad": float("inf")})
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn, conn.transaction():
        [kept] = await pg.enqueue_many([new_job("kept")], connection=conn)
        with pytest.raises(ValidationError, match="Infinity"):
            await pg.enqueue_many(jobs, connection=conn)
        # Refused before anything was sent: the transaction is not aborted.
        assert conn.info.transaction_status is psycopg.pq.TransactionStatus.INTRANS
    assert await find(pg, Where.everything()) == [kept.job_id]


async def test_enqueue_many_mixing_unique_and_plain_jobs(pg: PostgresBackend) -> None:
    # Odd positions are unique over 100 keys, first seen at positions below 200.
    jobs = [
        new_job(
            data={"i": i},
            uniqueness=UniquenessCriteria.by_key((i // 2) % 100) if i % 2 else None,
        )
        for i in range(2000)
    ]
    results = await pg.enqueue_many(jobs)
    assert sum(not r.duplicate for r in results) == 1000 + 100
    first_of_key: dict[int, int] = {}
    for i, result in enumerate(results):
        if i % 2:
            expected = first_of_key.setdefault((i // 2) % 100, result.job_id)
            assert result.job_id == expected
            assert result.duplicate == (i >= 200)
        else:
            assert not result.duplicate
    ids = [r.job_id for r in results if not r.duplicate]
    assert ids == sorted(ids)


async def test_claim_and_complete_throughput(pg: PostgresBackend, capsys: Any) -> None:
    await pg.enqueue_many([new_job(data={"i": i}) for i in range(5000)])
    start = time.perf_counter()
    claimed = 0
    statements = 0
    while True:
        batch = await pg.claim_ready_jobs("ex", 100, "node-1")
        statements += 1
        if not batch:
            break
        claimed += len(batch)
        done = await pg.complete_jobs([(j.id, Lease("node-1", j.attempt)) for j in batch])
        assert all(done)
    elapsed = time.perf_counter() - start
    assert claimed == 5000

    await pg.enqueue_many([new_job(data={"i": i}) for i in range(1000)])
    start = time.perf_counter()
    for _ in range(1000):
        assert len(await pg.claim_ready_jobs("ex", 1, "node-1")) == 1
    single = time.perf_counter() - start  # seconds for 1000 claims = ms per claim
    with capsys.disabled():
        print(
            f"\nclaim(limit=100) + complete_jobs(100): {claimed} jobs in {elapsed:.3f} s "
            f"({claimed / elapsed:,.0f} jobs/s); claim(limit=1): {single:.3f} ms per claim"
        )


async def test_claim_uses_the_ready_index_among_many_finished_jobs(
    pg: PostgresBackend, admin: psycopg.AsyncConnection[Any], capsys: Any
) -> None:
    await admin.execute(
        "INSERT INTO public.rexecutor_jobs (executor, status, data, attempt, attempted_by, "
        "attempted_at, completed_at) SELECT 'ex', 'complete', '{}', 1, 'n', now(), now() "
        "FROM generate_series(1, 200000)"
    )
    await pg.enqueue_many([new_job(data={"i": i}) for i in range(100)])
    await admin.execute("ANALYZE public.rexecutor_jobs")
    cur = await admin.execute(
        "EXPLAIN SELECT id FROM public.rexecutor_jobs WHERE executor = 'ex' "
        "AND status IN ('scheduled', 'retryable') AND scheduled_at <= now() "
        "ORDER BY priority, scheduled_at, id LIMIT 10 FOR UPDATE SKIP LOCKED"
    )
    plan = "\n".join(row[0] for row in await cur.fetchall())
    # Either index reaches the ready rows without visiting the finished ones; the planner
    # picks between them by its statistics.
    assert "Seq Scan" not in plan, plan
    assert "rexecutor_jobs_ready_idx" in plan or "rexecutor_jobs_executor_status_idx" in plan, plan

    start = time.perf_counter()
    for _ in range(50):
        batch = await pg.claim_ready_jobs("ex", 2, "node-1")
        assert len(batch) == 2
    per_claim = (time.perf_counter() - start) / 50
    with capsys.disabled():
        print(f"\nclaim among 200,000 finished jobs: {per_claim * 1000:.2f} ms per claim")
