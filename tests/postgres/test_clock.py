"""The database clock, whatever the session's time zone: a caller's pool whose connections
use an exotic (or daylight-saving) time zone, in manual-commit mode, changes no result."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from rexecutor.backend import NodeInfo
from rexecutor.backends.postgres import PostgresBackend
from rexecutor.query import ScheduledAt
from rexecutor.uniqueness import UniquenessCriteria
from tests.backends._helpers import mark_retryable, rescue

from ..backends._helpers import (
    FAILURE,
    assert_between,
    assert_utc,
    claim_one,
    enqueue,
    new_job,
    utcnow,
)

pytestmark = pytest.mark.postgres

ZONES = ["Asia/Kathmandu", "America/New_York", "Pacific/Chatham", "UTC"]


@pytest.fixture(params=ZONES)
async def exotic(
    request: pytest.FixtureRequest, postgres_url: str, new_schema: Callable[[str], str]
) -> AsyncIterator[tuple[PostgresBackend, PostgresBackend]]:
    """(a backend on a caller's pool in ``zone``, a plain backend on the same schema)."""
    zone = request.param
    schema = new_schema("clock")

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        async with conn.transaction():
            await conn.execute(f"SET TIME ZONE '{zone}'")

    async with AsyncConnectionPool(
        postgres_url, min_size=1, max_size=3, configure=configure, open=False
    ) as pool:
        async with pool.connection() as conn:
            assert not conn.autocommit
            row = await (await conn.execute("SHOW TimeZone")).fetchone()
            assert row == (zone,)
        async with (
            PostgresBackend.from_pool(pool, schema=schema) as backend,
            PostgresBackend(postgres_url, schema=schema, migrate=False) as plain,
        ):
            yield backend, plain


async def test_times_are_stored_and_returned_in_utc(
    exotic: tuple[PostgresBackend, PostgresBackend],
) -> None:
    backend, plain = exotic
    when = datetime(2031, 7, 1, 23, 30, 0, 123456, tzinfo=UTC)
    before = utcnow()
    fixed = await enqueue(backend, scheduled_at=when)
    now_job = await enqueue(backend)
    after = utcnow()
    for reader in (backend, plain):
        job = await reader.get_job(fixed)
        assert job.scheduled_at == when
        assert job.scheduled_at.tzinfo is UTC
        assert_between(job.inserted_at, before, after)
        current = await reader.get_job(now_job)
        assert_between(current.scheduled_at, before, after)
        assert current.inserted_at == current.scheduled_at
    assert await backend.get_job(fixed) == await plain.get_job(fixed)
    assert [j.id for j in await backend.query(ScheduledAt("=", when))] == [fixed]
    assert await backend.next_scheduled_at(["ex"]) == (await plain.get_job(now_job)).scheduled_at


async def test_claims_delays_and_errors_use_the_database_clock_in_utc(
    exotic: tuple[PostgresBackend, PostgresBackend],
) -> None:
    backend, plain = exotic
    await enqueue(backend)
    before = utcnow()
    job, lease = await claim_one(backend)
    assert_between(job.attempted_at, before, utcnow())
    assert await mark_retryable(backend, job.id, lease, timedelta(days=1), FAILURE)
    stored = await plain.get_job(job.id)
    [error] = stored.errors
    assert_utc(error.recorded_at)
    assert_between(error.recorded_at, before, utcnow())
    # The delay is exactly one day of elapsed time, whatever the zone's daylight saving does.
    assert stored.scheduled_at - error.recorded_at == timedelta(days=1)
    assert await backend.get_job(job.id) == stored


async def test_uniqueness_windows_are_exact_across_a_daylight_saving_change(
    exotic: tuple[PostgresBackend, PostgresBackend],
) -> None:
    backend, _ = exotic
    # New York springs forward at 2024-03-10 07:00 UTC: a day later in local time is 23 hours.
    base = datetime(2024, 3, 9, 12, 0, tzinfo=UTC)
    criteria = UniquenessCriteria.by_executor().and_within(timedelta(days=1))
    first = await backend.enqueue(new_job(uniqueness=criteria, scheduled_at=base))
    edge = await backend.enqueue(
        new_job(uniqueness=criteria, scheduled_at=base + timedelta(days=1))
    )
    assert (edge.job_id, edge.duplicate) == (first.job_id, True)
    outside = await backend.enqueue(
        new_job(uniqueness=criteria, scheduled_at=base + timedelta(days=1, microseconds=1))
    )
    assert not outside.duplicate
    # ... and on the other side of the window.
    late = datetime(2024, 11, 3, 12, 0, tzinfo=UTC)  # New York falls back at 06:00 UTC
    second = await backend.enqueue(new_job("b", uniqueness=criteria, scheduled_at=late))
    early_edge = await backend.enqueue(
        new_job("b", uniqueness=criteria, scheduled_at=late - timedelta(days=1))
    )
    assert (early_edge.job_id, early_edge.duplicate) == (second.job_id, True)


async def test_heartbeats_and_rescue_use_the_database_clock(
    exotic: tuple[PostgresBackend, PostgresBackend],
) -> None:
    backend, plain = exotic
    before = utcnow()
    await backend.record_heartbeat(NodeInfo("n1"))
    [node] = await plain.list_nodes()
    assert_between(node.heartbeat_at, before, utcnow())
    assert_utc((await backend.list_nodes())[0].started_at)
    await enqueue(backend)
    await claim_one(backend, node="n1")
    # A node that beat a moment ago is alive for an hour-long window in every zone.
    assert await rescue(backend, timedelta(hours=1)) == []
    assert len(await rescue(backend, timedelta(0))) == 1
