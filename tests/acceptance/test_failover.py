"""Failover on PostgreSQL with a real worker process: its listener connection killed while
jobs keep arriving, and server-side statement and idle-in-transaction timeouts.

(Restarting the server and cutting connections mid-claim and mid-ack are
``test_postgres_faults.py``'s.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from rexecutor import JobStatus
from rexecutor.backend import EnqueuableJob
from rexecutor.backends.postgres import PostgresBackend
from tests.apps.ledger import LedgerJob
from tests.support.processes import start_worker, stop

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

#: The worker's poll interval: the longest a job may wait when no notification reaches it.
POLL = 1.0
#: What a loaded 2-core machine adds to a claim: the bound is POLL + SLACK.
SLACK = 0.75

Admin = psycopg.AsyncConnection[tuple[object, ...]]


@pytest.fixture
async def admin(pg: str) -> AsyncIterator[Admin]:
    async with await psycopg.AsyncConnection.connect(pg, autocommit=True) as conn:
        yield conn


async def _listeners(admin: Admin) -> set[int]:
    """The pids of the worker's job listener connections (the ones that LISTEN to the
    cancel channel; the last statement a listener ran is its LISTEN until its ping)."""
    cursor = await admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND query LIKE 'LISTEN %rexecutor_cancel%'"
    )
    return {int(str(row[0])) for row in await cursor.fetchall()}


async def _a_listener(admin: Admin, other_than: Collection[int] = ()) -> int:
    """A listener's pid, waiting for one (other than ``other_than``) to connect."""
    for _ in range(300):
        found = await _listeners(admin) - set(other_than)
        if found:
            return found.pop()
        await asyncio.sleep(0.05)
    raise AssertionError("no listener connection appeared within 15 s")


async def _run(backend: PostgresBackend, data: int = 0) -> tuple[int, timedelta]:
    """Enqueue one job, wait for it; its id and how long it waited to start."""
    job_id = int((await backend.enqueue(EnqueuableJob("ledger", data))).job_id)
    job = await LedgerJob.wait_for_job_on_backend(job_id, backend, timeout=timedelta(seconds=30))
    assert job.status is JobStatus.COMPLETE and job.attempted_at is not None
    return job_id, job.attempted_at - job.scheduled_at


async def test_killing_the_listener_while_jobs_arrive_delays_no_job_beyond_a_poll(
    pg: str, admin: Admin, tmp_path: Path
) -> None:
    worker = start_worker(pg, tmp_path / "ledger", POLL_MS=str(int(POLL * 1000)))
    try:
        async with PostgresBackend(pg, migrate=False) as backend:
            listener = await _a_listener(admin)
            waits: list[timedelta] = []
            for round_ in range(3):
                for _ in range(5):  # one at a time, each after the previous one ran
                    waits.append((await _run(backend))[1])
                cursor = await admin.execute("SELECT pg_terminate_backend(%s)", [listener])
                assert (await cursor.fetchone()) == (True,)
                # Jobs keep arriving while the listener is down and while it reconnects.
                for _ in range(3):
                    waits.append((await _run(backend))[1])
                    await asyncio.sleep(0.05)
                replaced = await _a_listener(admin, {listener})
                assert replaced != listener, f"round {round_}: the listener did not come back"
                listener = replaced
            for _ in range(3):
                waits.append((await _run(backend))[1])
    finally:
        output = stop(worker)
    assert worker.returncode == 0, output
    assert max(waits) < timedelta(seconds=POLL + SLACK), sorted(waits)[-3:]


async def test_server_statement_and_idle_timeouts_do_not_break_workers(
    pg: str, admin: Admin, tmp_path: Path
) -> None:
    database = sql.Identifier(str(conninfo_to_dict(pg)["dbname"]))
    for setting, value in (
        ("statement_timeout", "200ms"),
        ("idle_in_transaction_session_timeout", "300ms"),
    ):
        await admin.execute(
            sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                database, sql.Identifier(setting), sql.Literal(value)
            )
        )
    worker = None
    try:
        # Every connection opened from now on (the worker's, this backend's) has them.
        async with PostgresBackend(pg, migrate=False) as backend:
            pool = backend._pool
            assert pool is not None
            async with pool.connection() as conn:
                shown = await (await conn.execute("SHOW statement_timeout")).fetchone()
                assert shown == ("200ms",)
            worker = start_worker(pg, tmp_path / "ledger", POLL_MS=str(int(POLL * 1000)))
            listener = await _a_listener(admin)
            # A job that runs longer than both timeouts, then quick ones; wait_for_job works.
            long_id = int((await backend.enqueue(EnqueuableJob("ledger", 1200))).job_id)
            quick = [await _run(backend) for _ in range(5)]
            done = await LedgerJob.wait_for_job_on_backend(
                long_id, backend, timeout=timedelta(seconds=30)
            )
            assert done.status is JobStatus.COMPLETE and len(done.errors) == 0
            assert all(wait < timedelta(seconds=POLL + SLACK) for _, wait in quick), quick
            # The listener sat idle longer than both timeouts: it is the same connection.
            await asyncio.sleep(1.0)
            assert listener in await _listeners(admin)
            _, wait = await _run(backend)
            assert wait < timedelta(seconds=POLL + SLACK)
    finally:
        await admin.execute(sql.SQL("ALTER DATABASE {} RESET ALL").format(database))
        output = stop(worker) if worker is not None else ""
    assert worker is not None and worker.returncode == 0, output
    assert "canceling statement" not in output and "idle-in-transaction" not in output, output
