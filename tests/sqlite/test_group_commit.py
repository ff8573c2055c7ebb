"""SQLite only: writes queued together on the database thread share one commit, and one that
fails is undone alone, its caller alone getting the error."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from rexecutor.backend import EnqueuableJob
from rexecutor.backends.sqlite import SqliteBackend
from rexecutor.backends.sqlite.connection import (
    DbThread,
    Outcome,
    Write,
    open_connection,
    transactions,
)
from rexecutor.errors import BackendError


def _table(path: Path) -> sqlite3.Connection:
    conn = open_connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (v TEXT NOT NULL UNIQUE)")
    return conn


def _insert(value: str) -> Write:
    return lambda conn: conn.execute("INSERT INTO t (v) VALUES (?)", (value,)).lastrowid


def _fails(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO t (v) VALUES ('undone')")
    raise ValueError("this write fails after writing")


def test_a_failing_write_is_undone_alone(tmp_path: Path) -> None:
    conn = _table(tmp_path / "t.db")
    work = [_insert("a"), _fails, _insert("b"), _insert("a"), _insert("c")]
    outcomes = transactions(conn, str(tmp_path / "t.db"), 1.0, work)
    assert [type(error) for _, error in outcomes] == [
        type(None),
        ValueError,
        type(None),
        BackendError,  # the duplicate "a", translated as every SQLite error is
        type(None),
    ]
    assert [result for result, _ in outcomes if result is not None] == [1, 2, 3]
    assert not conn.in_transaction
    assert [v for (v,) in conn.execute("SELECT v FROM t ORDER BY rowid")] == ["a", "b", "c"]
    conn.close()


async def test_writes_queued_together_share_one_commit(tmp_path: Path) -> None:
    conn = _table(tmp_path / "t.db")
    groups: list[int] = []

    def writes(work: list[Write]) -> list[Outcome]:
        groups.append(len(work))
        return transactions(conn, str(tmp_path / "t.db"), 1.0, work)

    db = DbThread("test-group", writes)
    release = threading.Event()
    busy = db.call(release.wait)  # holds the thread while the writes queue behind it
    queued = [db.call_write(_insert(v)) for v in ("a", "b", "a", "c")]
    after = db.call(lambda: conn.execute("SELECT count(*) FROM t").fetchone()[0])
    release.set()
    assert await busy is True
    outcomes = await asyncio.gather(*queued, return_exceptions=True)
    assert outcomes[:2] == [1, 2] and outcomes[3] == 3
    assert isinstance(outcomes[2], BackendError)
    assert await after == 3  # a plain call after the group runs once it committed
    assert groups == [4]
    db.stop()
    conn.close()


async def test_concurrent_enqueues_commit_together_with_their_own_results(
    tmp_path: Path,
) -> None:
    # Through the backend: each caller gets the id of its own job.
    async with SqliteBackend(tmp_path / "jobs.db") as backend:
        jobs = [EnqueuableJob("mailer", n) for n in range(30)]
        results = await asyncio.gather(*(backend.enqueue(job) for job in jobs))
        assert sorted(int(r.job_id) for r in results) == list(range(1, 31))
        stored = await asyncio.gather(*(backend.get_job(r.job_id) for r in results))
        assert [job.data for job in stored] == list(range(30))
