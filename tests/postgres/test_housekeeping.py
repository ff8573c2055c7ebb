"""Pruning and rescue on PostgreSQL: one node at a time, in bounded batches."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from rexecutor.backend import Lease, NodeInfo, PruneSpec
from rexecutor.backends.postgres import PostgresBackend
from rexecutor.errors import JobNotFound
from rexecutor.job import JobStatus
from rexecutor.query import StatusIn

from ..backends._helpers import (
    claim_one,
    enqueue,
    new_job,
    rerun,
    rescue,
)

pytestmark = pytest.mark.postgres

Admin = psycopg.AsyncConnection[Any]


async def _complete_all(backend: PostgresBackend, count: int) -> None:
    await backend.enqueue_many([new_job(data={"i": i}) for i in range(count)])
    while batch := await backend.claim_ready_jobs("ex", 500, "node-1"):
        assert all(await backend.complete_jobs([(j.id, Lease("node-1", j.attempt)) for j in batch]))


async def test_prune_works_through_batches(pg: PostgresBackend) -> None:
    await _complete_all(pg, 2500)
    spec = PruneSpec(JobStatus.COMPLETE, max_length=100)
    assert await pg.prune_jobs(spec, batch_size=1000) == 2400
    remaining = await pg.query(StatusIn((JobStatus.COMPLETE,)))
    assert [j.id for j in remaining] == list(range(2401, 2501))
    assert await pg.prune_jobs(PruneSpec(JobStatus.COMPLETE, max_age=timedelta(0)), 7) == 100


async def test_only_one_node_prunes_at_a_time(pg: PostgresBackend, admin: Admin) -> None:
    await _complete_all(pg, 10)
    spec = PruneSpec(JobStatus.COMPLETE, max_age=timedelta(0))
    key = pg._lock_key("prune")
    await admin.execute("SELECT pg_advisory_lock(%s)", [key])  # another node is pruning
    try:
        assert await pg.prune_jobs(spec) == 0
        assert len(await pg.query(StatusIn((JobStatus.COMPLETE,)))) == 10
    finally:
        await admin.execute("SELECT pg_advisory_unlock(%s)", [key])
    assert await pg.prune_jobs(spec) == 10


async def test_only_one_node_rescues_at_a_time(pg: PostgresBackend, admin: Admin) -> None:
    await pg.record_heartbeat(NodeInfo("dead-node"))
    await enqueue(pg)
    job, _ = await claim_one(pg, node="dead-node")
    key = pg._lock_key("rescue")
    await admin.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        assert await rescue(pg, timedelta(0)) == []
        assert (await pg.get_job(job.id)).status is JobStatus.EXECUTING
    finally:
        await admin.execute("SELECT pg_advisory_unlock(%s)", [key])
    assert await rescue(pg, timedelta(0)) == [job.id]


async def test_concurrent_rescues_hand_each_job_back_once(pg: PostgresBackend) -> None:
    await pg.enqueue_many([new_job() for _ in range(20)])
    await pg.record_heartbeat(NodeInfo("dead-node"))
    claimed = await pg.claim_ready_jobs("ex", 20, "dead-node")
    results = await asyncio.gather(*(rescue(pg, timedelta(0)) for _ in range(5)))
    rescued = [job_id for batch in results for job_id in batch]
    assert sorted(rescued) == sorted(j.id for j in claimed)
    for job in await pg.query(StatusIn((JobStatus.RETRYABLE,))):
        assert len(job.errors) == 1


async def test_prune_never_deletes_a_job_rerun_meanwhile(pg: PostgresBackend) -> None:
    await _complete_all(pg, 50)
    spec = PruneSpec(JobStatus.COMPLETE, max_age=timedelta(0))

    async def rerun_one(job_id: int) -> None:
        with contextlib.suppress(JobNotFound):  # pruned first: fine too
            await rerun(pg, job_id)

    reruns = asyncio.gather(*(rerun_one(i) for i in range(1, 51, 5)))
    deleted, _ = await asyncio.gather(pg.prune_jobs(spec, batch_size=3), reruns)
    survivors = await pg.query(StatusIn((JobStatus.SCHEDULED, JobStatus.RETRYABLE)))
    assert deleted + len(survivors) == 50
