"""``apply_transition`` and ``orphaned_jobs`` on PostgreSQL, called directly: the fence is a
compare-and-set on every field, every Transition field is stored as told, and the wake-ups
(local, other processes, cancellation hints) go out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from rexecutor import lifecycle
from rexecutor.backend import FailureRecord, NodeInfo
from rexecutor.backends.postgres import PostgresBackend
from rexecutor.errors import JobNotFound
from rexecutor.job import ErrorType, JobStatus
from rexecutor.lifecycle import Fence, Transition
from rexecutor.testing import FakeClock

from ..backends._helpers import FAILURE, claim_one, enqueue, executing, finished
from ._util import PROMPT, QUIET_AT_LEAST, QUIET_WAIT, drain, listening, seconds_waited

pytestmark = pytest.mark.postgres

START = datetime(2031, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    with FakeClock(START) as fake:
        yield fake


@pytest.fixture
async def other(pg: PostgresBackend, postgres_url: str) -> AsyncIterator[PostgresBackend]:
    """Another node's backend on the same schema, listening."""
    async with PostgresBackend(postgres_url, schema=pg.schema, migrate=False) as backend:
        yield backend


async def test_a_fence_that_differs_in_any_field_changes_nothing(pg: PostgresBackend) -> None:
    job, lease = await executing(pg, node="node-1")
    before = await pg.get_job(job.id)
    done = lifecycle.failed(1, 5, timedelta(0), FAILURE)
    for fence in (
        Fence(JobStatus.SCHEDULED, job.attempt, "node-1"),  # status
        Fence(JobStatus.EXECUTING, job.attempt + 1, "node-1"),  # attempt
        Fence(JobStatus.EXECUTING, job.attempt - 1),  # attempt, any node
        Fence(JobStatus.EXECUTING, job.attempt, "node-2"),  # node
    ):
        assert await pg.apply_transition(job.id, fence, done) is False, fence
        assert await pg.get_job(job.id) == before
    assert await pg.apply_transition(job.id, Fence.held(lease), done)
    # ... and once applied, the same fence no longer holds.
    after = await pg.get_job(job.id)
    assert after.status is JobStatus.RETRYABLE
    assert await pg.apply_transition(job.id, Fence.held(lease), done) is False
    assert await pg.get_job(job.id) == after


async def test_a_fence_without_a_node_matches_any_node(pg: PostgresBackend) -> None:
    job, _ = await executing(pg, node="node-7")
    cancel = lifecycle.cancelled(FailureRecord(ErrorType.CANCELLED, "stop"))
    assert await pg.apply_transition(job.id, Fence(JobStatus.EXECUTING, 1), cancel)
    assert (await pg.get_job(job.id)).status is JobStatus.CANCELLED


async def test_an_unknown_id_raises_job_not_found(pg: PostgresBackend) -> None:
    fence = Fence(JobStatus.SCHEDULED, 0)
    for job_id in (424242, 2**63, -(2**63) - 1):
        with pytest.raises(JobNotFound):
            await pg.apply_transition(job_id, fence, lifecycle.completed())


async def test_status_attempt_run_in_and_error_are_stored(
    pg: PostgresBackend, clock: FakeClock
) -> None:
    job, lease = await executing(pg)
    clock.advance(minutes=3)
    error = FailureRecord(ErrorType.EXCEPTION, "boom", name="ValueError", traceback="tb")
    snooze = Transition(JobStatus.RETRYABLE, attempt=7, run_in=timedelta(seconds=90), error=error)
    assert await pg.apply_transition(job.id, Fence.held(lease), snooze)
    stored = await pg.get_job(job.id)
    assert (stored.status, stored.attempt) == (JobStatus.RETRYABLE, 7)
    assert stored.scheduled_at == clock.now() + timedelta(seconds=90)
    [entry] = stored.errors
    # Stamped with the attempt the fence names (the one that failed), not the new one.
    assert entry.attempt == lease.attempt == 1
    assert entry.recorded_at == clock.now()
    assert (entry.error_type, entry.details) == (ErrorType.EXCEPTION, "boom")
    assert (entry.name, entry.traceback) == ("ValueError", "tb")
    assert stored.completed_at is stored.cancelled_at is stored.discarded_at is None
    # Unset fields leave the row alone: attempt, scheduled_at, errors, max_attempts.
    fence = Fence(JobStatus.RETRYABLE, 7)
    assert await pg.apply_transition(job.id, fence, Transition(JobStatus.SCHEDULED))
    again = await pg.get_job(job.id)
    assert (again.attempt, again.scheduled_at, again.errors) == (7, stored.scheduled_at, [entry])
    assert again.max_attempts == stored.max_attempts


async def test_finishing_statuses_stamp_their_time(pg: PostgresBackend, clock: FakeClock) -> None:
    stamps = {
        JobStatus.COMPLETE: "completed_at",
        JobStatus.CANCELLED: "cancelled_at",
        JobStatus.DISCARDED: "discarded_at",
    }
    for status, column in stamps.items():
        job, lease = await executing(pg)
        clock.advance(seconds=1)
        assert await pg.apply_transition(job.id, Fence.held(lease), Transition(status))
        stored = await pg.get_job(job.id)
        assert stored.status is status
        assert getattr(stored, column) == clock.now()
        assert [c for c in stamps.values() if getattr(stored, c) is not None] == [column]


async def test_min_max_attempts_only_raises_and_reopen_clears_the_finished_times(
    pg: PostgresBackend, clock: FakeClock
) -> None:
    job_id = await finished(pg, JobStatus.DISCARDED, max_attempts=3)
    job = await pg.get_job(job_id)
    assert job.discarded_at == clock.now()
    reopen = Transition(JobStatus.RETRYABLE, min_max_attempts=2, reopen=True)
    assert await pg.apply_transition(job_id, Fence.as_read(job), reopen)
    stored = await pg.get_job(job_id)
    assert (stored.status, stored.max_attempts, stored.discarded_at) == (
        JobStatus.RETRYABLE,
        3,
        None,
    )
    raise_to = Transition(JobStatus.RETRYABLE, min_max_attempts=9)
    assert await pg.apply_transition(job_id, Fence.as_read(stored), raise_to)
    assert (await pg.get_job(job_id)).max_attempts == 9


async def test_rerun_through_the_lifecycle_rule(pg: PostgresBackend, clock: FakeClock) -> None:
    job_id = await finished(pg, JobStatus.COMPLETE, max_attempts=1)
    job = await pg.get_job(job_id)
    clock.advance(hours=2)
    assert await pg.apply_transition(job_id, Fence.as_read(job), lifecycle.rerun(job))
    stored = await pg.get_job(job_id)
    assert (stored.status, stored.attempt, stored.max_attempts) == (JobStatus.RETRYABLE, 1, 2)
    assert stored.completed_at is None
    assert stored.scheduled_at == clock.now()


async def test_a_job_made_ready_wakes_local_and_other_processes(
    pg: PostgresBackend, other: PostgresBackend
) -> None:
    local = pg.subscribe(["ex"])
    remote = other.subscribe(["ex"])
    await listening(other)
    job, lease = await executing(pg)
    await drain(local)
    await drain(remote)
    retry = lifecycle.failed(1, 5, timedelta(0), FAILURE)
    assert await pg.apply_transition(job.id, Fence.held(lease), retry)
    assert await seconds_waited(local, PROMPT) < PROMPT
    assert await seconds_waited(remote, PROMPT) < PROMPT
    # A job that finishes wakes nobody.
    job, lease = await claim_one(pg)  # the retried job, claimed again
    await drain(local)
    await drain(remote)
    assert await pg.apply_transition(job.id, Fence.held(lease), lifecycle.completed())
    assert await seconds_waited(local, QUIET_WAIT) >= QUIET_AT_LEAST


async def test_taking_a_job_from_its_node_sends_the_cancellation_hint(
    pg: PostgresBackend, other: PostgresBackend
) -> None:
    other.subscribe(["ex"])
    hints = other.subscribe_cancellations()
    local_hints = pg.subscribe_cancellations()
    await listening(other)
    job, lease = await executing(pg)
    await drain(hints)
    await drain(local_hints)
    # The node's own outcome (fenced by its lease) sends no hint.
    assert await pg.apply_transition(job.id, Fence.held(lease), lifecycle.completed())
    assert await seconds_waited(hints, QUIET_WAIT) >= QUIET_AT_LEAST
    # A cancel from outside (no node in the fence) does, here and in the other process.
    job, _ = await executing(pg)
    cancel = lifecycle.cancelled(FailureRecord(ErrorType.CANCELLED, "operator"))
    assert await pg.apply_transition(job.id, Fence(JobStatus.EXECUTING, job.attempt), cancel)
    assert await seconds_waited(local_hints, PROMPT) < PROMPT
    assert await seconds_waited(hints, PROMPT) < PROMPT
    # A fence that fails sends nothing.
    await drain(hints)
    assert not await pg.apply_transition(job.id, Fence(JobStatus.EXECUTING, job.attempt), cancel)
    assert await seconds_waited(hints, QUIET_WAIT) >= QUIET_AT_LEAST


async def test_orphaned_jobs_selects_silent_and_unknown_nodes_and_forgets_the_silent(
    pg: PostgresBackend, clock: FakeClock
) -> None:
    await pg.record_heartbeat(NodeInfo("dead", host="h", pid=1))
    await pg.record_heartbeat(NodeInfo("alive", host="h", pid=2))
    dead_job, _ = await executing(pg, node="dead")
    alive_job, _ = await executing(pg, node="alive")
    ghost_job, _ = await executing(pg, node="never-beat")
    waiting = await enqueue(pg)
    clock.advance(minutes=10)
    await pg.record_heartbeat(NodeInfo("alive", host="h", pid=2))
    found = await pg.orphaned_jobs(timedelta(minutes=5))
    assert [j.id for j in found] == [dead_job.id, ghost_job.id]
    assert [j.attempted_by for j in found] == ["dead", "never-beat"]
    assert all(j.status is JobStatus.EXECUTING for j in found)
    assert [n.node_id for n in await pg.list_nodes()] == ["alive"]
    # Selecting changes no job: the caller decides and applies.
    assert (await pg.get_job(dead_job.id)).status is JobStatus.EXECUTING
    assert (await pg.get_job(waiting)).status is JobStatus.SCHEDULED
    for job in found:
        fence = Fence(JobStatus.EXECUTING, job.attempt, job.attempted_by)
        assert await pg.apply_transition(job.id, fence, lifecycle.orphaned(job))
    rescued = await pg.get_job(dead_job.id)
    assert rescued.status is JobStatus.RETRYABLE
    assert rescued.errors[-1].error_type is ErrorType.ORPHANED
    assert rescued.errors[-1].recorded_at == clock.now()
    assert (await pg.get_job(alive_job.id)).status is JobStatus.EXECUTING
    assert await pg.orphaned_jobs(timedelta(minutes=5)) == []


def test_the_capabilities_are_declared() -> None:
    caps = PostgresBackend.capabilities
    assert caps.transactional_enqueue and caps.cross_process_wakeups and caps.durable
    assert caps.multi_process and caps.multi_host and caps.follows_test_clock
