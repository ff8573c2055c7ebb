"""Conformance: ``prune_jobs`` deletes finished jobs of one terminal status, by the time they
finished or beyond a count, and returns how many it deleted.

Ages are produced with real (short) sleeps rather than a fake clock, because the SQL backends
take "now" from the database.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from rexecutor.backend import Backend, PruneSpec
from rexecutor.errors import ConfigurationError
from rexecutor.job import JobStatus
from rexecutor.pruner import PrunerConfig
from rexecutor.query import Where
from rexecutor.testing import FakeClock

from ._helpers import (
    FAR_FUTURE,
    claim_one,
    enqueue,
    executing,
    find,
    finished,
    mark_complete,
    rerun,
    retryable,
    utcnow,
)

#: Longer than any real pause in these tests, shorter than the pause before pruning.
SHORT_AGE = timedelta(milliseconds=20)

TERMINAL = [JobStatus.COMPLETE, JobStatus.CANCELLED, JobStatus.DISCARDED]


async def _remaining(backend: Backend) -> list[int]:
    return await find(backend, Where.everything())


@pytest.mark.parametrize("status", TERMINAL)
async def test_prune_by_age_deletes_only_the_given_status(
    backend: Backend, clock: FakeClock, status: JobStatus
) -> None:
    by_status = {s: await finished(backend, s, f"ex-{s}") for s in TERMINAL}
    waiting = await enqueue(backend, "w", scheduled_at=utcnow() - timedelta(days=30))
    running, _ = await executing(backend, "r", scheduled_at=utcnow() - timedelta(days=30))
    retrying = await retryable(backend, "y", scheduled_at=utcnow() - timedelta(days=30))
    clock.advance(seconds=1)

    assert await backend.prune_jobs(PruneSpec(status, max_age=SHORT_AGE)) == 1
    kept = await _remaining(backend)
    assert by_status[status] not in kept
    assert set(kept) == {
        *(job_id for s, job_id in by_status.items() if s is not status),
        waiting,
        running.id,
        retrying,
    }


async def test_prune_age_is_measured_from_when_the_job_finished(backend: Backend) -> None:
    long_ago = utcnow() - timedelta(days=2)
    recent = await finished(backend, JobStatus.COMPLETE, scheduled_at=long_ago)
    assert await backend.prune_jobs(PruneSpec(JobStatus.COMPLETE, max_age=timedelta(hours=1))) == 0
    assert await _remaining(backend) == [recent]


@pytest.mark.parametrize("status", TERMINAL)
async def test_prune_age_uses_each_statuses_finish_time(
    backend: Backend, clock: FakeClock, status: JobStatus
) -> None:
    job_id = await finished(backend, status, scheduled_at=utcnow() - timedelta(days=2))
    assert await backend.prune_jobs(PruneSpec(status, max_age=timedelta(hours=1))) == 0
    assert await _remaining(backend) == [job_id]
    clock.advance(seconds=1)
    assert await backend.prune_jobs(PruneSpec(status, max_age=SHORT_AGE)) == 1
    assert await _remaining(backend) == []


async def test_prune_of_a_rerun_job_waits_for_it_to_finish_again(
    backend: Backend, clock: FakeClock
) -> None:
    job_id = await finished(backend, JobStatus.COMPLETE)
    await rerun(backend, job_id)
    clock.advance(seconds=1)
    assert await backend.prune_jobs(PruneSpec(JobStatus.COMPLETE, max_age=SHORT_AGE)) == 0
    _, lease = await claim_one(backend)
    assert await mark_complete(backend, job_id, lease)
    assert await backend.prune_jobs(PruneSpec(JobStatus.COMPLETE, max_age=timedelta(hours=1))) == 0
    assert await _remaining(backend) == [job_id]


async def test_prune_by_length_keeps_the_most_recently_finished(
    backend: Backend, clock: FakeClock
) -> None:
    now = utcnow()
    a = await enqueue(backend, "a", scheduled_at=now - timedelta(hours=3))
    b = await enqueue(backend, "b", scheduled_at=now - timedelta(hours=2))
    c = await enqueue(backend, "c", scheduled_at=now - timedelta(hours=1))
    for executor in ["c", "a", "b"]:  # finish order differs from id and scheduled_at order
        _, lease = await claim_one(backend, executor)
        clock.advance(milliseconds=5)
        job_id = {"a": a, "b": b, "c": c}[executor]
        assert await mark_complete(backend, job_id, lease)
        clock.advance(milliseconds=5)

    assert await backend.prune_jobs(PruneSpec(JobStatus.COMPLETE, max_length=2)) == 1
    assert await _remaining(backend) == [a, b]
    assert await backend.prune_jobs(PruneSpec(JobStatus.COMPLETE, max_length=2)) == 0
    assert await backend.prune_jobs(PruneSpec(JobStatus.COMPLETE, max_length=1)) == 1
    assert await _remaining(backend) == [b]


async def test_prune_by_length_counts_only_the_given_status(backend: Backend) -> None:
    complete = [await finished(backend, JobStatus.COMPLETE, f"c{i}") for i in range(3)]
    discarded = [await finished(backend, JobStatus.DISCARDED, f"d{i}") for i in range(3)]
    pending = await enqueue(backend, "p")
    assert await backend.prune_jobs(PruneSpec(JobStatus.DISCARDED, max_length=0)) == 3
    assert await _remaining(backend) == [*complete, pending]
    assert not set(discarded) & set(await _remaining(backend))


async def test_prune_by_length_larger_than_the_count_deletes_nothing(backend: Backend) -> None:
    kept = [await finished(backend, JobStatus.CANCELLED, f"x{i}") for i in range(2)]
    assert await backend.prune_jobs(PruneSpec(JobStatus.CANCELLED, max_length=5)) == 0
    assert await _remaining(backend) == kept


async def test_prune_only_some_executors(backend: Backend) -> None:
    x = await finished(backend, JobStatus.COMPLETE, "x")
    y = await finished(backend, JobStatus.COMPLETE, "y")
    z = await finished(backend, JobStatus.COMPLETE, "z")
    spec = PruneSpec(JobStatus.COMPLETE, max_length=0, only=frozenset({"x", "z"}))
    assert await backend.prune_jobs(spec) == 2
    assert await _remaining(backend) == [y]
    assert x not in await _remaining(backend)
    assert z not in await _remaining(backend)


async def test_prune_excluding_some_executors(backend: Backend) -> None:
    x = await finished(backend, JobStatus.COMPLETE, "x")
    await finished(backend, JobStatus.COMPLETE, "y")
    await finished(backend, JobStatus.COMPLETE, "z")
    spec = PruneSpec(JobStatus.COMPLETE, max_length=0, exclude=frozenset({"x"}))
    assert await backend.prune_jobs(spec) == 2
    assert await _remaining(backend) == [x]


async def test_prune_by_length_applies_within_the_selected_executors(
    backend: Backend, clock: FakeClock
) -> None:
    other = await finished(backend, JobStatus.COMPLETE, "other")
    mine = []
    for i in range(3):
        clock.advance(milliseconds=5)
        mine.append(await finished(backend, JobStatus.COMPLETE, f"mine-{i}"))
    selected = frozenset(f"mine-{i}" for i in range(3))
    spec = PruneSpec(JobStatus.COMPLETE, max_length=1, only=selected)
    assert await backend.prune_jobs(spec) == 2
    assert await _remaining(backend) == [other, mine[2]]


async def test_prune_with_a_small_batch_size_deletes_everything_selected(
    backend: Backend,
    clock: FakeClock,
) -> None:
    doomed = [await finished(backend, JobStatus.COMPLETE, f"e{i}") for i in range(7)]
    survivor = await enqueue(backend, "s", scheduled_at=utcnow() + FAR_FUTURE)
    clock.advance(seconds=1)
    spec = PruneSpec(JobStatus.COMPLETE, max_age=SHORT_AGE)
    assert await backend.prune_jobs(spec, batch_size=2) == len(doomed)
    assert await _remaining(backend) == [survivor]


async def test_prune_by_length_with_a_small_batch_size(backend: Backend, clock: FakeClock) -> None:
    jobs = []
    for i in range(6):
        jobs.append(await finished(backend, JobStatus.DISCARDED, f"e{i}"))
        clock.advance(milliseconds=5)
    spec = PruneSpec(JobStatus.DISCARDED, max_length=2)
    assert await backend.prune_jobs(spec, batch_size=1) == 4
    assert await _remaining(backend) == jobs[4:]


async def test_prune_of_nothing_returns_zero(backend: Backend) -> None:
    assert await backend.prune_jobs(PruneSpec(JobStatus.COMPLETE, max_length=0)) == 0
    assert await backend.prune_jobs(PruneSpec(JobStatus.COMPLETE, max_age=timedelta(0))) == 0


@pytest.mark.parametrize("status", [JobStatus.SCHEDULED, JobStatus.EXECUTING, JobStatus.RETRYABLE])
async def test_prune_spec_of_a_non_terminal_status_is_rejected(
    backend: Backend, status: JobStatus
) -> None:
    with pytest.raises(ConfigurationError):
        PruneSpec(status, max_age=timedelta(days=1))
    await enqueue(backend)
    assert await backend.prune_jobs(PruneSpec(JobStatus.COMPLETE, max_length=0)) == 0
    assert len(await _remaining(backend)) == 1


async def test_prune_spec_needs_exactly_one_limit(backend: Backend) -> None:
    with pytest.raises(ConfigurationError):
        PruneSpec(JobStatus.COMPLETE)
    with pytest.raises(ConfigurationError):
        PruneSpec(JobStatus.COMPLETE, max_age=timedelta(days=1), max_length=3)
    with pytest.raises(ConfigurationError):
        PruneSpec(JobStatus.COMPLETE, max_length=-1)


@pytest.mark.parametrize("size", [0, -1, True, 2.5, "10"], ids=["0", "-1", "True", "2.5", "str"])
async def test_prune_refuses_a_batch_size_below_one_or_not_whole(
    backend: Backend, size: object
) -> None:
    await finished(backend, JobStatus.COMPLETE)
    spec = PruneSpec(JobStatus.COMPLETE, max_length=0)
    message = (
        "batch_size must be a whole number of at least 1 (rows deleted per statement), "
        f"got {size!r}"
    )
    with pytest.raises(ConfigurationError) as raised:
        await backend.prune_jobs(spec, batch_size=size)  # type: ignore[arg-type]
    assert str(raised.value) == message
    with pytest.raises(ConfigurationError) as raised:
        PrunerConfig("* * * * *", batch_size=size)  # type: ignore[arg-type]
    assert str(raised.value) == message
    assert len(await _remaining(backend)) == 1
