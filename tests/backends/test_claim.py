"""Conformance: ``claim_ready_jobs`` hands out due, ready jobs once, in claim order, and
``next_scheduled_at`` reports the earliest ready job."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from rexecutor.backend import Backend
from rexecutor.job import JobStatus
from rexecutor.testing import FakeClock

from ._helpers import (
    CANCEL,
    FAR_FUTURE,
    assert_between,
    claim_one,
    enqueue,
    executing,
    finished,
    ids,
    mark_cancelled,
    retryable,
    utcnow,
)


async def test_claimed_job_is_executing_with_one_more_attempt(backend: Backend) -> None:
    job_id = await enqueue(backend, data={"k": "v"})
    before = utcnow()
    claimed = await backend.claim_ready_jobs("ex", 10, "node-a")
    after = utcnow()

    assert ids(claimed) == [job_id]
    job = claimed[0]
    assert job.status is JobStatus.EXECUTING
    assert job.attempt == 1
    assert job.attempted_by == "node-a"
    assert job.data == {"k": "v"}
    assert_between(job.attempted_at, before, after)

    stored = await backend.get_job(job_id)
    assert stored.status is JobStatus.EXECUTING
    assert stored.attempt == 1
    assert stored.attempted_by == "node-a"
    assert stored.attempted_at == job.attempted_at


async def test_claim_leaves_scheduled_at_and_errors_alone(backend: Backend) -> None:
    when = utcnow() - timedelta(minutes=5)
    job_id = await enqueue(backend, scheduled_at=when)
    job, _ = await claim_one(backend)
    assert job.id == job_id
    assert job.scheduled_at == when
    assert job.errors == []
    assert job.completed_at is None


async def test_a_claimed_job_is_not_claimed_again(backend: Backend) -> None:
    await enqueue(backend)
    assert len(await backend.claim_ready_jobs("ex", 10, "node-a")) == 1
    assert await backend.claim_ready_jobs("ex", 10, "node-a") == []
    assert await backend.claim_ready_jobs("ex", 10, "node-b") == []


async def test_jobs_scheduled_in_the_future_are_not_claimed(backend: Backend) -> None:
    await enqueue(backend, scheduled_at=utcnow() + FAR_FUTURE)
    await enqueue(backend, scheduled_at=utcnow() + timedelta(seconds=1))
    assert await backend.claim_ready_jobs("ex", 10, "node-a") == []


async def test_a_job_becomes_claimable_once_its_time_has_come(
    backend: Backend, clock: FakeClock
) -> None:
    job_id = await enqueue(backend, scheduled_at=utcnow() + timedelta(milliseconds=30))
    clock.advance(milliseconds=80)
    assert ids(await backend.claim_ready_jobs("ex", 10, "node-a")) == [job_id]


async def test_due_jobs_are_claimed_whether_past_or_now(backend: Backend) -> None:
    past = await enqueue(backend, scheduled_at=utcnow() - timedelta(days=1))
    now = await enqueue(backend)
    later = await enqueue(backend, scheduled_at=utcnow() + FAR_FUTURE)
    claimed = ids(await backend.claim_ready_jobs("ex", 10, "node-a"))
    assert sorted(claimed) == sorted([past, now])
    assert later not in claimed


async def test_only_jobs_of_the_named_executor_are_claimed(backend: Backend) -> None:
    mine = await enqueue(backend, "mine")
    await enqueue(backend, "theirs")
    await enqueue(backend, "mine-too")
    assert ids(await backend.claim_ready_jobs("mine", 10, "node-a")) == [mine]


async def test_retryable_jobs_that_are_due_are_claimed_with_the_next_attempt(
    backend: Backend,
) -> None:
    job_id = await retryable(backend)
    job, _ = await claim_one(backend)
    assert job.id == job_id
    assert job.status is JobStatus.EXECUTING
    assert job.attempt == 2


async def test_retryable_jobs_waiting_for_their_delay_are_not_claimed(backend: Backend) -> None:
    await retryable(backend, delay=FAR_FUTURE)
    assert await backend.claim_ready_jobs("ex", 10, "node-a") == []


async def test_executing_and_finished_jobs_are_not_claimed(backend: Backend) -> None:
    await executing(backend)
    for status in (JobStatus.COMPLETE, JobStatus.CANCELLED, JobStatus.DISCARDED):
        await finished(backend, status, "ex")
    cancelled_before_running = await enqueue(backend)
    assert await mark_cancelled(backend, cancelled_before_running, None, CANCEL)
    assert await backend.claim_ready_jobs("ex", 10, "node-a") == []


async def test_claim_order_is_priority_then_scheduled_at_then_id(backend: Backend) -> None:
    now = utcnow()
    same_time = now - timedelta(hours=1)
    low_priority_oldest = await enqueue(backend, priority=2, scheduled_at=now - timedelta(hours=3))
    second_at_same_time = await enqueue(backend, priority=1, scheduled_at=same_time)
    older = await enqueue(backend, priority=1, scheduled_at=now - timedelta(hours=2))
    third_at_same_time = await enqueue(backend, priority=1, scheduled_at=same_time)
    urgent_newest = await enqueue(backend, priority=0, scheduled_at=now - timedelta(minutes=1))

    order = []
    for _ in range(5):
        job, _ = await claim_one(backend)
        order.append(job.id)
    assert order == [
        urgent_newest,
        older,
        second_at_same_time,
        third_at_same_time,
        low_priority_oldest,
    ]


async def test_limit_takes_the_first_jobs_in_claim_order(backend: Backend) -> None:
    first = await enqueue(backend, priority=0)
    last = await enqueue(backend, priority=9)
    second = await enqueue(backend, priority=1)
    assert sorted(ids(await backend.claim_ready_jobs("ex", 2, "node-a"))) == sorted([first, second])
    assert ids(await backend.claim_ready_jobs("ex", 2, "node-a")) == [last]


async def test_limit_is_honoured(backend: Backend) -> None:
    for _ in range(5):
        await enqueue(backend)
    assert len(await backend.claim_ready_jobs("ex", 3, "node-a")) == 3
    assert len(await backend.claim_ready_jobs("ex", 3, "node-a")) == 2
    assert await backend.claim_ready_jobs("ex", 3, "node-a") == []


async def test_limit_zero_claims_nothing(backend: Backend) -> None:
    job_id = await enqueue(backend)
    assert await backend.claim_ready_jobs("ex", 0, "node-a") == []
    assert (await backend.get_job(job_id)).status is JobStatus.SCHEDULED


async def test_claim_on_an_empty_backend_returns_nothing(backend: Backend) -> None:
    assert await backend.claim_ready_jobs("ex", 10, "node-a") == []


async def test_concurrent_claims_never_hand_out_a_job_twice(backend: Backend) -> None:
    expected = {await enqueue(backend, data={"i": i}) for i in range(50)}
    by_node: dict[str, list[int]] = {"node-a": [], "node-b": []}
    while True:
        batches = await asyncio.gather(
            backend.claim_ready_jobs("ex", 7, "node-a"),
            backend.claim_ready_jobs("ex", 7, "node-b"),
            backend.claim_ready_jobs("ex", 7, "node-a"),
            backend.claim_ready_jobs("ex", 7, "node-b"),
        )
        if not any(batches):
            break
        for node, batch in zip(["node-a", "node-b", "node-a", "node-b"], batches, strict=True):
            assert all(job.attempted_by == node for job in batch)
            by_node[node].extend(ids(batch))
    everything = by_node["node-a"] + by_node["node-b"]
    assert len(everything) == len(set(everything)) == 50
    assert set(everything) == expected
    for node, claimed in by_node.items():
        for job_id in claimed:
            stored = await backend.get_job(job_id)
            assert stored.attempt == 1
            assert stored.attempted_by == node


async def test_next_scheduled_at_is_the_earliest_ready_job_of_the_executors(
    backend: Backend,
) -> None:
    now = utcnow()
    await enqueue(backend, "a", scheduled_at=now + timedelta(hours=2))
    earliest = now + timedelta(minutes=30)
    await enqueue(backend, "b", scheduled_at=earliest)
    await enqueue(backend, "c", scheduled_at=now - timedelta(hours=5))
    assert await backend.next_scheduled_at(["a", "b"]) == earliest
    assert await backend.next_scheduled_at(["a"]) == now + timedelta(hours=2)


async def test_next_scheduled_at_counts_retryable_jobs(backend: Backend) -> None:
    before = utcnow()
    await retryable(backend, delay=timedelta(minutes=10))
    after = utcnow()
    await enqueue(backend, scheduled_at=utcnow() + timedelta(hours=1))
    moment = await backend.next_scheduled_at(["ex"])
    assert_between(moment, before + timedelta(minutes=10), after + timedelta(minutes=10))


async def test_next_scheduled_at_ignores_executing_and_finished_jobs(backend: Backend) -> None:
    await executing(backend)
    await finished(backend, JobStatus.COMPLETE)
    assert await backend.next_scheduled_at(["ex"]) is None
    later = utcnow() + timedelta(hours=3)
    await enqueue(backend, scheduled_at=later)
    assert await backend.next_scheduled_at(["ex"]) == later


async def test_next_scheduled_at_is_none_without_ready_jobs(backend: Backend) -> None:
    assert await backend.next_scheduled_at(["ex"]) is None
    await enqueue(backend, "other")
    assert await backend.next_scheduled_at(["ex"]) is None
    assert await backend.next_scheduled_at([]) is None
