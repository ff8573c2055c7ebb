"""A workflow enqueued inside the caller's PostgreSQL transaction exists only if it commits."""

from __future__ import annotations

from typing import Any

import psycopg

from rexecutor import Executor, Job, Workflow
from rexecutor.backends import PostgresBackend


class Part(Executor[int, None]):
    name = "wf_part"

    async def execute(self, job: Job[int, None]) -> None:
        return None


def build() -> Workflow:
    wf = Workflow("transactional")
    first = wf.add(Part.builder().with_data(1))
    wf.add_group([Part.builder().with_data(i) for i in range(5)], depends_on=[first])
    return wf


async def test_rollback_leaves_nothing_and_commit_stores_every_step(
    pg: PostgresBackend, postgres_url: str
) -> None:
    async with (
        await psycopg.AsyncConnection.connect(postgres_url) as conn,
        conn.transaction(force_rollback=True),
    ):
        await build().enqueue_to_backend(pg, connection=conn)
    assert await pg.count_jobs() == {}

    wf = build()
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn, conn.transaction():
        ids = await wf.enqueue_to_backend(pg, connection=conn)
    stored: list[Job[Any, Any]] = await pg.workflow_jobs(wf.id)
    assert [int(j.id) for j in stored] == [int(i) for i in ids]
    assert [j.blocked for j in stored] == [False] + [True] * 5
    assert await pg.dependencies(ids) == {int(i): [int(ids[0])] for i in ids[1:]}
