"""The "jobs finished" NOTIFY (``<schema>_rexecutor_done``) is sent only while some process
waits (holds the waiters' advisory lock), names the finished ids, and is split within NOTIFY's
payload limit.

Absence is checked without waiting for time to pass: after the write, the test sends a
sentinel on the same channel; notifications arrive in commit order, so anything the write
sent arrives before the sentinel.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from rexecutor import _waiting
from rexecutor.backend import EnqueuableJob, Lease
from rexecutor.backends.postgres import PostgresBackend, listener
from rexecutor.backends.postgres.listener import _finished_payloads, _parse_finished
from rexecutor.backends.postgres.statements import _MAX_FINISHED_PAYLOAD
from tests.support.waiting import eventually

CHANNEL = "public_rexecutor_done"
SENTINEL = "sentinel"


async def _payloads_before_sentinel(
    watch: psycopg.AsyncConnection[Any], admin: psycopg.AsyncConnection[Any]
) -> list[str]:
    await admin.execute("SELECT pg_notify(%s, %s)", [CHANNEL, SENTINEL])
    seen: list[str] = []

    async def collect() -> None:
        async for note in watch.notifies():
            if note.payload == SENTINEL:
                return
            seen.append(note.payload)

    await asyncio.wait_for(collect(), 30)
    return seen


async def _completed(pg: PostgresBackend) -> int:
    await pg.enqueue(EnqueuableJob("ex", {}))
    [job] = await pg.claim_ready_jobs("ex", 1, "node-1")
    assert await pg.complete_jobs([(job.id, Lease("node-1", job.attempt))]) == [True]
    return int(job.id)


@pytest.fixture
async def watch(postgres_url: str) -> Any:
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute(f"LISTEN {CHANNEL}")
        yield conn


async def test_no_notification_while_nobody_waits(
    pg: PostgresBackend, watch: Any, admin: Any
) -> None:
    await _completed(pg)
    assert await _payloads_before_sentinel(watch, admin) == []


async def test_a_waiting_process_gets_the_ids(
    pg: PostgresBackend, watch: Any, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_waiting, "SAFETY_RECHECK", 3600.0)
    async with pg.for_thread() as waiter_process:
        await pg.enqueue(EnqueuableJob("ex", {}))
        [job] = await pg.claim_ready_jobs("ex", 1, "node-1")
        waiter = asyncio.ensure_future(_waiting.wait_for_job(waiter_process, job.id))
        # Only once the waiting process holds the lock do writers announce to it.
        await _lock_held(admin)
        assert await pg.complete_jobs([(job.id, Lease("node-1", job.attempt))]) == [True]
        assert (await asyncio.wait_for(waiter, 30)).status.value == "complete"
        assert await _payloads_before_sentinel(watch, admin) == [str(int(job.id))]
    # The waiting process is gone, and with it the lock: writes announce nothing again.
    await _lock_free(admin)
    await _completed(pg)
    assert await _payloads_before_sentinel(watch, admin) == []


async def _holders(admin: Any) -> int:
    cur = await admin.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ShareLock' "
        "AND granted AND database = (SELECT oid FROM pg_database "
        "WHERE datname = current_database())"
    )
    row = await cur.fetchone()
    return int(row[0])


async def _lock_held(admin: Any) -> None:
    async def held() -> bool:
        return await _holders(admin) > 0

    await eventually(held, 30)


async def _lock_free(admin: Any) -> None:
    async def free() -> bool:
        return await _holders(admin) == 0

    await eventually(free, 30)


def test_payloads_stay_within_the_limit_and_parse_back() -> None:
    ids = list(range(10**15, 10**15 + 2000))
    payloads = _finished_payloads(ids)
    assert len(payloads) > 1
    assert all(len(p) <= _MAX_FINISHED_PAYLOAD for p in payloads)
    parsed = [i for p in payloads for i in (_parse_finished(p) or [])]
    assert parsed == ids


@pytest.mark.parametrize("payload", ["", "1,x", "1,,2", "-1", "1" * 30, None, "١"])
def test_a_payload_that_does_not_parse_means_unknown(payload: object) -> None:
    assert _parse_finished(payload) is None


async def test_the_waiters_listener_lingers_after_the_last_waiter_then_ends(
    pg: PostgresBackend, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = await _completed(pg)
    await _waiting.wait_for_job(pg, job_id)
    await _lock_held(admin)  # lingering: the next wait needs no new connection
    task = pg._waiters_task
    await _waiting.wait_for_job(pg, job_id)
    assert pg._waiters_task is task
    monkeypatch.setattr(listener, "_WAITERS_LINGER", 0.0)
    await _waiting.wait_for_job(pg, job_id)
    await _lock_free(admin)
    assert pg._waiters_task is None


async def test_without_pipeline_mode_the_notification_follows_the_write(
    pg: PostgresBackend, watch: Any, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listener, "_PIPELINES", False)
    async with pg.for_thread() as waiter_process:
        await pg.enqueue(EnqueuableJob("ex", {}))
        [job] = await pg.claim_ready_jobs("ex", 1, "node-1")
        waiter = asyncio.ensure_future(_waiting.wait_for_job(waiter_process, job.id))
        await _lock_held(admin)
        assert await pg.complete_jobs([(job.id, Lease("node-1", job.attempt))]) == [True]
        assert (await asyncio.wait_for(waiter, 30)).status.value == "complete"
        assert await _payloads_before_sentinel(watch, admin) == [str(int(job.id))]
