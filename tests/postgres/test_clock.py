"""The database clock, whatever the session's time zone: a caller's pool whose connections
use an exotic (or daylight-saving) time zone, in manual-commit mode, changes no result."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from rexecutor.backend import NodeInfo, PruneSpec
from rexecutor.backends.postgres import PostgresBackend
from rexecutor.errors import JobNotFound
from rexecutor.job import JobStatus
from rexecutor.query import And, ScheduledAt
from rexecutor.testing import FakeClock
from rexecutor.uniqueness import UniquenessCriteria

from ..backends._helpers import (
    FAILURE,
    assert_between,
    assert_utc,
    claim_one,
    enqueue,
    finished,
    mark_complete,
    mark_retryable,
    mark_snoozed,
    new_job,
    rescue,
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


# -- a test clock drives PostgreSQL too ---------------------------------------------------------

FAKE_START = datetime(2032, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def moved() -> Iterator[FakeClock]:
    with FakeClock(FAKE_START) as clock:
        yield clock


async def test_with_a_fake_clock_a_job_an_hour_ahead_is_claimed_once_the_clock_gets_there(
    pg: PostgresBackend, moved: FakeClock
) -> None:
    job_id = await enqueue(pg, scheduled_at=FAKE_START + timedelta(hours=1))
    now_id = await enqueue(pg, "other")
    stored = await pg.get_job(now_id)
    assert stored.inserted_at == stored.scheduled_at == FAKE_START
    assert await pg.claim_ready_jobs("ex", 10, "n1") == []
    assert await pg.next_scheduled_at(["ex"]) == FAKE_START + timedelta(hours=1)
    moved.advance(hours=1)
    [job] = await pg.claim_ready_jobs("ex", 10, "n1")
    assert job.id == job_id
    assert job.attempted_at == moved.now()


async def test_with_a_fake_clock_retries_snoozes_errors_and_finishes_use_its_time(
    pg: PostgresBackend, moved: FakeClock
) -> None:
    await enqueue(pg)
    job, lease = await claim_one(pg)
    moved.advance(minutes=2)
    assert await mark_retryable(pg, job.id, lease, timedelta(minutes=30), FAILURE)
    stored = await pg.get_job(job.id)
    assert stored.scheduled_at == moved.now() + timedelta(minutes=30)
    assert stored.errors[0].recorded_at == moved.now()
    assert await pg.claim_ready_jobs("ex", 1, "node-1") == []
    moved.advance(minutes=30)
    job, lease = await claim_one(pg)
    assert await mark_snoozed(pg, job.id, lease, timedelta(seconds=5))
    assert (await pg.get_job(job.id)).scheduled_at == moved.now() + timedelta(seconds=5)
    moved.advance(seconds=5)
    job, lease = await claim_one(pg)
    assert await mark_complete(pg, job.id, lease)
    assert (await pg.get_job(job.id)).completed_at == moved.now()
    [(bucket, status, count)] = await pg.finished_per_minute(timedelta(minutes=5))
    assert (bucket, status, count) == (
        moved.now().replace(second=0, microsecond=0),
        JobStatus.COMPLETE,
        1,
    )
    moved.advance(hours=1)
    assert await pg.finished_per_minute(timedelta(minutes=5)) == []


async def test_with_a_fake_clock_heartbeats_and_rescue_follow_it(
    pg: PostgresBackend, moved: FakeClock
) -> None:
    await pg.record_heartbeat(NodeInfo("n1"))
    [node] = await pg.list_nodes()
    assert node.started_at == node.heartbeat_at == FAKE_START
    await enqueue(pg)
    await claim_one(pg, node="n1")
    moved.advance(minutes=4)
    assert await rescue(pg, timedelta(minutes=5)) == []
    moved.advance(minutes=1, seconds=1)
    [rescued] = await rescue(pg, timedelta(minutes=5))
    job = await pg.get_job(rescued)
    assert job.status is JobStatus.RETRYABLE
    assert job.scheduled_at == job.errors[-1].recorded_at == moved.now()


async def test_with_a_fake_clock_pruning_by_age_follows_it(
    pg: PostgresBackend, moved: FakeClock
) -> None:
    old = await finished(pg, JobStatus.COMPLETE)
    moved.advance(hours=2)
    recent = await finished(pg, JobStatus.COMPLETE)
    spec = PruneSpec(JobStatus.COMPLETE, max_age=timedelta(hours=1))
    assert await pg.prune_jobs(spec) == 1
    assert [j.id for j in await pg.query(And(()))] == [recent]
    with pytest.raises(JobNotFound):
        await pg.get_job(old)
    moved.advance(minutes=59)
    assert await pg.prune_jobs(spec) == 0
    moved.advance(timedelta(minutes=1, microseconds=1))
    assert await pg.prune_jobs(spec) == 1


async def test_without_a_test_clock_the_database_clock_is_used(
    pg: PostgresBackend, postgres_url: str
) -> None:
    async def database_now() -> datetime:
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            row = await (await conn.execute("SELECT now()")).fetchone()
            assert row is not None
            moment: datetime = row[0]
            return moment

    before = await database_now()
    job_id = await enqueue(pg)
    after = await database_now()
    assert_between((await pg.get_job(job_id)).inserted_at, before, after)
