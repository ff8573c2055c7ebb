"""Claims on PostgreSQL: many nodes at once never share a job, and a claim whose caller is
cancelled hands its jobs back instead of stranding them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rexecutor.backends.postgres import PostgresBackend
from rexecutor.backends.postgres import claims as postgres
from rexecutor.job import JobStatus
from rexecutor.query import And, StatusIn

from ..backends._helpers import new_job

pytestmark = pytest.mark.postgres


async def test_many_nodes_claiming_at_once_never_share_a_job(
    pg: PostgresBackend, postgres_url: str
) -> None:
    await pg.enqueue_many([new_job(data={"i": i}, priority=i % 3) for i in range(600)])
    nodes = [PostgresBackend(postgres_url, migrate=False, max_size=4) for _ in range(4)]
    claimed: dict[int, str] = {}

    async def drain(backend: PostgresBackend, name: str) -> None:
        while batch := await backend.claim_ready_jobs("ex", 7, name):
            for job in batch:
                assert job.id not in claimed, f"{job.id} claimed twice"
                claimed[job.id] = name

    try:
        for node in nodes:
            await node.connect()
        await asyncio.gather(
            *(drain(node, f"node-{i}-{k}") for i, node in enumerate(nodes) for k in range(3))
        )
    finally:
        for node in nodes:
            await node.close()
    assert len(claimed) == 600
    for job in await pg.query(StatusIn((JobStatus.EXECUTING,))):
        assert job.attempted_by == claimed[job.id]
        assert job.attempt == 1


async def test_a_cancelled_claim_hands_its_jobs_back(
    pg: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    await pg.enqueue_many([new_job(data={"i": i}) for i in range(3)])
    committed = asyncio.Event()
    original = postgres._fetchall

    async def slow_fetchall(*args: Any, **kwargs: Any) -> Any:
        rows = await original(*args, **kwargs)
        if args[1] == pg._q["claim"]:
            committed.set()  # the claim has committed; its caller is about to be cancelled
            await asyncio.sleep(0.3)
        return rows

    monkeypatch.setattr(postgres, "_fetchall", slow_fetchall)
    task = asyncio.create_task(pg.claim_ready_jobs("ex", 10, "node-1"))
    await committed.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    monkeypatch.undo()

    jobs = await pg.query(And(()))
    assert [(j.status, j.attempt) for j in jobs] == [(JobStatus.SCHEDULED, 0)] * 3
    assert len(await pg.claim_ready_jobs("ex", 10, "node-2")) == 3
