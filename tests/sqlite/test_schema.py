"""SQLite only: the schema is created, versioned and migrated on connect, and never downgraded."""

from __future__ import annotations

import sqlite3
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from rexecutor._payload import EARLIEST, LATEST
from rexecutor.backend import EnqueuableJob
from rexecutor.backends.sqlite import SCHEMA_VERSION, SqliteBackend
from rexecutor.errors import BackendError, SchemaVersionError
from rexecutor.query import Where


def _pragma(path: Path, name: str) -> object:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def _names(path: Path, kind: str) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_schema WHERE type = ?", (kind,)).fetchall()
    return {r[0] for r in rows}


async def test_connect_creates_a_fresh_file_with_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path) as backend:
        # Durability: every commit is synced (FULL = 2), not only at checkpoints.
        assert (
            await backend._call_read(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == 2
        )
    assert _pragma(path, "user_version") == SCHEMA_VERSION
    assert _pragma(path, "journal_mode") == "wal"
    assert {"jobs", "nodes"} <= _names(path, "table")
    assert {"jobs_ready", "jobs_due", "jobs_finished", "jobs_uniqueness"} <= _names(path, "index")


async def test_a_new_file_is_private_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_reopening_keeps_jobs_and_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path) as backend:
        first = (await backend.enqueue(EnqueuableJob("ex", {"n": 1}))).job_id
    schema_before = _names(path, "index") | _names(path, "table")
    async with SqliteBackend(path) as backend:
        assert (await backend.get_job(first)).data == {"n": 1}
        second = (await backend.enqueue(EnqueuableJob("ex", {"n": 2}))).job_id
    assert second > first
    assert _pragma(path, "user_version") == SCHEMA_VERSION
    assert _names(path, "index") | _names(path, "table") == schema_before


async def test_ids_are_never_reused_after_the_newest_job_is_deleted(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path) as backend:
        newest = (await backend.enqueue(EnqueuableJob("ex", {}))).job_id
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM jobs WHERE id = ?", (newest,))
    async with SqliteBackend(path) as backend:
        assert (await backend.enqueue(EnqueuableJob("ex", {}))).job_id > newest


async def test_connect_is_idempotent_and_close_then_connect_works(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "jobs.db")
    await backend.connect()
    await backend.connect()
    job_id = (await backend.enqueue(EnqueuableJob("ex", {}))).job_id
    await backend.close()
    await backend.close()
    with pytest.raises(BackendError, match="not connected"):
        await backend.get_job(job_id)
    await backend.connect()
    try:
        assert (await backend.get_job(job_id)).id == job_id
    finally:
        await backend.close()


async def test_close_ends_the_backends_threads(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "jobs.db"
    backend = SqliteBackend(path)
    await backend.connect()
    sub = backend.subscribe(["ex"])
    assert [t for t in threading.enumerate() if str(path) in t.name]
    sub.close()
    await backend.close()
    for thread in [t for t in threading.enumerate() if str(path) in t.name]:
        thread.join(5)
    assert not [t for t in threading.enumerate() if str(path) in t.name]


async def test_a_newer_schema_is_refused_and_the_file_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, future_column TEXT)")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 7}")
    conn.close()
    before = path.read_bytes()

    with pytest.raises(SchemaVersionError) as info:
        await SqliteBackend(path).connect()

    message = str(info.value)
    assert str(path) in message
    assert str(SCHEMA_VERSION + 7) in message and str(SCHEMA_VERSION) in message
    assert path.read_bytes() == before
    assert not (tmp_path / "jobs.db-wal").exists()


async def test_migrate_false_refuses_a_file_without_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with pytest.raises(SchemaVersionError, match="migrate=True"):
        await SqliteBackend(path, migrate=False).connect()
    async with SqliteBackend(path):
        pass
    async with SqliteBackend(path, migrate=False) as backend:
        await backend.enqueue(EnqueuableJob("ex", {}))


async def test_a_database_of_another_application_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE jobs (title TEXT)")
    conn.close()
    with pytest.raises(BackendError, match="did not create") as info:
        await SqliteBackend(path).connect()
    assert str(path) in str(info.value)
    assert _pragma(path, "user_version") == 0


async def test_two_backends_migrating_one_new_file_at_once(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "jobs.db"
    first, second = SqliteBackend(path), SqliteBackend(path)
    await asyncio.gather(first.connect(), second.connect())
    try:
        await first.enqueue(EnqueuableJob("ex", {}))
        assert len(await second.query(Where.everything().node)) == 1
    finally:
        await first.close()
        await second.close()


# -- storage details ------------------------------------------------------------------------


async def test_times_are_integer_microseconds_and_read_back_as_aware_utc(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    paris = timezone(timedelta(hours=2))
    moment = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=paris)
    async with SqliteBackend(path) as backend:
        job_id = (await backend.enqueue(EnqueuableJob("ex", {}, scheduled_at=moment))).job_id
        job = await backend.get_job(job_id)
    assert job.scheduled_at == moment
    assert job.scheduled_at.tzinfo is UTC
    with sqlite3.connect(path) as conn:
        stored = conn.execute("SELECT scheduled_at FROM jobs WHERE id = ?", (job_id,)).fetchone()
    assert stored[0] == (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@pytest.mark.parametrize(
    "moment",
    [
        EARLIEST,
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        LATEST,
    ],
)
async def test_extreme_times_round_trip_and_compare(tmp_path: Path, moment: datetime) -> None:
    async with SqliteBackend(tmp_path / "jobs.db") as backend:
        job_id = (await backend.enqueue(EnqueuableJob("ex", {}, scheduled_at=moment))).job_id
        assert (await backend.get_job(job_id)).scheduled_at == moment
        found = await backend.query(Where.scheduled_at_equals(moment).node)
        assert [j.id for j in found] == [job_id]


async def test_data_is_stored_as_canonical_json(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path) as backend:
        await backend.enqueue(EnqueuableJob("ex", {"b": 1, "a": {"d": None, "c": "é"}}))
    with sqlite3.connect(path) as conn:
        data, metadata, tags, errors = conn.execute(
            "SELECT data, metadata, tags, errors FROM jobs"
        ).fetchone()
    assert data == '{"a":{"c":"é","d":null},"b":1}'
    assert (metadata, tags, errors) == ("null", "[]", "[]")


async def test_integral_floats_equal_integers_in_queries_and_round_trip(tmp_path: Path) -> None:
    async with SqliteBackend(tmp_path / "jobs.db") as backend:
        floats = (await backend.enqueue(EnqueuableJob("ex", {"v": 1.0}, metadata=[2.0]))).job_id
        ints = (await backend.enqueue(EnqueuableJob("ex", {"v": 1}, metadata=[2]))).job_id
        half = (await backend.enqueue(EnqueuableJob("ex", {"v": 1.5}))).job_id
        flag = (await backend.enqueue(EnqueuableJob("ex", {"v": True}))).job_id

        async def found(where: Where[object, object]) -> list[int]:
            return [int(j.id) for j in await backend.query(where.node)]

        assert await found(Where.data_equals({"v": 1})) == [floats, ints]
        assert await found(Where.data_equals({"v": 1.0})) == [floats, ints]
        assert await found(Where.metadata_equals([2])) == [floats, ints]
        assert await found(Where.data_equals({"v": 1.5})) == [half]
        assert await found(Where.data_equals({"v": True})) == [flag]
        stored = await backend.get_job(floats)
        assert isinstance(stored.data["v"], float)

        stored.data = {"v": 3.0}
        await backend.update_job(stored)
        assert await found(Where.data_equals({"v": 3})) == [floats]
        assert await found(Where.data_equals({"v": 1})) == [ints]


async def test_claim_and_housekeeping_queries_use_their_indexes(tmp_path: Path) -> None:
    from rexecutor.backends.sqlite.statements import CLAIM, READY_SQL

    path = tmp_path / "jobs.db"
    async with SqliteBackend(path):
        pass
    with sqlite3.connect(path) as conn:
        claim = conn.execute("EXPLAIN QUERY PLAN " + CLAIM, (0, "n", "ex", 0, 10)).fetchall()
        assert any("jobs_ready" in row[3] for row in claim), claim
        assert not any("TEMP B-TREE" in row[3] for row in claim), claim
        due = conn.execute(
            "EXPLAIN QUERY PLAN SELECT MIN(scheduled_at) FROM jobs "
            f"WHERE executor = ? AND {READY_SQL}",
            ("ex",),
        ).fetchall()
        assert any("jobs_due" in row[3] for row in due), due
