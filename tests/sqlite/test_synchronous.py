"""SQLite only: the ``synchronous`` option (FULL by default, NORMAL on request, nothing else),
from the constructor and from the URL; a NORMAL commit survives a killed process."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rexecutor.backend import EnqueuableJob
from rexecutor.backends import backend_from_url
from rexecutor.backends.sqlite import SqliteBackend
from rexecutor.backends.sqlite.connection import pragma
from rexecutor.errors import ConfigurationError

# PRAGMA synchronous reads back as a number.
FULL, NORMAL = 2, 1


async def _level(backend: SqliteBackend) -> int:
    async with backend:
        # The pragma belongs to one connection: read it on the backend's own.
        return int(await backend._call_read(pragma, "synchronous"))


async def test_full_is_the_default(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "jobs.db")
    assert backend.synchronous == "full"
    assert await _level(backend) == FULL


async def test_normal_on_request_in_any_case(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "jobs.db", synchronous="NORMAL")
    assert backend.synchronous == "normal"
    assert await _level(backend) == NORMAL


async def test_the_url_option(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    backend = backend_from_url(f"sqlite:///{path}?synchronous=normal")
    assert isinstance(backend, SqliteBackend)
    assert backend.path == str(path)  # the query is not part of the file name
    assert await _level(backend) == NORMAL
    assert not (tmp_path / "jobs.db?synchronous=normal").exists()


@pytest.mark.parametrize("level", ["off", "extra", "", "1"])
def test_other_levels_are_refused(tmp_path: Path, level: str) -> None:
    with pytest.raises(ConfigurationError, match=r"synchronous must be 'full'.*or 'normal'"):
        SqliteBackend(tmp_path / "jobs.db", synchronous=level)
    with pytest.raises(ConfigurationError, match="synchronous must be"):
        backend_from_url(f"sqlite:///{tmp_path}/jobs.db?synchronous={level}")


@pytest.mark.parametrize("query", ["sync=normal", "synchronous=full&synchronous=normal", "x"])
def test_unknown_url_options_are_refused(tmp_path: Path, query: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape("only one is synchronous=full|normal")):
        backend_from_url(f"sqlite:///{tmp_path}/jobs.db?{query}")


def test_a_normal_commit_survives_a_killed_process(tmp_path: Path) -> None:
    # NORMAL defers the fsync, not the write: the commit is in the WAL (the OS's cache) when
    # enqueue returns, so a process killed before closing the backend loses nothing.
    path = tmp_path / "jobs.db"
    script = textwrap.dedent(
        f"""
        import asyncio, os
        from rexecutor.backend import EnqueuableJob
        from rexecutor.backends.sqlite import SqliteBackend

        async def main():
            backend = SqliteBackend({str(path)!r}, synchronous="normal")
            await backend.connect()
            for n in range(20):
                await backend.enqueue(EnqueuableJob("mailer", n))
            os.kill(os.getpid(), 9)

        asyncio.run(main())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)
    assert done.returncode == -9

    async def reopen() -> int:
        async with SqliteBackend(path) as backend:
            await backend.enqueue(EnqueuableJob("mailer", 20))  # and the file is still writable
            return sum((await backend.count_jobs()).values())

    assert asyncio.run(reopen()) == 21
