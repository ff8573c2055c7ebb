"""Several worker processes sharing one store: every job runs exactly once.

SQLite: 4 processes on one file, 5,000 jobs. PostgreSQL: 4 processes, each with its own
pool, 20,000 jobs. Executions are counted in a ledger written by the jobs themselves.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rexecutor import JobStatus
from tests.support.processes import ledger_counts, start_worker, stop, wait_until
from tests.support.queue import seed, statuses

pytestmark = pytest.mark.slow


def test_four_workers_run_every_job_exactly_once(url: str, tmp_path: Path) -> None:
    count = 20_000 if url.startswith("postgresql") else 5_000
    ledger = tmp_path / "ledger"
    seed(url, "ledger", count)
    started = time.monotonic()
    workers = [start_worker(url, ledger) for _ in range(4)]
    try:
        wait_until(lambda: sum(ledger_counts(ledger).values()) >= count, timeout=300, interval=0.5)
        elapsed = time.monotonic() - started
    finally:
        outputs = [stop(w) for w in workers]
    counts = ledger_counts(ledger)
    assert len(counts) == count
    assert set(counts.values()) == {1}, "some job ran twice"
    assert [w.returncode for w in workers] == [0, 0, 0, 0], outputs
    assert statuses(url) == {JobStatus.COMPLETE: count}
    pids = {line.split()[2] for line in ledger.read_text().splitlines()}
    assert len(pids) >= 2  # the work really was shared
    print(f"{count} jobs by 4 worker processes in {elapsed:.1f}s (including start-up)")
