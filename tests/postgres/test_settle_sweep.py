"""The sweep repairs a blocked job whose dependency finished without settling it (a node that
died between the two writes), and leaves the others alone."""

from __future__ import annotations

import psycopg

from rexecutor.backend import EnqueuableJob
from rexecutor.backends.postgres import PostgresBackend


async def test_the_sweep_releases_what_a_finished_dependency_left_blocked(
    pg: PostgresBackend, admin: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    jobs = [EnqueuableJob("ex", 0), EnqueuableJob("ex", 0, depends_on=(0,))]
    a, b = (int(r.job_id) for r in await pg.enqueue_many(jobs))
    other = (await pg.enqueue_many(jobs))[1]
    # a's completion, its settle never written (rexecutor_jobs on the fixture's public schema)
    await admin.execute("UPDATE rexecutor_jobs SET status = 'complete' WHERE id = %s", [a])
    assert (await pg.get_job(b)).blocked
    assert await pg.settle_blocked() == 1
    assert not (await pg.get_job(b)).blocked
    assert (await pg.get_job(other.job_id)).blocked
    assert await pg.settle_blocked() == 0
