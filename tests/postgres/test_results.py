"""PostgreSQL: a rerun clears the stored result and progress columns, read from the table."""

from __future__ import annotations

import psycopg
from psycopg import sql

from rexecutor import admin as admin_ops
from rexecutor.backend import Completion, EnqueuableJob, Lease
from rexecutor.backends.postgres import PostgresBackend

PROGRESS = {"percent": 100, "message": "done", "at": None}


def _jobs(pg: PostgresBackend) -> sql.Identifier:
    return sql.Identifier(pg.schema, "rexecutor_jobs")


async def _columns(
    conn: psycopg.AsyncConnection[tuple[object, ...]], pg: PostgresBackend, job_id: int
) -> tuple[object, ...] | None:
    query = sql.SQL("SELECT result, progress FROM {} WHERE id = %s").format(_jobs(pg))
    cursor = await conn.execute(query, (job_id,))
    return await cursor.fetchone()


async def test_a_rerun_clears_result_and_progress(
    pg: PostgresBackend, admin: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    await pg.enqueue(EnqueuableJob("ex", {}))
    [job] = await pg.claim_ready_jobs("ex", 1, "node-a")
    done = Completion(job.id, Lease("node-a", job.attempt), '{"n":1}')
    assert await pg.complete_jobs([done]) == [True]
    # What a progress report leaves behind.
    await admin.execute(
        sql.SQL("UPDATE {} SET progress = %s::jsonb WHERE id = %s").format(_jobs(pg)),
        ('{"percent":100,"message":"done","at":null}', int(job.id)),
    )
    assert await _columns(admin, pg, job.id) == ({"n": 1}, PROGRESS)
    await admin_ops.rerun(pg, job.id)
    assert await _columns(admin, pg, job.id) == (None, None)
