"""Rows that rexecutor could not have written never stop an executor on PostgreSQL: a real node
sets them aside with a readable error and runs the healthy jobs behind them. The rows are
written with raw SQL into the real test database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from rexecutor import ErrorType, Executor, Job, JobStatus, Rexecutor, Where
from rexecutor.backends.postgres import PostgresBackend
from tests.support.waiting import wait_for_status

Admin = psycopg.AsyncConnection[tuple[object, ...]]


class Healthy(Executor[Any, Any]):
    name = "pg-poison-target"
    ran: list[Any] = []  # shared on purpose: the node makes its own instance

    async def execute(self, job: Job[Any, Any]) -> None:
        Healthy.ran.append(job.data)


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    Healthy.ran = []
    yield


async def insert_raw(admin: Admin, schema: str = "public", **columns: str) -> int:
    """Insert a due row for Healthy whose columns are given as raw SQL expressions."""
    values = {
        "executor": f"'{Healthy.name}'",
        "data": "'{}'::jsonb",
        "scheduled_at": "now() - interval '1 second'",
        **columns,
    }
    statement = sql.SQL("INSERT INTO {}.rexecutor_jobs ({}) VALUES ({}) RETURNING id").format(
        sql.Identifier(schema),
        sql.SQL(", ").join(sql.Identifier(c) for c in values),
        sql.SQL(", ").join(sql.SQL(v) for v in values.values()),  # type: ignore[arg-type]
    )
    cursor = await admin.execute(statement)
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])  # type: ignore[call-overload]


POISON: dict[str, dict[str, str]] = {
    "year 10000 scheduled_at": {"scheduled_at": "'10000-01-01 00:00:00+00'"},
    "infinite scheduled_at": {"scheduled_at": "'infinity'"},
    "scheduled_at before year 1": {
        "scheduled_at": "'0001-01-01 00:00:00+00'::timestamptz - interval '2 days'"
    },
    "year 10000 inserted_at": {"inserted_at": "'10000-06-01 00:00:00+00'"},
    "errors that are not errors": {"errors": """'[{"oops": 1}]'::jsonb"""},
}


@pytest.mark.parametrize("columns", POISON.values(), ids=POISON.keys())
async def test_a_poison_row_is_discarded_and_the_healthy_job_runs(
    pg: PostgresBackend, admin: Admin, columns: dict[str, str]
) -> None:
    poison = await insert_raw(admin, **columns)
    listed = await pg.query(Where.everything().node)  # reads never crash on the row
    assert [j.id for j in listed] == [poison]
    assert await pg.next_scheduled_at([Healthy.name]) is not None
    healthy = await Healthy.builder().with_data("fine").enqueue_to_backend(pg)
    async with Rexecutor(pg, poll_interval=0.05).with_executor(Healthy):
        await wait_for_status(pg, healthy, JobStatus.COMPLETE)
        job = await wait_for_status(pg, poison, JobStatus.DISCARDED)
    assert Healthy.ran == ["fine"]
    last = job.errors[-1]
    assert last.error_type is ErrorType.INVALID_DATA
    column = next(iter(columns))
    assert column in last.details and "discarded without running" in last.details
    # The row was repaired: every time reads back as stored, no clamping needed.
    cursor = await admin.execute(
        "SELECT scheduled_at::text, inserted_at::text FROM rexecutor_jobs WHERE id = %s",
        [poison],
    )
    times = await cursor.fetchone()
    assert times is not None
    for text in times:
        assert str(text) < "9999-12-31" and not str(text).startswith("0001-01-01")


async def test_poison_rows_never_take_the_places_of_good_jobs(
    pg: PostgresBackend, admin: Admin
) -> None:
    bad = [
        await insert_raw(
            admin,
            inserted_at="'10000-01-01 00:00:00+00'",
            scheduled_at=f"now() - interval '{10 - i} minutes'",
        )
        for i in range(5)
    ]
    good = await Healthy.builder().with_data(1).enqueue_to_backend(pg)
    claimed = await pg.claim_ready_jobs(Healthy.name, 1, "node-x")
    assert [j.id for j in claimed] == [good]
    for job_id in bad:
        assert (await pg.get_job(job_id)).status is JobStatus.DISCARDED


async def test_an_unreadable_finished_time_does_not_break_stats_or_reads(
    pg: PostgresBackend, admin: Admin
) -> None:
    done = await insert_raw(admin, status="'complete'", completed_at="'infinity'")
    job = await pg.get_job(done)
    assert job.completed_at == datetime.max.replace(tzinfo=UTC)
    from datetime import timedelta

    rows = await pg.finished_per_minute(timedelta(days=1))
    assert [status for _, status, _ in rows] == [JobStatus.COMPLETE]


async def test_an_unknown_status_reads_as_discarded(
    postgres_url: str, admin: Admin, new_schema: Any
) -> None:
    schema = new_schema()
    async with PostgresBackend(postgres_url, schema=schema) as backend:
        # As if written by another tool on a table without the status check.
        await admin.execute(
            sql.SQL(
                "ALTER TABLE {}.rexecutor_jobs DROP CONSTRAINT rexecutor_jobs_status_check"
            ).format(sql.Identifier(schema))
        )
        odd = await insert_raw(admin, schema, status="'bogus'")
        job = await backend.get_job(odd)
        assert job.status is JobStatus.DISCARDED
        assert "bogus" in job.errors[-1].details
        assert (Healthy.name, JobStatus.DISCARDED) in await backend.count_jobs()
