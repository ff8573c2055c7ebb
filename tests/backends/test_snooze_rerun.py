"""Conformance: snoozing gives the attempt back; ``rerun_job`` runs a job again now."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rexecutor.backend import Backend, FailureRecord
from rexecutor.errors import InvalidTransition, JobNotFound
from rexecutor.job import ErrorType, JobStatus

from ._helpers import (
    CANCEL,
    FAILURE,
    FAR_FUTURE,
    assert_between,
    claim_one,
    enqueue,
    executing,
    finished,
    mark_cancelled,
    mark_complete,
    mark_discarded,
    mark_retryable,
    mark_snoozed,
    rerun,
    retryable,
    utcnow,
)

# -- snooze ----------------------------------------------------------------------------------


async def test_snoozing_a_first_attempt_makes_the_job_scheduled_with_attempt_zero(
    backend: Backend,
) -> None:
    job, lease = await executing(backend)
    assert await mark_snoozed(backend, job.id, lease, timedelta(0))
    stored = await backend.get_job(job.id)
    assert stored.status is JobStatus.SCHEDULED
    assert stored.attempt == 0


async def test_snoozing_a_later_attempt_makes_the_job_retryable_with_the_attempt_given_back(
    backend: Backend,
) -> None:
    job_id = await retryable(backend)
    job, lease = await claim_one(backend)
    assert job.attempt == 2
    assert await mark_snoozed(backend, job_id, lease, timedelta(0))
    stored = await backend.get_job(job_id)
    assert stored.status is JobStatus.RETRYABLE
    assert stored.attempt == 1


async def test_snooze_records_no_error(backend: Backend) -> None:
    job_id = await retryable(backend)
    _, lease = await claim_one(backend)
    assert await mark_snoozed(backend, job_id, lease, timedelta(0))
    stored = await backend.get_job(job_id)
    assert len(stored.errors) == 1  # only the failure that made it retryable
    assert stored.completed_at is None
    assert stored.discarded_at is None
    assert stored.cancelled_at is None


async def test_snooze_with_an_error_records_it_at_the_interrupted_attempt(
    backend: Backend,
) -> None:
    job, lease = await executing(backend)
    shutdown = FailureRecord(ErrorType.SHUTDOWN, "node stopping")
    before = utcnow()
    assert await mark_snoozed(backend, job.id, lease, timedelta(0), shutdown)
    after = utcnow()
    stored = await backend.get_job(job.id)
    assert stored.status is JobStatus.SCHEDULED
    assert stored.attempt == 0
    [error] = stored.errors
    assert error.error_type is ErrorType.SHUTDOWN
    assert error.details == "node stopping"
    assert error.attempt == 1
    assert_between(error.recorded_at, before, after)


async def test_snooze_schedules_the_job_after_the_delay(backend: Backend) -> None:
    job, lease = await executing(backend)
    before = utcnow()
    assert await mark_snoozed(backend, job.id, lease, timedelta(minutes=3))
    after = utcnow()
    stored = await backend.get_job(job.id)
    delay = timedelta(minutes=3)
    assert_between(stored.scheduled_at, before + delay, after + delay)
    assert await backend.claim_ready_jobs("ex", 10, "node-1") == []


async def test_a_snoozed_job_with_no_delay_is_claimed_again_at_the_same_attempt(
    backend: Backend,
) -> None:
    job, lease = await executing(backend)
    assert await mark_snoozed(backend, job.id, lease, timedelta(0))
    again, _ = await claim_one(backend)
    assert again.id == job.id
    assert again.attempt == 1


async def test_snoozing_never_uses_up_attempts(backend: Backend) -> None:
    job_id = await enqueue(backend, max_attempts=1)
    for _ in range(3):
        job, lease = await claim_one(backend)
        assert job.attempt == 1
        assert await mark_snoozed(backend, job_id, lease, timedelta(0))
    assert (await backend.get_job(job_id)).status is JobStatus.SCHEDULED


# -- rerun -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [JobStatus.COMPLETE, JobStatus.CANCELLED, JobStatus.DISCARDED])
async def test_rerun_of_a_finished_job_makes_it_ready_now(
    backend: Backend, status: JobStatus
) -> None:
    job_id = await finished(backend, status, scheduled_at=utcnow() - timedelta(days=1))
    before_rerun = await backend.get_job(job_id)
    before = utcnow()
    await rerun(backend, job_id)
    after = utcnow()

    stored = await backend.get_job(job_id)
    assert stored.status is JobStatus.RETRYABLE  # it ran once
    assert stored.attempt == 1
    assert_between(stored.scheduled_at, before, after)
    assert stored.completed_at is None
    assert stored.cancelled_at is None
    assert stored.discarded_at is None
    assert stored.errors == before_rerun.errors
    assert stored.data == before_rerun.data

    again, _ = await claim_one(backend)
    assert again.id == job_id
    assert again.attempt == 2


async def test_rerun_of_a_job_cancelled_before_it_ran_makes_it_scheduled(
    backend: Backend,
) -> None:
    job_id = await enqueue(backend, scheduled_at=utcnow() + FAR_FUTURE)
    assert await mark_cancelled(backend, job_id, None, CANCEL)
    await rerun(backend, job_id)
    stored = await backend.get_job(job_id)
    assert stored.status is JobStatus.SCHEDULED
    assert stored.attempt == 0
    assert stored.cancelled_at is None
    assert len(stored.errors) == 1
    assert stored.max_attempts == 5
    assert (await claim_one(backend))[0].id == job_id


async def test_rerun_grants_one_more_attempt_when_none_is_left(backend: Backend) -> None:
    job_id = await finished(backend, JobStatus.DISCARDED, max_attempts=1)
    await rerun(backend, job_id)
    stored = await backend.get_job(job_id)
    assert stored.attempt == 1
    assert stored.max_attempts == 2


async def test_rerun_keeps_max_attempts_when_attempts_are_left(backend: Backend) -> None:
    job_id = await finished(backend, JobStatus.COMPLETE, max_attempts=3)
    await rerun(backend, job_id)
    stored = await backend.get_job(job_id)
    assert stored.attempt == 1
    assert stored.max_attempts == 3


async def test_rerun_of_a_job_beyond_its_attempts_grants_exactly_one_more(
    backend: Backend,
) -> None:
    job_id = await enqueue(backend, max_attempts=3)
    for _ in range(2):
        _, lease = await claim_one(backend)
        assert await mark_retryable(backend, job_id, lease, timedelta(0), FAILURE)
    _, lease = await claim_one(backend)
    assert await mark_discarded(backend, job_id, lease, FAILURE)
    stored = await backend.get_job(job_id)
    stored.max_attempts = 1
    await backend.update_job(stored)

    await rerun(backend, job_id)
    again = await backend.get_job(job_id)
    assert again.attempt == 3
    assert again.max_attempts == 4


@pytest.mark.parametrize("ready", ["scheduled", "retryable"])
async def test_rerun_of_a_waiting_job_moves_it_to_now(backend: Backend, ready: str) -> None:
    if ready == "scheduled":
        job_id = await enqueue(backend, scheduled_at=utcnow() + FAR_FUTURE)
    else:
        job_id = await retryable(backend, delay=FAR_FUTURE)
    before_rerun = await backend.get_job(job_id)
    before = utcnow()
    await rerun(backend, job_id)
    after = utcnow()

    stored = await backend.get_job(job_id)
    assert stored.status is before_rerun.status
    assert stored.attempt == before_rerun.attempt
    assert stored.max_attempts == before_rerun.max_attempts
    assert stored.errors == before_rerun.errors
    assert_between(stored.scheduled_at, before, after)
    assert (await claim_one(backend))[0].id == job_id


async def test_rerun_of_an_executing_job_is_an_invalid_transition(backend: Backend) -> None:
    job, _ = await executing(backend)
    before = await backend.get_job(job.id)
    with pytest.raises(InvalidTransition):
        await rerun(backend, job.id)
    assert await backend.get_job(job.id) == before


async def test_rerun_of_an_unknown_job_raises_job_not_found(backend: Backend) -> None:
    await enqueue(backend)
    with pytest.raises(JobNotFound):
        await rerun(backend, 987654)


async def test_a_lease_from_before_a_rerun_no_longer_applies(backend: Backend) -> None:
    job, lease = await executing(backend)
    assert await mark_cancelled(backend, job.id, None, CANCEL)
    await rerun(backend, job.id)
    assert await mark_complete(backend, job.id, lease) is False
    assert (await backend.get_job(job.id)).status is JobStatus.RETRYABLE
