"""Worker processes, an enqueuer and the command line through a real PgBouncer in transaction
pooling mode (tests/support/pgbouncer.py): every job runs exactly once, wake-ups come through
the direct ``listen_url``, and without one the workers say they poll and still finish.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from rexecutor import JobStatus
from rexecutor.backend import EnqueuableJob
from rexecutor.backends import LISTEN_URL_ENV_VAR, TRANSACTION_POOLING_ENV_VAR
from rexecutor.backends.postgres import PostgresBackend
from rexecutor.cli import main
from tests.support.pgbouncer import Bouncer
from tests.support.postgres import pg_url, reset_tables
from tests.support.processes import ledger_counts, start_worker, stop, wait_until
from tests.support.queue import jobs

pytestmark = pytest.mark.postgres

POLLING = "does not LISTEN"
JOBS = 300
#: Each job sleeps this long, so that one worker cannot take them all before the other polls.
SLEEP_MS = 100


@pytest.fixture
def direct(request: pytest.FixtureRequest) -> str:
    """The test database on the server itself, emptied."""
    conninfo = request.getfixturevalue("postgres_url")
    asyncio.run(reset_tables(conninfo))
    return pg_url(conninfo)


@pytest.fixture
def bounced(direct: str, pgbouncer: Bouncer) -> str:
    """The same database through PgBouncer."""
    return pgbouncer.url(direct)


def listeners(direct: str) -> int:
    """Sessions on the server itself whose last statement was a LISTEN (the wake-up
    listeners; a pooled connection never sends one)."""
    with psycopg.connect(direct, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN %%' AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def nodes(direct: str) -> int:
    """Nodes that have registered (a worker registers its node as it starts)."""
    with psycopg.connect(direct, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM rexecutor_nodes").fetchone()
    assert row is not None
    return int(row[0])


def enqueue_through(bounced: str, count: int) -> None:
    """Enqueue ``count`` jobs through PgBouncer: one at a time for a third of them (the same
    statement many times over, which psycopg would otherwise prepare), the rest in a batch."""

    async def run() -> None:
        async with PostgresBackend(bounced, transaction_pooling=True, migrate=False) as backend:
            singles = count // 3
            for _ in range(singles):
                await backend.enqueue(EnqueuableJob("ledger", SLEEP_MS))
            await backend.enqueue_many([EnqueuableJob("ledger", SLEEP_MS)] * (count - singles))

    asyncio.run(run())


@pytest.fixture
def workers() -> Iterator[list[object]]:
    """The worker processes a test starts, stopped at the end whatever happens."""
    started: list[object] = []
    yield started
    for process in started:
        stop(process)  # type: ignore[arg-type]


def run_two_workers(
    direct: str,
    bounced: str,
    ledger: Path,
    started: list[object],
    wait_listening: bool,
    **env: str,
) -> list[str]:
    processes = [
        start_worker(bounced, ledger, **{TRANSACTION_POOLING_ENV_VAR: "1", **env}) for _ in range(2)
    ]
    started.extend(processes)
    # Both workers up before the jobs come, so that both take a share.
    wait_until(lambda: nodes(direct) >= 2, timeout=30)
    if wait_listening:
        wait_until(lambda: listeners(direct) >= 2, timeout=30)
    enqueue_through(bounced, JOBS)
    wait_until(lambda: sum(ledger_counts(ledger).values()) >= JOBS, timeout=30, interval=0.2)
    outputs = [stop(process) for process in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    return outputs


def assert_each_ran_once(direct: str, ledger: Path) -> None:
    counts = ledger_counts(ledger)
    assert len(counts) == JOBS and set(counts.values()) == {1}, "a job ran twice or not at all"
    rows = jobs(direct)
    assert len(rows) == JOBS
    assert {(job.status, job.attempt) for job in rows} == {(JobStatus.COMPLETE, 1)}
    assert len({line.split()[2] for line in ledger.read_text().splitlines()}) == 2


def test_two_workers_through_pgbouncer_are_woken_through_the_listen_url(
    direct: str, bounced: str, tmp_path: Path, workers: list[object]
) -> None:
    ledger = tmp_path / "ledger"
    # Runners poll once a minute: jobs enqueued while they idle run within the 30 s the
    # test waits only because the enqueue's notification reached their listeners.
    outputs = run_two_workers(
        direct, bounced, ledger, workers, True, **{LISTEN_URL_ENV_VAR: direct, "POLL_MS": "60000"}
    )
    assert not any(POLLING in out for out in outputs), outputs
    assert_each_ran_once(direct, ledger)


def test_two_workers_through_pgbouncer_without_listen_url_poll_and_say_so(
    direct: str, bounced: str, tmp_path: Path, workers: list[object]
) -> None:
    ledger = tmp_path / "ledger"
    outputs = run_two_workers(direct, bounced, ledger, workers, False)
    assert listeners(direct) == 0
    for out in outputs:
        assert out.count(POLLING) == 1, out
        assert "listen_url" in out
    assert_each_ran_once(direct, ledger)


def test_the_command_line_reads_and_writes_through_pgbouncer(
    direct: str, bounced: str, capsys: pytest.CaptureFixture[str]
) -> None:
    enqueue_through(bounced, 12)
    options = ["--backend", bounced, "--transaction-pooling", "--listen-url", direct]
    # More runs of the same statements than psycopg's prepare threshold (5).
    for _ in range(7):
        assert main([*options, "jobs", "list", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert len(listed) == 12
    assert main([*options, "jobs", "cancel", str(listed[0]["id"])]) == 0
    assert "cancel" in capsys.readouterr().out
    assert main([*options, "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats, "stats printed nothing"
    assert {job.status for job in jobs(direct)} == {JobStatus.CANCELLED, JobStatus.SCHEDULED}
