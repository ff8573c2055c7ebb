"""Wake-ups across processes: LISTEN/NOTIFY from the trigger, a listener that survives losing
its connection, untrusted payloads, and pool connections killed under the backend's feet."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from rexecutor.backend import Lease, NodeInfo
from rexecutor.backends.postgres import PostgresBackend
from rexecutor.job import JobStatus
from rexecutor.query import StatusIn

from ..backends._helpers import (
    FAILURE,
    claim_one,
    enqueue,
    mark_complete,
    mark_retryable,
    new_job,
    rescue,
)
from ..support.waiting import eventually
from ._util import PROMPT, QUIET_AT_LEAST, QUIET_WAIT, drain, listening, seconds_waited

pytestmark = pytest.mark.postgres

Admin = psycopg.AsyncConnection[Any]
CHANNEL = "public_rexecutor_jobs"


@pytest.fixture
async def other(pg: PostgresBackend, postgres_url: str) -> AsyncIterator[PostgresBackend]:
    """A second backend on the same database: another node, as far as wake-ups go."""
    async with PostgresBackend(postgres_url, migrate=False) as backend:
        yield backend


async def test_a_job_enqueued_by_another_node_wakes_the_subscriber(
    pg: PostgresBackend, other: PostgresBackend
) -> None:
    sub = pg.subscribe(["x"])
    await listening(pg)
    await drain(sub)
    await enqueue(other, "y")
    assert await seconds_waited(sub, QUIET_WAIT) >= QUIET_AT_LEAST
    await enqueue(other, "x")
    assert await seconds_waited(sub, 5) < PROMPT
    # A retry by another node makes the job ready again: that wakes too.
    job, lease = await claim_one(other, "x", "node-b")
    await drain(sub)
    assert await mark_retryable(other, job.id, lease, timedelta(0), FAILURE)
    assert await seconds_waited(sub, 5) < PROMPT
    # Completing a job makes nothing ready: no wake-up.
    job, lease = await claim_one(other, "x", "node-b")
    await drain(sub)
    assert await mark_complete(other, job.id, lease)
    assert await seconds_waited(sub, QUIET_WAIT) >= QUIET_AT_LEAST
    sub.close()


async def test_own_enqueue_wakes_once_without_an_echo(pg: PostgresBackend) -> None:
    sub = pg.subscribe(["x"])
    await listening(pg)
    await drain(sub)
    await enqueue(pg, "x")
    assert await seconds_waited(sub, 5) < 0.05  # woken at once, locally
    assert await seconds_waited(sub, QUIET_WAIT) >= QUIET_AT_LEAST  # and not again
    sub.close()


async def test_listener_reconnects_after_its_connection_is_killed(
    pg: PostgresBackend, other: PostgresBackend, admin: Admin
) -> None:
    sub = pg.subscribe(["x"])
    for _ in range(3):
        pid = await listening(pg)
        await drain(sub)
        await admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        await eventually(lambda pid=pid: pg._listener_pid not in (None, pid), timeout=10)
        # After a reconnect everyone is woken, to catch up on what was missed.
        assert await seconds_waited(sub, 5) < PROMPT
        await enqueue(other, "x")
        assert await seconds_waited(sub, 5) < PROMPT
    sub.close()


async def test_untrusted_payloads_are_ignored(
    pg: PostgresBackend, other: PostgresBackend, admin: Admin
) -> None:
    sub = pg.subscribe(["x"])
    await listening(pg)
    await drain(sub)
    for payload in [
        "y" * 5000,  # too long: dropped
        "x" * 1001,
        "junk",
        '{"executor": "x"}',
        '__import__("os").system("false")',
        "x\n",
    ]:
        await admin.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])
    assert await seconds_waited(sub, QUIET_WAIT) >= QUIET_AT_LEAST
    # An empty payload means "some executor": everybody looks.
    await admin.execute("SELECT pg_notify(%s, '')", [CHANNEL])
    assert await seconds_waited(sub, 5) < PROMPT
    # The listener is still alive.
    await enqueue(other, "x")
    assert await seconds_waited(sub, 5) < PROMPT
    sub.close()


async def test_executor_names_too_long_for_a_payload_still_wake(
    pg: PostgresBackend, other: PostgresBackend
) -> None:
    name = "n" * 2000
    sub = pg.subscribe([name])
    await listening(pg)
    await drain(sub)
    await enqueue(other, name)
    assert await seconds_waited(sub, 5) < PROMPT
    sub.close()


async def test_close_stops_the_listener(postgres_url: str, admin: Admin) -> None:
    backend = PostgresBackend(postgres_url, migrate=False)
    await backend.connect()
    backend.subscribe(["x"])
    pid = await listening(backend)
    await backend.close()
    assert backend._listener_task is None

    async def gone() -> bool:
        cur = await admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return await cur.fetchone() == (0,)

    await eventually(gone, timeout=5)
    # ... and the backend can be connected again.
    async with backend:
        sub = backend.subscribe(["x"])
        await listening(backend)
        sub.close()


async def _pool_pids(admin: Admin, exclude: set[int]) -> list[int]:
    cur = await admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()"
    )
    return [pid for (pid,) in await cur.fetchall() if pid not in exclude]


async def _ended(admin: Admin, pids: list[int]) -> None:
    """Return once none of ``pids`` is a server process any more (bounded: 5 s)."""
    for _ in range(500):
        if not set(pids) & set(await _pool_pids(admin, set())):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"server processes {pids} did not end")


async def test_killed_pool_connections_lose_nothing(pg: PostgresBackend, admin: Admin) -> None:
    for i in range(20):
        await enqueue(pg, data={"i": i})
    claimed = await pg.claim_ready_jobs("ex", 20, "node-1")
    assert len(claimed) == 20
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    # Fenced writes, reads and new work all go through on fresh connections.
    assert (
        await pg.complete_jobs([(j.id, Lease("node-1", j.attempt)) for j in claimed[:10]])
        == [True] * 10
    )
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    for job in claimed[10:]:
        assert await mark_complete(pg, job.id, Lease("node-1", job.attempt))
    before = await _pool_pids(admin, set())
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    # pg_terminate_backend only signals: let the killed connections end while idle in the
    # pool, as a restart or a kill does, before work that cannot be retried takes one.
    await _ended(admin, before)
    await enqueue(pg, data={"after": True})
    done = await pg.query(StatusIn((JobStatus.COMPLETE,)))
    assert len(done) == 20
    assert len(await pg.claim_ready_jobs("ex", 10, "node-1")) == 1


async def test_reads_retry_on_a_caller_pool_without_checks(postgres_url: str, admin: Admin) -> None:
    async with AsyncConnectionPool(postgres_url, min_size=2, max_size=2, open=False) as pool:
        backend = PostgresBackend.from_pool(pool, migrate=False)
        async with backend:
            job_id = await enqueue(backend)
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            await asyncio.sleep(0.05)
            assert (await backend.get_job(job_id)).id == job_id
            assert (await backend.get_job(job_id)).id == job_id


async def test_for_thread_gives_a_backend_for_another_event_loop(
    pg: PostgresBackend, postgres_url: str
) -> None:
    sub = pg.subscribe(["ex"])
    await listening(pg)
    job, _ = await claim_one_after_enqueue(pg)
    errors: list[BaseException] = []
    rescued: list[int] = []

    async def in_thread() -> None:
        clone = pg.for_thread()
        assert clone is not pg
        async with clone:
            rescued.extend(await rescue(clone, timedelta(0)))
            await clone.record_heartbeat(NodeInfo("thread-node"))

    def target() -> None:
        try:
            asyncio.run(in_thread())
        except BaseException as exc:
            errors.append(exc)

    await drain(sub)
    thread = threading.Thread(target=target)
    thread.start()
    await asyncio.to_thread(thread.join)
    assert not errors, errors
    assert rescued == [job.id]
    # The rescue happened on another connection: it reached this node as a notification.
    assert await seconds_waited(sub, 5) < PROMPT
    assert (await pg.get_job(job.id)).status is JobStatus.RETRYABLE
    assert [n.node_id for n in await pg.list_nodes()] == ["thread-node"]
    sub.close()


async def claim_one_after_enqueue(backend: PostgresBackend) -> tuple[Any, Lease]:
    await backend.enqueue(new_job())
    return await claim_one(backend, node="gone-node")


async def test_subscribing_before_connect_starts_the_listener_on_connect(
    postgres_url: str, other: PostgresBackend
) -> None:
    backend = PostgresBackend(postgres_url, migrate=False)
    sub = backend.subscribe(["x"])
    async with backend:
        await listening(backend)
        await drain(sub)
        await enqueue(other, "x")
        assert await seconds_waited(sub, 5) < PROMPT
    sub.close()
