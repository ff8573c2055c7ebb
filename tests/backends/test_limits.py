"""Conformance: run-time control (pause, resume, scale) and the cross-node limits a claim
obeys (global, partitioned, rate), counted from the stored rows."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from rexecutor.backend import Backend, Lease
from rexecutor.control import ControlChange
from rexecutor.errors import ValidationError
from rexecutor.job import JobStatus
from rexecutor.limits import ClaimLimits, ClaimReport, RateLimit
from rexecutor.query import And
from rexecutor.testing import FakeClock

from ._helpers import enqueue, ids, mark_complete, new_job


async def claim(
    backend: Backend, limits: ClaimLimits | None, want: int = 100, node: str = "node-a"
) -> tuple[list[int], ClaimReport]:
    report = ClaimReport()
    jobs = await backend.claim_ready_jobs("ex", want, node, limits=limits, report=report)
    return ids(jobs), report


async def test_a_paused_executor_is_not_claimed_until_resumed(backend: Backend) -> None:
    job_id = await enqueue(backend)
    await enqueue(backend, executor="other")
    await backend.change_executor("ex", ControlChange(paused=True))

    for limits in (None, ClaimLimits(global_max=5)):
        claimed, report = await claim(backend, limits)
        assert claimed == []
        assert report.paused
    # Other executors and enqueuing go on.
    assert len(await backend.claim_ready_jobs("other", 10, "node-a")) == 1
    second = await enqueue(backend)

    await backend.change_executor("ex", ControlChange(paused=False))
    claimed, report = await claim(backend, None)
    assert claimed == [job_id, second]
    assert not report.paused


async def test_a_resume_wakes_the_executors_runners(backend: Backend) -> None:
    await backend.change_executor("ex", ControlChange(paused=True))
    subscription = backend.subscribe(["ex"])
    try:
        await backend.change_executor("ex", ControlChange(paused=False))
        began = time.monotonic()
        await subscription.wait(5.0)
        assert time.monotonic() - began < 2.0
    finally:
        subscription.close()


async def test_state_is_stored_per_name_and_scale_leaves_pause_alone(backend: Backend) -> None:
    assert await backend.executor_states(["ex"]) == []
    await backend.change_executor("nobody-runs-me", ControlChange(paused=True))
    await backend.change_executor("ex", ControlChange(scale=True, max_concurrency=7))
    await backend.change_executor("ex", ControlChange(paused=True))
    await backend.declare_limits("ex", ClaimLimits(global_max=3))

    states = {s.name: s for s in await backend.executor_states(None)}
    assert set(states) == {"ex", "nobody-runs-me"}
    assert states["nobody-runs-me"].paused
    ex = states["ex"]
    assert (ex.paused, ex.max_concurrency, ex.limits) == (True, 7, ClaimLimits(global_max=3))
    assert ex.updated_at is not None

    await backend.change_executor("ex", ControlChange(scale=True, max_concurrency=None))
    await backend.declare_limits("ex", ClaimLimits())
    [ex] = await backend.executor_states(["ex"])
    assert (ex.paused, ex.max_concurrency, ex.limits) == (True, None, ClaimLimits())


async def test_global_limit_counts_executing_jobs_of_every_node(backend: Backend) -> None:
    limits = ClaimLimits(global_max=3)
    for _ in range(6):
        await enqueue(backend)
    first, _ = await claim(backend, limits, want=2, node="node-a")
    second, report = await claim(backend, limits, want=10, node="node-b")
    assert len(first) == 2
    assert len(second) == 1
    assert report.limited and report.held >= 1  # counted in full only for telemetry
    again, report = await claim(backend, limits, node="node-c")
    assert again == []
    assert report.limited

    # A finished job frees its place; held-back jobs were not charged an attempt.
    assert await mark_complete(backend, first[0], Lease("node-a", 1))
    freed, _ = await claim(backend, limits, node="node-c")
    assert len(freed) == 1
    waiting = [j for j in await backend.query(And(())) if j.status is JobStatus.SCHEDULED]
    assert [j.attempt for j in waiting] == [0, 0]


async def test_partition_limit_lets_other_keys_through(backend: Backend) -> None:
    limits = ClaimLimits(partition_max=2)
    # Key "a" heads the queue with many jobs: it must not block "b", "c" or unkeyed jobs.
    for _ in range(20):
        await backend.enqueue(new_job(partition_key="a"))
    b = [(await backend.enqueue(new_job(partition_key="b"))).job_id for _ in range(3)]
    c = (await backend.enqueue(new_job(partition_key="c"))).job_id
    plain = (await backend.enqueue(new_job())).job_id

    claimed = await backend.claim_ready_jobs("ex", 100, "node-a", limits=limits)
    keys = sorted(str(job.partition_key) for job in claimed)
    assert keys == ["None", "a", "a", "b", "b", "c"]
    assert {int(j.id) for j in claimed} >= {b[0], b[1], c, plain}
    again, report = await claim(backend, limits)
    assert again == []
    assert report.limited


async def test_partition_and_global_limits_together(backend: Backend) -> None:
    limits = ClaimLimits(global_max=3, partition_max=1)
    for key in ("a", "a", "b", "b", "c", "d"):
        await backend.enqueue(new_job(partition_key=key))
    claimed = await backend.claim_ready_jobs("ex", 100, "node-a", limits=limits)
    assert sorted(str(job.partition_key) for job in claimed) == ["a", "b", "c"]


async def test_rate_limit_window_slides(backend: Backend, clock: FakeClock) -> None:
    limits = ClaimLimits(rate=RateLimit(allowed=3, period=timedelta(seconds=60)))
    for _ in range(10):
        await enqueue(backend)
    first, _ = await claim(backend, limits, want=2)
    clock.advance(timedelta(seconds=30))
    second, report = await claim(backend, limits)
    assert (len(first), len(second)) == (2, 1)
    assert report.limited

    clock.advance(timedelta(seconds=29))
    assert (await claim(backend, limits))[0] == []
    # The first two starts leave the window 60 s after they happened; the third stays.
    clock.advance(timedelta(seconds=1, milliseconds=1))
    third, _ = await claim(backend, limits)
    assert len(third) == 2


async def test_rate_limit_per_partition(backend: Backend, clock: FakeClock) -> None:
    limits = ClaimLimits(rate=RateLimit(allowed=1, period=timedelta(minutes=1), per_partition=True))
    for key in ("a", "a", "b", None, None):
        await backend.enqueue(new_job(partition_key=key))
    claimed = await backend.claim_ready_jobs("ex", 100, "node-a", limits=limits)
    assert sorted(str(job.partition_key) for job in claimed) == ["None", "a", "b"]
    clock.advance(timedelta(minutes=1, seconds=1))
    claimed = await backend.claim_ready_jobs("ex", 100, "node-a", limits=limits)
    assert sorted(str(job.partition_key) for job in claimed) == ["None", "a"]


async def test_rate_window_state_is_reported(backend: Backend, clock: FakeClock) -> None:
    limits = ClaimLimits(rate=RateLimit(allowed=5, period=timedelta(minutes=1)))
    await backend.declare_limits("ex", limits)
    for _ in range(3):
        await enqueue(backend)
    await claim(backend, limits)
    [state] = await backend.executor_states(["ex"])
    assert state.started_in_window == 3
    clock.advance(timedelta(minutes=2))
    [state] = await backend.executor_states(["ex"])
    assert state.started_in_window == 0


async def test_partition_key_is_stored_and_read(backend: Backend) -> None:
    job_id = (await backend.enqueue(new_job(partition_key="tenant-42"))).job_id
    many = await backend.enqueue_many(
        [new_job(partition_key="t1"), new_job(), new_job(partition_key="t2", tags=("x",))]
    )
    assert (await backend.get_job(job_id)).partition_key == "tenant-42"
    keys = [(await backend.get_job(r.job_id)).partition_key for r in many]
    assert keys == ["t1", None, "t2"]


@pytest.mark.parametrize("key", ["", "x" * 201, "a\x00b", "\ud800", 42])
async def test_a_bad_partition_key_is_refused(backend: Backend, key: object) -> None:
    with pytest.raises(ValidationError, match="partition key"):
        await backend.enqueue(new_job(partition_key=key))
    assert await backend.count_jobs() == {}
