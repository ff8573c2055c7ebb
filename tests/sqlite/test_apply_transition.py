"""SQLite: ``apply_transition`` (the one fenced write) and ``orphaned_jobs``, called directly."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rexecutor import _clock
from rexecutor._notify import Subscription
from rexecutor.backend import EnqueuableJob, FailureRecord, Lease, NodeInfo
from rexecutor.backends.sqlite import SqliteBackend
from rexecutor.errors import JobNotFound
from rexecutor.job import ErrorType, Job, JobStatus
from rexecutor.lifecycle import Fence, Transition

NOW = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
NODE = "node-a"
BOOM = FailureRecord(ErrorType.EXCEPTION, "boom", name="ValueError", traceback="tb")


@pytest.fixture
def clock() -> Iterator[list[datetime]]:
    """A settable test clock: ``clock[0]`` is now."""
    moment = [NOW]
    previous = _clock.current_clock()
    _clock.set_clock(lambda: moment[0])
    try:
        yield moment
    finally:
        _clock.set_clock(previous)


@pytest.fixture
async def backend(tmp_path: Path, clock: list[datetime]) -> AsyncIterator[SqliteBackend]:
    async with SqliteBackend(tmp_path / "jobs.db") as opened:
        yield opened


async def _claimed(backend: SqliteBackend, executor: str = "ex") -> Job[Any, Any]:
    await backend.enqueue(EnqueuableJob(executor, {"n": 1}, max_attempts=3))
    [job] = await backend.claim_ready_jobs(executor, 1, NODE)
    return job


def _lease(job: Job[Any, Any]) -> Lease:
    assert job.attempted_by is not None
    return Lease(job.attempted_by, job.attempt)


async def _woken(sub: Subscription, timeout: float) -> bool:
    """Whether ``sub`` was notified within ``timeout`` seconds."""
    started = time.monotonic()
    await sub.wait(timeout)
    return time.monotonic() - started < timeout * 0.8


def _row(backend: SqliteBackend, job_id: int) -> tuple[Any, ...]:
    with sqlite3.connect(backend.path) as conn:
        row: tuple[Any, ...] = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return row


@pytest.mark.parametrize(
    "fence",
    [
        Fence(JobStatus.SCHEDULED, 1, NODE),  # status differs
        Fence(JobStatus.EXECUTING, 2, NODE),  # attempt differs
        Fence(JobStatus.EXECUTING, 1, "node-b"),  # node differs
    ],
)
async def test_a_fence_that_does_not_hold_changes_nothing(
    backend: SqliteBackend, fence: Fence
) -> None:
    job = await _claimed(backend)
    before = _row(backend, job.id)
    transition = Transition(JobStatus.COMPLETE, attempt=0, run_in=timedelta(0), error=BOOM)
    assert await backend.apply_transition(job.id, fence, transition) is False
    assert _row(backend, job.id) == before


async def test_an_unknown_id_is_not_found(backend: SqliteBackend) -> None:
    fence = Fence(JobStatus.SCHEDULED, 0)
    with pytest.raises(JobNotFound):
        await backend.apply_transition(12345, fence, Transition(JobStatus.CANCELLED))
    with pytest.raises(JobNotFound):
        await backend.apply_transition(2**70, fence, Transition(JobStatus.CANCELLED))


async def test_every_field_of_a_transition_is_stored(
    backend: SqliteBackend, clock: list[datetime]
) -> None:
    job = await _claimed(backend)
    clock[0] = NOW + timedelta(seconds=1)
    transition = Transition(
        JobStatus.RETRYABLE, attempt=0, run_in=timedelta(minutes=5), error=BOOM, min_max_attempts=7
    )
    assert await backend.apply_transition(job.id, Fence.held(_lease(job)), transition)
    stored = await backend.get_job(job.id)
    assert stored.status is JobStatus.RETRYABLE
    assert stored.attempt == 0
    assert stored.scheduled_at == clock[0] + timedelta(minutes=5)
    assert stored.max_attempts == 7
    [error] = stored.errors
    # Stamped with the attempt the fence saw, at now.
    assert (error.attempt, error.recorded_at) == (1, clock[0])
    assert (error.error_type, error.details, error.name, error.traceback) == (
        ErrorType.EXCEPTION,
        "boom",
        "ValueError",
        "tb",
    )


async def test_unset_fields_are_left_alone(backend: SqliteBackend) -> None:
    job = await _claimed(backend)
    assert await backend.apply_transition(
        job.id, Fence.held(_lease(job)), Transition(JobStatus.EXECUTING, min_max_attempts=2)
    )
    stored = await backend.get_job(job.id)
    assert (stored.status, stored.attempt, stored.max_attempts) == (JobStatus.EXECUTING, 1, 3)
    assert stored.scheduled_at == job.scheduled_at
    assert stored.errors == []


@pytest.mark.parametrize(
    ("status", "column"),
    [
        (JobStatus.COMPLETE, "completed_at"),
        (JobStatus.CANCELLED, "cancelled_at"),
        (JobStatus.DISCARDED, "discarded_at"),
    ],
)
async def test_finishing_stamps_its_time_and_a_reopen_clears_it(
    backend: SqliteBackend, clock: list[datetime], status: JobStatus, column: str
) -> None:
    job = await _claimed(backend)
    assert await backend.apply_transition(job.id, Fence.held(_lease(job)), Transition(status))
    finished = await backend.get_job(job.id)
    assert getattr(finished, column) == NOW
    assert await backend.apply_transition(
        job.id,
        Fence.as_read(finished),
        Transition(JobStatus.RETRYABLE, run_in=timedelta(0), reopen=True),
    )
    reopened = await backend.get_job(job.id)
    assert reopened.status is JobStatus.RETRYABLE
    assert (reopened.completed_at, reopened.cancelled_at, reopened.discarded_at) == (None,) * 3


async def test_a_job_made_ready_wakes_its_executor(backend: SqliteBackend) -> None:
    job = await _claimed(backend)
    sub = backend.subscribe(["ex"])
    try:
        await sub.wait(0)
        transition = Transition(JobStatus.RETRYABLE, run_in=timedelta(0), error=BOOM)
        assert await backend.apply_transition(job.id, Fence.held(_lease(job)), transition)
        assert await _woken(sub, 2)
    finally:
        sub.close()


async def test_a_job_leaving_a_node_by_an_outside_fence_sends_the_cancellation_hint(
    backend: SqliteBackend,
) -> None:
    job = await _claimed(backend)
    other = await _claimed(backend, "other")
    hints = backend.subscribe_cancellations()
    try:
        await hints.wait(0)
        # The node's own transition: no hint.
        assert await backend.apply_transition(
            other.id, Fence.held(_lease(other)), Transition(JobStatus.COMPLETE)
        )
        assert not await _woken(hints, 0.1)
        # From outside (no node): the node must look for what it lost.
        assert await backend.apply_transition(
            job.id, Fence(JobStatus.EXECUTING, 1), Transition(JobStatus.CANCELLED, error=BOOM)
        )
        assert await _woken(hints, 2)
    finally:
        hints.close()


async def test_orphaned_jobs_are_those_of_silent_or_unknown_nodes(
    backend: SqliteBackend, clock: list[datetime]
) -> None:
    await backend.record_heartbeat(NodeInfo(NODE, "host", 1, NOW, NOW))
    await backend.record_heartbeat(NodeInfo("alive", "host", 2, NOW, NOW))
    silent = await _claimed(backend)
    await backend.enqueue(EnqueuableJob("ex", {"n": 2}))
    [live] = await backend.claim_ready_jobs("ex", 1, "alive")
    await backend.enqueue(EnqueuableJob("ex", {"n": 3}))
    [unknown] = await backend.claim_ready_jobs("ex", 1, "never-seen")
    clock[0] = NOW + timedelta(minutes=10)
    await backend.record_heartbeat(NodeInfo("alive", "host", 2, NOW, clock[0]))
    assert await backend.orphaned_jobs(timedelta(minutes=20)) == []
    orphans = await backend.orphaned_jobs(timedelta(minutes=5))
    assert sorted(j.id for j in orphans) == sorted([silent.id, unknown.id])
    assert all(j.status is JobStatus.EXECUTING for j in orphans)  # nothing decided here
    assert live.id not in {j.id for j in orphans}
    assert [n.node_id for n in await backend.list_nodes()] == ["alive"]  # the silent one forgotten
    for job in orphans:
        fence = Fence(JobStatus.EXECUTING, job.attempt, job.attempted_by)
        assert await backend.apply_transition(job.id, fence, Transition(JobStatus.RETRYABLE))
    assert await backend.orphaned_jobs(timedelta(minutes=5)) == []
