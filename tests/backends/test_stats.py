"""Statistics for operators: counts per executor and status, and finished jobs per minute."""

from __future__ import annotations

from datetime import timedelta

from rexecutor.backend import Backend
from rexecutor.job import JobStatus
from tests.backends._helpers import enqueue, executing, finished, utcnow


async def test_count_jobs_groups_by_executor_and_status(backend: Backend) -> None:
    assert await backend.count_jobs() == {}
    await enqueue(backend, "a")
    await enqueue(backend, "a")
    await finished(backend, JobStatus.COMPLETE, "b")
    await executing(backend, "c")
    assert await backend.count_jobs() == {
        ("a", JobStatus.SCHEDULED): 2,
        ("b", JobStatus.COMPLETE): 1,
        ("c", JobStatus.EXECUTING): 1,
    }


async def test_finished_per_minute_counts_terminal_jobs_by_minute_and_status(
    backend: Backend,
) -> None:
    before = utcnow()
    await finished(backend, JobStatus.COMPLETE, "a")
    await finished(backend, JobStatus.COMPLETE, "b")
    await finished(backend, JobStatus.DISCARDED, "c")
    await enqueue(backend, "d")
    rows = await backend.finished_per_minute(timedelta(minutes=5))
    totals: dict[JobStatus, int] = {}
    for minute, status, count in rows:
        assert minute.second == 0 and minute.microsecond == 0
        assert minute.utcoffset() == timedelta(0)
        assert before - timedelta(minutes=1) <= minute <= utcnow()
        totals[status] = totals.get(status, 0) + count
    assert totals == {JobStatus.COMPLETE: 2, JobStatus.DISCARDED: 1}
    assert rows == sorted(rows, key=lambda r: (r[0], r[1]))
    assert await backend.finished_per_minute(timedelta(0)) == []
