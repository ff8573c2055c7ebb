"""A real streaming replica of the local PostgreSQL server, for the read-url tests.

``replica_url`` (session-scoped) runs ``scripts/replica start`` once the session's test
database exists on the primary (about 2.5 s: pg_basebackup of a small cluster, then the
standby starts streaming), yields the test database's URL on the replica, and stops the
replica when the session ends. :func:`caught_up` waits until the replica has replayed every
write the primary had made when it was called, by comparing WAL positions, never by sleeping.

Registered as a plugin in ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.support.processes import ROOT

SCRIPT = ROOT / "scripts" / "replica"


@pytest.fixture(scope="session")
def replica_url(postgres_url: str) -> Iterator[str]:
    """The session's test database, on a streaming replica of the primary (read-only)."""
    # Under /tmp, not pytest's tmp_path: the replica runs as the user postgres, who cannot
    # enter pytest's private temporary directories.
    directory = f"/tmp/rexecutor-replica-{os.getpid()}-{secrets.token_hex(4)}"
    started = subprocess.run(
        [str(SCRIPT), "start", directory], capture_output=True, text=True, timeout=300
    )
    if started.returncode != 0:
        subprocess.run([str(SCRIPT), "stop", directory], capture_output=True, timeout=60)
        pytest.fail(
            f"scripts/replica could not start a replica: {started.stderr.strip()}", pytrace=False
        )
    port = started.stdout.strip().splitlines()[-1]
    try:
        dbname = conninfo_to_dict(postgres_url)["dbname"]
        yield f"postgresql://postgres@127.0.0.1:{port}/{dbname}"
    finally:
        subprocess.run([str(SCRIPT), "stop", directory], capture_output=True, timeout=60)


async def caught_up(primary_url: str, replica_url: str, timeout: float = 120.0) -> None:
    """Wait until the replica has replayed the primary's WAL up to its current position."""
    async with await psycopg.AsyncConnection.connect(primary_url, autocommit=True) as primary:
        row = await (await primary.execute("SELECT pg_current_wal_lsn()::text")).fetchone()
    assert row is not None
    target = row[0]
    deadline = time.monotonic() + timeout
    async with await psycopg.AsyncConnection.connect(replica_url, autocommit=True) as replica:
        while True:
            cursor = await replica.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]
            )
            done = await cursor.fetchone()
            if done is not None and done[0]:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the replica did not replay up to {target} in {timeout}s")
            await asyncio.sleep(0.02)
