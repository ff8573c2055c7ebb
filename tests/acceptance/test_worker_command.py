"""The worker command and several worker processes on one SQLite file (real processes)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rexecutor import JobStatus, Where
from rexecutor.backend import EnqueuableJob
from rexecutor.backends import SqliteBackend
from tests.support.processes import ROOT, ledger_counts, start_worker, stop, wait_until

pytestmark = pytest.mark.slow


async def _seed(path: Path, count: int, sleep_ms: int = 0) -> None:
    async with SqliteBackend(str(path)) as backend:
        for start in range(0, count, 1000):
            n = min(1000, count - start)
            await backend.enqueue_many([EnqueuableJob("ledger", sleep_ms)] * n)


async def _statuses(path: Path) -> dict[JobStatus, int]:
    async with SqliteBackend(str(path)) as backend:
        jobs = await backend.query(Where.everything().node)
    counts: dict[JobStatus, int] = {}
    for job in jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    return counts


def test_sigkill_mid_run_loses_no_committed_job_and_leaves_a_sound_file(tmp_path: Path) -> None:
    db, ledger = tmp_path / "jobs.db", tmp_path / "ledger"
    asyncio.run(_seed(db, 300, sleep_ms=20))
    worker = start_worker(f"sqlite:///{db}", ledger)
    wait_until(lambda: sum(ledger_counts(ledger).values()) >= 50, timeout=60)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    statuses = asyncio.run(_statuses(db))
    assert sum(statuses.values()) == 300
    assert statuses[JobStatus.COMPLETE] >= 1


def test_worker_command_processes_then_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    db, ledger = tmp_path / "jobs.db", tmp_path / "ledger"
    asyncio.run(_seed(db, 20, sleep_ms=300))
    worker = start_worker(f"sqlite:///{db}", ledger, "--shutdown-timeout", "10")
    wait_until(lambda: sum(ledger_counts(ledger).values()) >= 1, timeout=60)
    started = time.monotonic()
    output = stop(worker, signal.SIGTERM)
    assert worker.returncode == 0, output
    assert time.monotonic() - started < 10
    statuses = asyncio.run(_statuses(db))
    assert JobStatus.EXECUTING not in statuses
    assert statuses[JobStatus.COMPLETE] == 20


def test_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    db, ledger = tmp_path / "jobs.db", tmp_path / "ledger"
    asyncio.run(_seed(db, 20, sleep_ms=20_000))
    worker = start_worker(f"sqlite:///{db}", ledger, "--shutdown-timeout", "60")
    time.sleep(2)
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    worker.communicate(timeout=10)
    assert time.monotonic() - started < 5
    assert worker.returncode == 128 + signal.SIGTERM


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module:rex", "cannot import module 'no_such_module'"),
        ("tests.apps.ledger:missing", "has no attribute 'missing'"),
        ("tests.apps.ledger", "expected MODULE:ATTRIBUTE"),
        ("tests.apps.ledger:LedgerJob", "is the class LedgerJob, expected a Rexecutor"),
    ],
)
def test_a_bad_target_is_a_clear_error_not_a_traceback(target: str, message: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rexecutor", "--backend", "memory://", "worker", target],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
