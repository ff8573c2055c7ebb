"""SQLite only: bad paths, foreign files, permissions and locks give clear ``BackendError``s."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from rexecutor.backend import EnqueuableJob, NodeInfo
from rexecutor.backends.sqlite import SqliteBackend
from rexecutor.errors import BackendError

NOBODY = 65534


async def _connect_error(path: Path | str, **options: object) -> BackendError:
    backend = SqliteBackend(path, **options)  # type: ignore[arg-type]
    with pytest.raises(BackendError) as info:
        await backend.connect()
    await backend.close()
    return info.value


async def test_a_path_in_a_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "jobs.db"
    error = await _connect_error(path)
    assert str(path) in str(error)
    assert "does not exist" in str(error) and "Create it" in str(error)
    assert not path.parent.exists()


async def test_a_path_that_is_a_directory(tmp_path: Path) -> None:
    error = await _connect_error(tmp_path)
    assert str(tmp_path) in str(error) and "is a directory" in str(error)


@pytest.mark.parametrize(
    "content",
    [b"this is a text file, not a database\n" * 200, b"SQLite format 3\x00" + b"\xff" * 4000],
)
async def test_a_file_that_is_not_a_sqlite_database(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    error = await _connect_error(path)
    assert str(path) in str(error)
    assert "not a SQLite database" in str(error) or "corrupt" in str(error)
    assert isinstance(error.__cause__, sqlite3.DatabaseError)
    assert path.read_bytes() == content


async def test_methods_before_connect_raise_a_clear_error(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "jobs.db")
    with pytest.raises(BackendError, match=r"connect\(\)"):
        await backend.enqueue(EnqueuableJob("ex", {}))


# -- permissions ------------------------------------------------------------------------------
#
# Root ignores permission bits, so as root these checks run in a forked child that has dropped
# to an unprivileged user (everything it needs is already imported before the fork).


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's tmp_path is private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="rexecutor-sqlite-"))
    directory.chmod(0o777)
    try:
        yield directory
    finally:
        for path in [directory, *directory.iterdir()]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        shutil.rmtree(directory)


def _unprivileged(check: Callable[[], str]) -> str:
    """Run ``check`` as a user that permission bits apply to; return what it returns."""
    if os.geteuid() != 0:
        return check()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child process
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            outcome = check()
        except BaseException as exc:
            outcome = f"child failed: {exc!r}"
        os.write(write_end, outcome.encode())
        os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def _connect_and_enqueue(path: Path) -> Callable[[], str]:
    def check() -> str:
        async def attempt() -> str:
            backend = SqliteBackend(path)
            try:
                await backend.connect()
                await backend.enqueue(EnqueuableJob("ex", {}))
            except BackendError as exc:
                return f"BackendError: {exc}"
            finally:
                await backend.close()
            return "no error"

        return asyncio.run(attempt())

    return check


async def _make_database(path: Path) -> None:
    async with SqliteBackend(path) as backend:
        await backend.enqueue(EnqueuableJob("ex", {}))


def test_a_read_only_file(shared_dir: Path) -> None:
    path = shared_dir / "jobs.db"
    asyncio.run(_make_database(path))
    path.chmod(0o444)
    outcome = _unprivileged(_connect_and_enqueue(path))
    assert outcome.startswith("BackendError"), outcome
    assert str(path) in outcome and "read-only" in outcome


def test_a_read_only_directory(shared_dir: Path) -> None:
    path = shared_dir / "jobs.db"
    asyncio.run(_make_database(path))
    path.chmod(0o666)
    shared_dir.chmod(0o555)
    outcome = _unprivileged(_connect_and_enqueue(path))
    assert outcome.startswith("BackendError"), outcome
    assert str(path) in outcome and "not writable" in outcome and "-wal" in outcome


def test_a_new_file_in_a_read_only_directory(shared_dir: Path) -> None:
    shared_dir.chmod(0o555)
    path = shared_dir / "jobs.db"
    outcome = _unprivileged(_connect_and_enqueue(path))
    assert outcome.startswith("BackendError"), outcome
    assert str(path) in outcome and "not writable" in outcome
    assert not path.exists()


# -- locks ------------------------------------------------------------------------------------


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


async def test_a_lock_held_beyond_the_busy_timeout_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path, busy_timeout=timedelta(milliseconds=200)) as backend:
        job_id = (await backend.enqueue(EnqueuableJob("ex", {}))).job_id
        holder = _hold_write_lock(path)
        try:
            started = time.monotonic()
            with pytest.raises(BackendError) as info:
                await backend.enqueue(EnqueuableJob("ex", {}))
            waited = time.monotonic() - started
            for attempt in (
                backend.claim_ready_jobs("ex", 1, "node"),
                backend.record_heartbeat(NodeInfo("n")),
            ):
                with pytest.raises(BackendError):
                    await attempt
            # WAL readers are not blocked by a writer.
            assert (await backend.get_job(job_id)).id == job_id
        finally:
            holder.rollback()
            holder.close()
        message = str(info.value)
        assert str(path) in message
        assert "locked" in message and "busy_timeout" in message
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert 0.15 <= waited < 5
        # Once the lock is gone the backend works again.
        await backend.enqueue(EnqueuableJob("ex", {}))


async def test_a_lock_released_within_the_busy_timeout_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path, busy_timeout=timedelta(seconds=10)) as backend:
        holder = _hold_write_lock(path)
        timer = threading.Timer(0.3, holder.rollback)
        timer.start()
        try:
            started = time.monotonic()
            await backend.enqueue(EnqueuableJob("ex", {}))
            assert time.monotonic() - started >= 0.2
        finally:
            timer.join()
            holder.close()


async def test_connect_to_a_file_locked_while_it_needs_migrating(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    path.touch()
    holder = _hold_write_lock(path)
    try:
        error = await _connect_error(path, busy_timeout=timedelta(milliseconds=100))
    finally:
        holder.rollback()
        holder.close()
    assert str(path) in str(error) and "locked" in str(error)


async def test_the_event_loop_keeps_running_while_the_database_is_locked(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path, busy_timeout=timedelta(milliseconds=500)) as backend:
        holder = _hold_write_lock(path)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        try:
            with pytest.raises(BackendError):
                await backend.enqueue(EnqueuableJob("ex", {}))
        finally:
            ticker.cancel()
            holder.rollback()
            holder.close()
        assert ticks >= 10


async def test_a_claim_whose_caller_is_cancelled_hands_its_jobs_back(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path) as backend:
        job_id = (await backend.enqueue(EnqueuableJob("ex", {}))).job_id
        sub = backend.subscribe(["ex"])
        holder = _hold_write_lock(path)  # keeps the claim waiting on the database thread
        try:
            claim = asyncio.create_task(backend.claim_ready_jobs("ex", 1, "node"))
            await asyncio.sleep(0.05)
            claim.cancel()
            await sub.wait(0)
        finally:
            holder.rollback()
            holder.close()
        with pytest.raises(asyncio.CancelledError):
            await claim
        await sub.wait(5)  # the hand-back wakes runners
        sub.close()
        await asyncio.sleep(0.05)
        job = await backend.get_job(job_id)
        assert (job.status, job.attempt) == ("scheduled", 0)
        assert [j.id for j in await backend.claim_ready_jobs("ex", 1, "other")] == [job_id]
