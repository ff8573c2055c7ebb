"""SQLite: a rerun clears the stored result and progress columns, read from the file itself."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rexecutor import admin
from rexecutor.backend import Completion, EnqueuableJob, Lease
from rexecutor.backends.sqlite import SqliteBackend


def _columns(path: Path, job_id: int) -> tuple[object, object]:
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT result, progress FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return row[0], row[1]


async def test_a_rerun_clears_result_and_progress(tmp_path: Path) -> None:
    async with SqliteBackend(tmp_path / "jobs.db") as backend:
        await backend.enqueue(EnqueuableJob("ex", {}))
        [job] = await backend.claim_ready_jobs("ex", 1, "node-a")
        done = Completion(job.id, Lease("node-a", job.attempt), '{"n":1}')
        assert await backend.complete_jobs([done]) == [True]
        with sqlite3.connect(backend.path) as conn:
            # What a progress report leaves behind.
            conn.execute(
                "UPDATE jobs SET progress = ? WHERE id = ?",
                ('{"percent":100,"message":"done","at":null}', int(job.id)),
            )
        assert _columns(backend.path, job.id) == (
            '{"n":1}',
            '{"percent":100,"message":"done","at":null}',
        )
        await admin.rerun(backend, job.id)
        assert _columns(backend.path, job.id) == (None, None)
