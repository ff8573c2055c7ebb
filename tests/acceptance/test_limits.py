"""Cross-node limits with 4 real worker processes on one store, checked from the rows.

Every figure is counted from the stored jobs (``attempted_at`` to ``completed_at``), never
from the workers' own counters: the global limit's peak, each partition's peak, the starts in
any sliding window of the rate limit, a pause that stops every worker and a resume that
restarts them, and a SIGKILLed worker whose places are freed by the rescue.
"""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rexecutor import Job, JobStatus
from rexecutor.backend import Backend, EnqueuableJob
from rexecutor.control import ControlChange
from tests.support.processes import ledger_counts, start_worker, stop, wait_until
from tests.support.queue import jobs, with_backend

pytestmark = pytest.mark.slow

#: The workers' poll interval (tests/apps/ledger.py), and what a pause may take beyond it.
POLL = timedelta(seconds=0.2)
SLACK = timedelta(seconds=0.3)


def peak(intervals: Iterable[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one instant; one ending when another starts is not overlap."""
    events = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
        key=lambda e: (e[0], e[1]),
    )
    running = best = 0
    for _, step in events:
        running += step
        best = max(best, running)
    return best


def ran(job: Job[Any, Any]) -> tuple[datetime, datetime]:
    assert job.attempted_at is not None and job.completed_at is not None
    return job.attempted_at, job.completed_at


def most_starts_in_a_window(starts: list[datetime], period: timedelta) -> int:
    starts = sorted(starts)
    best = 0
    j = 0
    for i, first in enumerate(starts):
        j = max(j, i)
        while j < len(starts) and starts[j] < first + period:
            j += 1
        best = max(best, j - i)
    return best


def enqueue(url: str, batch: list[EnqueuableJob]) -> None:
    async def action(backend: Backend) -> None:
        await backend.enqueue_many(batch)

    with_backend(url, action)


def change(url: str, name: str, what: ControlChange) -> datetime:
    """Apply ``what``; returns the stored time of the change (the store's clock)."""

    async def action(backend: Backend) -> datetime:
        await backend.change_executor(name, what)
        [state] = await backend.executor_states([name])
        assert state.updated_at is not None
        return state.updated_at

    return with_backend(url, action)


def by_executor(url: str) -> dict[str, list[Job[Any, Any]]]:
    found: dict[str, list[Job[Any, Any]]] = defaultdict(list)
    for job in jobs(url):
        found[job.executor].append(job)
    return found


def test_limits_hold_across_four_workers(url: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    batch = [EnqueuableJob("limited", 100) for _ in range(60)]
    # The hot tenant's long jobs head the queue; the other tenants' short ones must get by.
    batch += [EnqueuableJob("tenant", 400, partition_key="hot") for _ in range(12)]
    batch += [EnqueuableJob("tenant", 30, partition_key=f"t{i % 8}") for i in range(48)]
    batch += [EnqueuableJob("rated", 0) for _ in range(35)]
    enqueue(url, batch)
    workers = [start_worker(url, ledger, LIMITS="1") for _ in range(4)]
    try:
        wait_until(lambda: sum(ledger_counts(ledger).values()) >= len(batch), timeout=120)
    finally:
        outputs = [stop(w) for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0, 0], outputs
    found = by_executor(url)
    assert all(j.status is JobStatus.COMPLETE for group in found.values() for j in group)
    assert set(ledger_counts(ledger).values()) == {1}, "a job ran twice"

    limited = [ran(j) for j in found["limited"]]
    assert peak(limited) <= 5
    assert peak(limited) >= 3, "the limit was never approached: the test proves nothing"
    # The work was shared (one node may hold every place of a small global limit).
    assert len({j.attempted_by for group in found.values() for j in group}) >= 2

    tenants: dict[str | None, list[tuple[datetime, datetime]]] = defaultdict(list)
    for job in found["tenant"]:
        tenants[job.partition_key].append(ran(job))
    assert max(peak(spans) for spans in tenants.values()) <= 2
    # No head-of-line blocking: while "hot" was at its limit, other tenants' jobs ran.
    hot_busy = list(tenants["hot"])
    others = [span for key, spans in tenants.items() if key != "hot" for span in spans]
    assert any(any(s < end and start < e for start, end in hot_busy) for s, e in others)

    starts = [ran(j)[0] for j in found["rated"]]
    assert most_starts_in_a_window(starts, timedelta(seconds=1)) <= 10
    # 35 jobs at 10 a second cannot all start within 3 s, and the limit does not starve.
    assert max(starts) - min(starts) >= timedelta(seconds=3)
    print(
        f"peaks: global {peak(limited)}/5, partition "
        f"{max(peak(s) for s in tenants.values())}/2, rate "
        f"{most_starts_in_a_window(starts, timedelta(seconds=1))}/10 per s"
    )


def test_pause_resume_and_a_killed_worker(url: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    count = 80
    enqueue(url, [EnqueuableJob("limited", 150) for _ in range(count)])
    workers = [start_worker(url, ledger, LIMITS="1", RESCUE_MS="1500") for _ in range(4)]
    try:
        wait_until(lambda: sum(ledger_counts(ledger).values()) >= 10, timeout=60)
        paused_at = change(url, "limited", ControlChange(paused=True))
        time.sleep(1.0)
        done_while_paused = sum(ledger_counts(ledger).values())
        started = [j.attempted_at for j in jobs(url) if j.attempted_at is not None]
        late = [at for at in started if at > paused_at + POLL + SLACK]
        assert late == [], f"{len(late)} jobs started after the pause"
        time.sleep(0.5)
        assert sum(ledger_counts(ledger).values()) == done_while_paused

        # A worker dies holding places; the rescue gives them back and the rest runs.
        change(url, "limited", ControlChange(paused=False))
        wait_until(
            lambda: any(j.status is JobStatus.EXECUTING and j.attempted_by for j in jobs(url)),
            timeout=10,
        )
        holder = next(j.attempted_by for j in jobs(url) if j.status is JobStatus.EXECUTING)
        victim = next(w for w in workers if holder and str(w.pid) in holder)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        wait_until(lambda: all(j.status is JobStatus.COMPLETE for j in jobs(url)), timeout=60)
    finally:
        outputs = [stop(w) for w in workers if w.poll() is None]
    assert outputs is not None
    final = [ran(j) for j in jobs(url)]
    assert peak(final) <= 5
    assert len(ledger_counts(ledger)) == count
