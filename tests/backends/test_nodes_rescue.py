"""Conformance: node heartbeats, rescue of jobs held by silent or unknown nodes, and
``lost_jobs``.

Silence is produced by moving the test clock with ``dead_after=timedelta(0)``; a node that must
count as alive uses a long window instead.
"""

from __future__ import annotations

from datetime import timedelta

from rexecutor.backend import Backend, Lease, NodeInfo
from rexecutor.job import ErrorType, JobStatus
from rexecutor.testing import FakeClock

from ._helpers import (
    CANCEL,
    FAILURE,
    assert_between,
    claim_one,
    enqueue,
    executing,
    finished,
    mark_cancelled,
    mark_complete,
    mark_retryable,
    rescue,
    utcnow,
)

LONG = timedelta(hours=1)
DEAD = timedelta(0)


def _node(node_id: str) -> NodeInfo:
    return NodeInfo(node_id=node_id, host="host-1", pid=4242)


# -- heartbeats ------------------------------------------------------------------------------


async def test_a_heartbeat_registers_the_node(backend: Backend) -> None:
    before = utcnow()
    await backend.record_heartbeat(_node("node-a"))
    after = utcnow()
    [node] = await backend.list_nodes()
    assert node.node_id == "node-a"
    assert node.host == "host-1"
    assert node.pid == 4242
    assert_between(node.heartbeat_at, before, after)
    assert_between(node.started_at, before, after)


async def test_later_heartbeats_move_heartbeat_at_and_keep_started_at(
    backend: Backend, clock: FakeClock
) -> None:
    await backend.record_heartbeat(_node("node-a"))
    [first] = await backend.list_nodes()
    clock.advance(milliseconds=10)
    await backend.record_heartbeat(_node("node-a"))
    [second] = await backend.list_nodes()
    assert second.started_at == first.started_at
    assert first.heartbeat_at is not None
    assert second.heartbeat_at is not None
    assert second.heartbeat_at > first.heartbeat_at


async def test_list_nodes_is_most_recent_heartbeat_first(
    backend: Backend, clock: FakeClock
) -> None:
    for node_id in ["node-a", "node-b", "node-c"]:
        await backend.record_heartbeat(_node(node_id))
        clock.advance(milliseconds=5)
    await backend.record_heartbeat(_node("node-a"))
    assert [n.node_id for n in await backend.list_nodes()] == ["node-a", "node-c", "node-b"]


async def test_list_nodes_is_empty_at_first(backend: Backend) -> None:
    assert await backend.list_nodes() == []


async def test_remove_node_forgets_it(backend: Backend) -> None:
    await backend.record_heartbeat(_node("node-a"))
    await backend.record_heartbeat(_node("node-b"))
    await backend.remove_node("node-a")
    assert [n.node_id for n in await backend.list_nodes()] == ["node-b"]
    await backend.remove_node("never-seen")
    assert [n.node_id for n in await backend.list_nodes()] == ["node-b"]


# -- rescue ----------------------------------------------------------------------------------


async def test_jobs_of_a_silent_node_become_retryable_with_an_orphaned_error(
    backend: Backend,
    clock: FakeClock,
) -> None:
    await backend.record_heartbeat(_node("node-a"))
    job, lease = await executing(backend, node="node-a", max_attempts=3)
    clock.advance(seconds=1)

    before = utcnow()
    rescued = await rescue(backend, DEAD)
    after = utcnow()
    assert rescued == [job.id]

    stored = await backend.get_job(job.id)
    assert stored.status is JobStatus.RETRYABLE
    assert stored.attempt == 1
    assert_between(stored.scheduled_at, before, after)
    [error] = stored.errors
    assert error.error_type is ErrorType.ORPHANED
    assert error.attempt == 1
    assert error.details
    assert_between(error.recorded_at, before, after)

    again, _ = await claim_one(backend, node="node-b")
    assert again.id == job.id
    assert again.attempt == 2
    assert await mark_complete(backend, job.id, lease) is False


async def test_a_rescued_job_out_of_attempts_is_discarded(
    backend: Backend, clock: FakeClock
) -> None:
    await backend.record_heartbeat(_node("node-a"))
    job, _ = await executing(backend, node="node-a", max_attempts=1)
    clock.advance(seconds=1)

    before = utcnow()
    assert await rescue(backend, DEAD) == [job.id]
    after = utcnow()
    stored = await backend.get_job(job.id)
    assert stored.status is JobStatus.DISCARDED
    assert_between(stored.discarded_at, before, after)
    assert [e.error_type for e in stored.errors] == [ErrorType.ORPHANED]
    assert await backend.claim_ready_jobs("ex", 10, "node-b") == []


async def test_rescue_returns_every_job_of_the_silent_node(
    backend: Backend, clock: FakeClock
) -> None:
    await backend.record_heartbeat(_node("node-a"))
    for i in range(3):
        await enqueue(backend, data={"i": i})
    claimed = await backend.claim_ready_jobs("ex", 3, "node-a")
    clock.advance(seconds=1)
    assert sorted(await rescue(backend, DEAD)) == sorted(j.id for j in claimed)


async def test_silent_nodes_are_forgotten_after_a_rescue(
    backend: Backend, clock: FakeClock
) -> None:
    await backend.record_heartbeat(_node("node-a"))
    await executing(backend, node="node-a")
    clock.advance(seconds=1)
    await rescue(backend, DEAD)
    assert await backend.list_nodes() == []


async def test_jobs_of_a_node_that_just_beat_are_left_alone(
    backend: Backend, clock: FakeClock
) -> None:
    await backend.record_heartbeat(_node("node-a"))
    job, lease = await executing(backend, node="node-a")
    clock.advance(seconds=1)
    await backend.record_heartbeat(_node("node-a"))
    before = await backend.get_job(job.id)

    assert await rescue(backend, LONG) == []
    assert await backend.get_job(job.id) == before
    assert [n.node_id for n in await backend.list_nodes()] == ["node-a"]
    assert await mark_complete(backend, job.id, lease) is True


async def test_rescue_touches_only_executing_jobs(backend: Backend, clock: FakeClock) -> None:
    await backend.record_heartbeat(_node("node-1"))
    done = await finished(backend, JobStatus.COMPLETE, "done")
    waiting = await enqueue(backend, "waiting", scheduled_at=utcnow() - timedelta(days=1))
    before = [await backend.get_job(done), await backend.get_job(waiting)]
    clock.advance(seconds=1)
    assert await rescue(backend, DEAD) == []
    assert [await backend.get_job(done), await backend.get_job(waiting)] == before


async def test_jobs_of_an_unknown_node_are_rescued_once_older_than_the_window(
    backend: Backend,
    clock: FakeClock,
) -> None:
    job, _ = await executing(backend, node="never-beat")
    assert await rescue(backend, LONG) == []
    assert (await backend.get_job(job.id)).status is JobStatus.EXECUTING

    clock.advance(seconds=1)
    assert await rescue(backend, DEAD) == [job.id]
    stored = await backend.get_job(job.id)
    assert stored.status is JobStatus.RETRYABLE
    assert [e.error_type for e in stored.errors] == [ErrorType.ORPHANED]


async def test_jobs_of_a_removed_node_count_as_held_by_an_unknown_node(
    backend: Backend, clock: FakeClock
) -> None:
    await backend.record_heartbeat(_node("node-a"))
    job, _ = await executing(backend, node="node-a")
    await backend.remove_node("node-a")
    assert await rescue(backend, LONG) == []
    clock.advance(seconds=1)
    assert await rescue(backend, DEAD) == [job.id]


async def test_a_second_rescue_finds_nothing_more(backend: Backend, clock: FakeClock) -> None:
    await backend.record_heartbeat(_node("node-a"))
    job, _ = await executing(backend, node="node-a")
    clock.advance(seconds=1)
    assert await rescue(backend, DEAD) == [job.id]
    assert await rescue(backend, DEAD) == []
    assert len((await backend.get_job(job.id)).errors) == 1


# -- lost jobs -------------------------------------------------------------------------------


async def test_lost_jobs_are_the_ones_the_node_no_longer_holds(backend: Backend) -> None:
    held, held_lease = await executing(backend, "held", node="node-a")
    cancelled, cancelled_lease = await executing(backend, "cancelled", node="node-a")
    retried, retried_lease = await executing(backend, "retried", node="node-a")
    taken, taken_lease = await executing(backend, "taken", node="node-a")
    assert await mark_cancelled(backend, cancelled.id, None, CANCEL)
    assert await mark_retryable(backend, retried.id, retried_lease, timedelta(0), FAILURE)
    assert await mark_retryable(backend, taken.id, taken_lease, timedelta(0), FAILURE)
    await claim_one(backend, "taken", node="node-b")

    leases = {
        held.id: held_lease.attempt,
        cancelled.id: cancelled_lease.attempt,
        retried.id: retried_lease.attempt,
        taken.id: taken_lease.attempt,
        987654: 1,
    }
    lost = await backend.lost_jobs("node-a", leases)
    assert sorted(lost) == sorted([cancelled.id, retried.id, taken.id, 987654])
    assert held.id not in lost


async def test_lost_jobs_include_rescued_ones(backend: Backend, clock: FakeClock) -> None:
    await backend.record_heartbeat(_node("node-a"))
    job, lease = await executing(backend, node="node-a")
    clock.advance(seconds=1)
    assert await backend.lost_jobs("node-a", {job.id: lease.attempt}) == []
    assert await rescue(backend, DEAD) == [job.id]
    assert await backend.lost_jobs("node-a", {job.id: lease.attempt}) == [job.id]


async def test_lost_jobs_with_the_wrong_attempt_or_node(backend: Backend) -> None:
    job, lease = await executing(backend, node="node-a")
    assert await backend.lost_jobs("node-a", {job.id: lease.attempt + 1}) == [job.id]
    assert await backend.lost_jobs("node-b", {job.id: lease.attempt}) == [job.id]
    assert await backend.lost_jobs("node-a", {job.id: lease.attempt}) == []


async def test_lost_jobs_of_nothing_is_nothing(backend: Backend) -> None:
    await executing(backend, node="node-a")
    assert await backend.lost_jobs("node-a", {}) == []


async def test_a_completed_job_is_lost_to_a_stale_holder(backend: Backend) -> None:
    job, lease = await executing(backend, node="node-a")
    assert await mark_complete(backend, job.id, Lease("node-a", lease.attempt))
    assert await backend.lost_jobs("node-a", {job.id: lease.attempt}) == [job.id]
