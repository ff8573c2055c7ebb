"""Conformance: ``update_job`` writes data, metadata, max_attempts, priority, tags and
scheduled_at, and nothing else."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from rexecutor.backend import Backend
from rexecutor.errors import JobNotFound, ValidationError
from rexecutor.job import ErrorType, JobError, JobId, JobStatus

from ._helpers import (
    FAR_FUTURE,
    assert_utc,
    claim_one,
    enqueue,
    mark_complete,
    retryable,
    utcnow,
)


async def test_update_writes_the_six_editable_fields(backend: Backend) -> None:
    job_id = await enqueue(backend, data={"v": 1}, tags=("old",), priority=3, max_attempts=2)
    job = await backend.get_job(job_id)
    when = datetime(2035, 6, 1, 8, 0, 0, 250000, tzinfo=UTC)
    job.data = {"v": 2, "nested": {"list": [1, "x"]}}
    job.metadata = {"edited": True}
    job.max_attempts = 9
    job.priority = 4
    job.tags = ["z", "new", "a"]
    job.scheduled_at = when
    await backend.update_job(job)

    stored = await backend.get_job(job_id)
    assert stored.data == {"v": 2, "nested": {"list": [1, "x"]}}
    assert stored.metadata == {"edited": True}
    assert stored.max_attempts == 9
    assert stored.priority == 4
    assert stored.tags == ["z", "new", "a"]
    assert stored.scheduled_at == when
    assert stored.status is JobStatus.SCHEDULED
    assert stored.executor == "ex"
    assert stored.inserted_at == job.inserted_at


async def test_update_can_clear_metadata_and_tags(backend: Backend) -> None:
    job_id = await enqueue(backend, metadata={"m": 1}, tags=("a", "b"))
    job = await backend.get_job(job_id)
    job.metadata = None
    job.tags = []
    await backend.update_job(job)
    stored = await backend.get_job(job_id)
    assert stored.metadata is None
    assert stored.tags == []


async def test_update_leaves_status_attempt_errors_and_timestamps_alone(
    backend: Backend,
) -> None:
    job_id = await retryable(backend, delay=FAR_FUTURE)
    original = await backend.get_job(job_id)
    tampered = replace(
        original,
        status=JobStatus.COMPLETE,
        executor="someone-else",
        attempt=7,
        errors=[JobError(7, ErrorType.USER, "forged", utcnow())],
        inserted_at=utcnow() - timedelta(days=9),
        attempted_at=utcnow() - timedelta(days=8),
        completed_at=utcnow(),
        cancelled_at=utcnow(),
        discarded_at=utcnow(),
        attempted_by="forger",
        priority=11,
    )
    await backend.update_job(tampered)

    stored = await backend.get_job(job_id)
    assert stored == replace(original, priority=11)


async def test_update_of_scheduled_at_makes_a_job_due(backend: Backend) -> None:
    job_id = await enqueue(backend, scheduled_at=utcnow() + FAR_FUTURE)
    assert await backend.claim_ready_jobs("ex", 10, "node-1") == []
    job = await backend.get_job(job_id)
    job.scheduled_at = utcnow() - timedelta(seconds=1)
    await backend.update_job(job)
    assert (await claim_one(backend))[0].id == job_id


async def test_update_of_an_executing_job_keeps_it_executing(backend: Backend) -> None:
    job_id = await enqueue(backend)
    _, lease = await claim_one(backend)
    job = await backend.get_job(job_id)
    job.data = {"changed": True}
    await backend.update_job(job)
    stored = await backend.get_job(job_id)
    assert stored.status is JobStatus.EXECUTING
    assert stored.data == {"changed": True}
    assert await mark_complete(backend, job_id, lease)


async def test_update_stores_scheduled_at_in_utc(backend: Backend) -> None:
    job = await backend.get_job(await enqueue(backend))
    when = datetime(2032, 2, 3, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    job.scheduled_at = when
    await backend.update_job(job)
    stored = await backend.get_job(job.id)
    assert stored.scheduled_at == when
    assert_utc(stored.scheduled_at)


async def test_update_rejects_a_naive_scheduled_at(backend: Backend) -> None:
    job = await backend.get_job(await enqueue(backend))
    before = await backend.get_job(job.id)
    job.scheduled_at = datetime(2032, 2, 3, 23, 30)
    with pytest.raises(ValidationError):
        await backend.update_job(job)
    assert await backend.get_job(job.id) == before


async def test_update_rejects_max_attempts_below_one(backend: Backend) -> None:
    job = await backend.get_job(await enqueue(backend))
    before = await backend.get_job(job.id)
    job.max_attempts = 0
    with pytest.raises(ValidationError):
        await backend.update_job(job)
    assert await backend.get_job(job.id) == before


async def test_update_rejects_a_priority_far_out_of_range(backend: Backend) -> None:
    job = await backend.get_job(await enqueue(backend))
    before = await backend.get_job(job.id)
    job.priority = 2**40
    with pytest.raises(ValidationError):
        await backend.update_job(job)
    assert await backend.get_job(job.id) == before


async def test_changing_the_job_after_update_does_not_change_the_stored_job(
    backend: Backend,
) -> None:
    job = await backend.get_job(await enqueue(backend))
    job.data = {"items": [1]}
    job.tags = ["a"]
    await backend.update_job(job)
    job.data["items"].append(2)
    job.tags.append("b")
    stored = await backend.get_job(job.id)
    assert stored.data == {"items": [1]}
    assert stored.tags == ["a"]


async def test_update_of_an_unknown_job_raises_job_not_found(backend: Backend) -> None:
    job = await backend.get_job(await enqueue(backend))
    with pytest.raises(JobNotFound):
        await backend.update_job(replace(job, id=JobId(987654)))
