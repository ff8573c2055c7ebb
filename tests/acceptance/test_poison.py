"""Poison rows with real worker processes (issue 11), on SQLite and PostgreSQL.

Rows that no code path of the library would write, put in the table with raw SQL as a bad
migration, a manual edit or another program might: a due job whose ``scheduled_at`` cannot be
read back (before year 1), one whose data does not fit its executor, one whose error history
is malformed, and one scheduled after year 9999. Two workers must set the due ones aside as
discarded (or cancelled) with an error saying what was wrong, never run them, and go on
running every ordinary job, before and after; then both stop cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from rexecutor import Backend, Job, JobStatus, Where
from rexecutor.backends import backend_from_url
from rexecutor.cli import main
from tests.hostile.checks import check_pages, dashboard, strict_json
from tests.support.processes import ledger_counts, start_worker, stop, wait_until
from tests.support.queue import jobs, seed, with_backend

pytestmark = pytest.mark.slow

SHUTDOWN_SECONDS = 5
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Poison:
    """One raw row: the columns that make it poison, and what its error must mention."""

    label: str
    due: bool
    mentions: str  # a regular expression the recorded error must match


POISONS = [
    Poison("scheduled before year 1", due=True, mentions=r"schedul"),
    Poison("data that is not an int", due=True, mentions=r"\bdata\b"),
    Poison("malformed error history", due=True, mentions=r"\berrors?\b"),
    Poison("scheduled after year 9999", due=False, mentions=""),
]


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _sqlite_rows() -> list[dict[str, Any]]:
    now = _us(datetime.now(UTC))
    base = {"data": "0", "errors": "[]", "max_attempts": 5, "scheduled_at": now}
    year_0 = _us(datetime(1, 1, 1, tzinfo=UTC)) - 86_400 * 10**6
    year_10000 = _us(datetime(9999, 12, 31, 23, 59, tzinfo=UTC)) + 86_400 * 10**6
    return [
        {**base, "scheduled_at": year_0},
        {**base, "data": '"poison"', "max_attempts": 1},
        {**base, "errors": '[{"nonsense": true}]'},
        {**base, "scheduled_at": year_10000},
    ]


def _insert_sqlite(path: str) -> list[int]:
    now = _us(datetime.now(UTC))
    ids: list[int] = []
    with closing(sqlite3.connect(path)) as conn:
        for row in _sqlite_rows():
            cursor = conn.execute(
                "INSERT INTO jobs (status, executor, data, metadata, attempt, max_attempts, "
                "priority, tags, errors, inserted_at, scheduled_at) "
                "VALUES ('scheduled', 'ledger', ?, 'null', 0, ?, 0, '[]', ?, ?, ?)",
                [row["data"], row["max_attempts"], row["errors"], now, row["scheduled_at"]],
            )
            assert cursor.lastrowid is not None
            ids.append(cursor.lastrowid)
        conn.commit()
    return ids


def _insert_postgres(url: str) -> list[int]:
    rows = [
        ("0", "[]", 5, "0001-01-01 00:00:00+00 BC"),
        ('"poison"', "[]", 1, "now"),
        ("0", '[{"nonsense": true}]', 5, "now"),
        ("0", "[]", 5, "10000-06-01 00:00:00+00"),
    ]
    ids: list[int] = []
    with psycopg.connect(url, autocommit=True) as conn:
        for data, errors, max_attempts, scheduled_at in rows:
            row = conn.execute(
                "INSERT INTO rexecutor_jobs (executor, data, errors, max_attempts, scheduled_at) "
                "VALUES ('ledger', %s::jsonb, %s::jsonb, %s, %s::timestamptz) RETURNING id",
                [data, errors, max_attempts, scheduled_at],
            ).fetchone()
            assert row is not None
            ids.append(int(row[0]))
    return ids


def insert_poison(url: str) -> list[int]:
    """Write the poison rows with raw SQL (after the schema exists); returns their ids."""

    async def migrate(backend: Backend) -> None:
        return None

    with_backend(url, migrate)
    if url.startswith("sqlite:///"):
        return _insert_sqlite(url.removeprefix("sqlite:///"))
    return _insert_postgres(url)


def get(url: str, job_id: int) -> Job[Any, Any]:
    async def fetch() -> Job[Any, Any]:
        async with backend_from_url(url) as backend:
            return await backend.get_job(job_id)

    return asyncio.run(fetch())


def all_complete(url: str, ids: list[int]) -> bool:
    # Only these rows are read: reading the poison ones is checked on its own, at the end.
    found = with_backend(url, lambda backend: backend.query(Where.id_in(ids).node))
    return len(found) == len(ids) and all(j.status is JobStatus.COMPLETE for j in found)


def set_aside(url: str, ids: list[int]) -> bool:
    return all(get(url, i).status in (JobStatus.DISCARDED, JobStatus.CANCELLED) for i in ids)


def test_poison_rows_are_set_aside_and_two_workers_keep_running(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = tmp_path / "ledger"
    poison_ids = insert_poison(url)
    due = [i for i, p in zip(poison_ids, POISONS, strict=True) if p.due]
    [future] = [i for i, p in zip(poison_ids, POISONS, strict=True) if not p.due]
    workers = [
        # Default heartbeats: nothing here needs a rescue, and a loaded machine must not fake one.
        start_worker(url, ledger, "--shutdown-timeout", str(SHUTDOWN_SECONDS))
        for _ in range(2)
    ]
    outputs: list[str] = []
    try:
        first = seed(url, "ledger", 20, data=10)
        wait_until(lambda: all_complete(url, first), timeout=30)
        wait_until(lambda: set_aside(url, due), timeout=30)
        # The claim loops survived the poison: jobs enqueued after it still run.
        second = seed(url, "ledger", 20, data=0)
        wait_until(lambda: all_complete(url, second), timeout=30)
        assert [w.poll() for w in workers] == [None, None], "a worker died"
    finally:
        for worker in workers:
            try:
                outputs.append(stop(worker, timeout=SHUTDOWN_SECONDS + 10))
            except subprocess.TimeoutExpired:
                worker.kill()
                outputs.append(worker.communicate()[0])
        for number, output in enumerate(outputs, 1):
            print(f"--- worker {number} ---\n{output}")  # shown when the test fails
    assert [w.returncode for w in workers] == [0, 0], "\n".join(outputs)

    runs = ledger_counts(ledger)
    assert not set(poison_ids) & set(runs), "a poison row was handed to execute"
    assert all(runs[i] == 1 for i in first + second)
    for job_id, poison in zip(poison_ids, POISONS, strict=True):
        job = get(url, job_id)  # readable again, whatever was wrong with it
        if not poison.due:
            assert job_id == future
            assert job.status in (JobStatus.SCHEDULED, JobStatus.DISCARDED, JobStatus.CANCELLED)
            continue
        assert job.status in (JobStatus.DISCARDED, JobStatus.CANCELLED), (poison.label, job)
        assert job.errors, f"{poison.label}: set aside without an error"
        details = job.errors[-1].details
        assert re.search(poison.mentions, details), f"{poison.label}: {details!r}"
    assert {j.id for j in jobs(url)} >= set(poison_ids), "a poison row vanished"

    # Every row, poison included, lists and shows through the command line and the dashboard.
    capsys.readouterr()  # the workers' output, printed above
    assert main(["--backend", url, "jobs", "list", "--json", "--limit", "100"]) == 0
    listed = strict_json(capsys.readouterr().out)
    assert set(poison_ids) <= {job["id"] for job in listed}
    for job_id in poison_ids:
        assert main(["--backend", url, "jobs", "show", str(job_id), "--json"]) == 0
        assert strict_json(capsys.readouterr().out)["id"] == job_id
    asyncio.run(show_on_dashboard(url, poison_ids))


async def show_on_dashboard(url: str, ids: list[int]) -> None:
    async with backend_from_url(url) as backend, dashboard(backend) as web:
        for job_id in ids:
            await check_pages(web, job_id)
