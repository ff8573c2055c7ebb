"""The sweep repairs a blocked job whose dependency finished without settling it (a write
that a dead process never finished), and leaves the others alone."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rexecutor.backend import EnqueuableJob
from rexecutor.backends import SqliteBackend


async def test_the_sweep_releases_what_a_finished_dependency_left_blocked(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path) as backend:
        jobs = [EnqueuableJob("ex", 0), EnqueuableJob("ex", 0, depends_on=(0,))]
        a, b = (int(r.job_id) for r in await backend.enqueue_many(jobs))
        other = (await backend.enqueue_many(jobs))[1]
        with sqlite3.connect(path) as raw:  # a's completion, its settle never written
            raw.execute("UPDATE jobs SET status = 'complete' WHERE id = ?", (a,))
        assert (await backend.get_job(b)).blocked
        assert await backend.settle_blocked() == 1
        assert not (await backend.get_job(b)).blocked
        assert (await backend.get_job(other.job_id)).blocked  # its dependency has not run
        assert await backend.settle_blocked() == 0
