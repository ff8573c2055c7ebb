"""Rows that rexecutor could not have written (by hand, or by an older version) never stop an
executor: a real node sets them aside with a readable error, and the healthy jobs behind them
run. The rows are written with raw SQL into a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rexecutor import ErrorType, Executor, Job, JobStatus, Rexecutor, Where
from rexecutor.backends.sqlite import SqliteBackend
from tests.backends._helpers import rerun
from tests.support.waiting import eventually, wait_for_status

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
#: 10000-01-01 UTC in microseconds since 1970: what a year-10000 scheduled_at looks like.
YEAR_10000_US = (datetime(9999, 12, 31, tzinfo=UTC) - EPOCH) // US + 86_400_000_000
#: 0000-12-31 UTC: a year-0 time, before datetime.min.
YEAR_0_US = (datetime(1, 1, 1, tzinfo=UTC) - EPOCH) // US - 86_400_000_000


class Healthy(Executor[Any, Any]):
    name = "poison-target"
    ran: list[Any] = []  # shared on purpose: the node makes its own instance

    async def execute(self, job: Job[Any, Any]) -> None:
        Healthy.ran.append(job.data)


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    Healthy.ran = []
    yield


def now_us() -> int:
    return (datetime.now(UTC) - EPOCH) // US


def insert_raw(path: Path, **columns: Any) -> int:
    """Insert a due row for Healthy with raw column values (checks off, as a hand edit)."""
    values: dict[str, Any] = {
        "status": "scheduled",
        "executor": Healthy.name,
        "data": "{}",
        "metadata": "null",
        "attempt": 0,
        "max_attempts": 3,
        "priority": 0,
        "tags": "[]",
        "errors": "[]",
        "inserted_at": now_us(),
        "scheduled_at": now_us() - 1_000_000,
        **columns,
    }
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA ignore_check_constraints = ON")
        cursor = conn.execute(
            f"INSERT INTO jobs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
            list(values.values()),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid


POISON: dict[str, dict[str, Any]] = {
    "year 10000 scheduled_at": {"scheduled_at": YEAR_10000_US},
    "year 0 scheduled_at": {"scheduled_at": YEAR_0_US},
    "scheduled_at that is text": {"scheduled_at": "tomorrow"},
    "invalid JSON data": {"data": "{not json"},
    "NaN in data": {"data": '{"x": NaN}'},
    "errors that are not errors": {"errors": '[{"oops": 1}]'},
    "tags that are not a list": {"tags": '"a"'},
}


@pytest.mark.parametrize("columns", POISON.values(), ids=POISON.keys())
async def test_a_poison_row_is_discarded_and_the_healthy_job_runs(
    tmp_path: Path, columns: dict[str, Any]
) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path) as backend:
        await backend.connect()
    poison = insert_raw(path, **columns)
    async with SqliteBackend(path) as backend:
        # Reads never crash on the row, before or after it is set aside.
        listed = await backend.query(Where.everything().node)
        assert [j.id for j in listed] == [poison]
        healthy = await Healthy.builder().with_data("fine").enqueue_to_backend(backend)
        async with Rexecutor(backend, poll_interval=0.05).with_executor(Healthy):
            await wait_for_status(backend, healthy, JobStatus.COMPLETE)
            job = await wait_for_status(backend, poison, JobStatus.DISCARDED)
        assert Healthy.ran == ["fine"]
        last = job.errors[-1]
        assert last.error_type is ErrorType.INVALID_DATA
        column = next(iter(columns))
        assert column in last.details and "discarded without running" in last.details
        assert repr(columns[column])[:40] in last.details  # the raw stored value is quoted
    # The row was repaired: it now reads through the fast path, as rexecutor would write it.
    with sqlite3.connect(path) as conn:
        row = conn.execute(
            "SELECT data, tags, errors, scheduled_at FROM jobs WHERE id = ?", (poison,)
        ).fetchone()
    json.loads(row[0], parse_constant=lambda c: pytest.fail(f"{c} left in data"))
    assert isinstance(json.loads(row[1]), list)
    assert all("type" in e for e in json.loads(row[2]))
    assert isinstance(row[3], int)


async def test_poison_rows_never_take_the_places_of_good_jobs(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path) as backend:
        await backend.connect()
    # Poison rows first in claim order (older, higher priority); the good job behind them.
    bad = [
        insert_raw(path, data="{broken", scheduled_at=now_us() - 10_000_000 + i) for i in range(5)
    ]
    async with SqliteBackend(path) as backend:
        good = await Healthy.builder().with_data(1).enqueue_to_backend(backend)
        claimed = await backend.claim_ready_jobs(Healthy.name, 1, "node-x")
        assert [j.id for j in claimed] == [good]
        for job_id in bad:
            assert (await backend.get_job(job_id)).status is JobStatus.DISCARDED


async def test_an_unknown_status_reads_as_discarded_and_blocks_nothing(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path) as backend:
        await backend.connect()
    odd = insert_raw(path, status="bogus")
    async with SqliteBackend(path) as backend:
        job = await backend.get_job(odd)
        assert job.status is JobStatus.DISCARDED
        assert "bogus" in job.errors[-1].details
        assert (Healthy.name, JobStatus.DISCARDED) in await backend.count_jobs()
        healthy = await Healthy.builder().with_data("ok").enqueue_to_backend(backend)
        async with Rexecutor(backend, poll_interval=0.05).with_executor(Healthy):
            await wait_for_status(backend, healthy, JobStatus.COMPLETE)
        # A rerun gives the row a real status again.
        await rerun(backend, odd)
        assert (await backend.get_job(odd)).status is JobStatus.SCHEDULED


async def test_a_lone_far_future_row_does_not_stop_the_idle_wait(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path) as backend:
        await backend.connect()
    poison = insert_raw(path, scheduled_at=YEAR_10000_US)
    async with SqliteBackend(path) as backend:
        assert await backend.next_scheduled_at([Healthy.name]) == datetime.max.replace(tzinfo=UTC)
        async with Rexecutor(backend, poll_interval=0.05).with_executor(Healthy):
            await wait_for_status(backend, poison, JobStatus.DISCARDED)
            healthy = await Healthy.builder().with_data("later").enqueue_to_backend(backend)
            await wait_for_status(backend, healthy, JobStatus.COMPLETE)
        await eventually(lambda: Healthy.ran == ["later"])


async def test_text_that_is_not_utf8_is_read_and_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path) as backend:
        await backend.connect()
    poison = insert_raw(path)
    with sqlite3.connect(path) as conn:
        # Another tool stored bytes that are not UTF-8 as TEXT.
        conn.execute("UPDATE jobs SET data = CAST(X'227802ff22' AS TEXT) WHERE id = ?", (poison,))
    async with SqliteBackend(path) as backend:
        listed = await backend.query(Where.everything().node)
        assert [j.id for j in listed] == [poison]
        assert "\ufffd" in str(listed[0].data)
        healthy = await Healthy.builder().with_data("fine").enqueue_to_backend(backend)
        async with Rexecutor(backend, poll_interval=0.05).with_executor(Healthy):
            await wait_for_status(backend, healthy, JobStatus.COMPLETE)
            job = await wait_for_status(backend, poison, JobStatus.DISCARDED)
        assert "not valid UTF-8" in job.errors[-1].details
        # Repaired: it now reads without the lenient fallback.
        with sqlite3.connect(path) as conn:
            conn.execute("SELECT data FROM jobs WHERE id = ?", (poison,)).fetchone()
