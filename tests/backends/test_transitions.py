"""Conformance: the fenced ``mark_job_*`` transitions out of executing.

A write applies only while the job is executing, claimed by the lease's node at the lease's
attempt; otherwise it returns False and changes nothing. Unknown ids raise ``JobNotFound``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from rexecutor.backend import Backend, FailureRecord, Lease
from rexecutor.errors import JobNotFound
from rexecutor.job import ErrorType, JobStatus

from ._helpers import (
    CANCEL,
    FAILURE,
    FAR_FUTURE,
    assert_between,
    claim_one,
    enqueue,
    executing,
    mark_cancelled,
    mark_complete,
    mark_discarded,
    mark_retryable,
    mark_snoozed,
    retryable,
    utcnow,
)

Mark = Callable[[Backend, int, Lease], Awaitable[bool]]


async def _complete(backend: Backend, job_id: int, lease: Lease) -> bool:
    return await mark_complete(backend, job_id, lease)


async def _retry(backend: Backend, job_id: int, lease: Lease) -> bool:
    return await mark_retryable(backend, job_id, lease, timedelta(0), FAILURE)


async def _discard(backend: Backend, job_id: int, lease: Lease) -> bool:
    return await mark_discarded(backend, job_id, lease, FAILURE)


async def _snooze(backend: Backend, job_id: int, lease: Lease) -> bool:
    return await mark_snoozed(backend, job_id, lease, timedelta(0))


async def _cancel(backend: Backend, job_id: int, lease: Lease) -> bool:
    return await mark_cancelled(backend, job_id, lease, CANCEL)


async def _complete_batch(backend: Backend, job_id: int, lease: Lease) -> bool:
    [done] = await backend.complete_jobs([(job_id, lease)])
    return done


MARKS: dict[str, Mark] = {
    "complete": _complete,
    "retryable": _retry,
    "discarded": _discard,
    "snoozed": _snooze,
    "cancelled": _cancel,
    "complete_jobs": _complete_batch,
}
EXPECTED_STATUS = {
    "complete": JobStatus.COMPLETE,
    "retryable": JobStatus.RETRYABLE,
    "discarded": JobStatus.DISCARDED,
    "snoozed": JobStatus.SCHEDULED,
    "cancelled": JobStatus.CANCELLED,
    "complete_jobs": JobStatus.COMPLETE,
}
mark_names = pytest.mark.parametrize("name", list(MARKS))


@mark_names
async def test_mark_with_the_right_lease_succeeds(backend: Backend, name: str) -> None:
    job, lease = await executing(backend)
    assert await MARKS[name](backend, job.id, lease) is True
    assert (await backend.get_job(job.id)).status is EXPECTED_STATUS[name]


@mark_names
async def test_mark_with_another_nodes_lease_changes_nothing(backend: Backend, name: str) -> None:
    job, lease = await executing(backend, node="node-a")
    before = await backend.get_job(job.id)
    assert await MARKS[name](backend, job.id, Lease("node-b", lease.attempt)) is False
    assert await backend.get_job(job.id) == before


@mark_names
async def test_mark_with_a_stale_attempt_changes_nothing(backend: Backend, name: str) -> None:
    job_id = await retryable(backend, node="node-a")
    _, lease = await claim_one(backend, node="node-a")
    assert lease.attempt == 2
    before = await backend.get_job(job_id)
    assert await MARKS[name](backend, job_id, Lease("node-a", 1)) is False
    assert await MARKS[name](backend, job_id, Lease("node-a", 3)) is False
    assert await backend.get_job(job_id) == before


@mark_names
async def test_mark_on_a_job_that_is_no_longer_executing_changes_nothing(
    backend: Backend, name: str
) -> None:
    job, lease = await executing(backend)
    assert await mark_complete(backend, job.id, lease)
    before = await backend.get_job(job.id)
    assert await MARKS[name](backend, job.id, lease) is False
    assert await backend.get_job(job.id) == before


@mark_names
async def test_mark_on_a_job_that_was_never_claimed_changes_nothing(
    backend: Backend, name: str
) -> None:
    job_id = await enqueue(backend)
    before = await backend.get_job(job_id)
    assert await MARKS[name](backend, job_id, Lease("node-1", 0)) is False
    assert await MARKS[name](backend, job_id, Lease("node-1", 1)) is False
    assert await backend.get_job(job_id) == before


@pytest.mark.parametrize("name", [name for name in MARKS if name != "complete_jobs"])
async def test_mark_on_an_unknown_job_raises_job_not_found(backend: Backend, name: str) -> None:
    await enqueue(backend)
    with pytest.raises(JobNotFound):
        await MARKS[name](backend, 987654, Lease("node-1", 1))


async def test_complete_sets_completed_at_and_nothing_else(backend: Backend) -> None:
    job, lease = await executing(backend)
    before = utcnow()
    assert await mark_complete(backend, job.id, lease)
    after = utcnow()
    done = await backend.get_job(job.id)
    assert done.status is JobStatus.COMPLETE
    assert_between(done.completed_at, before, after)
    assert done.cancelled_at is None
    assert done.discarded_at is None
    assert done.attempt == 1
    assert done.errors == []
    assert done.scheduled_at == job.scheduled_at
    assert done.attempted_at == job.attempted_at


async def test_retryable_records_the_error_and_schedules_after_the_delay(
    backend: Backend,
) -> None:
    job, lease = await executing(backend)
    before = utcnow()
    assert await mark_retryable(backend, job.id, lease, timedelta(minutes=7), FAILURE)
    after = utcnow()

    stored = await backend.get_job(job.id)
    assert stored.status is JobStatus.RETRYABLE
    assert stored.attempt == 1
    assert_between(stored.scheduled_at, before + timedelta(minutes=7), after + timedelta(minutes=7))
    assert stored.completed_at is None
    assert stored.discarded_at is None
    [error] = stored.errors
    assert error.attempt == 1
    assert error.error_type is ErrorType.EXCEPTION
    assert error.details == FAILURE.details
    assert error.name == "ValueError"
    assert error.traceback == FAILURE.traceback
    assert_between(error.recorded_at, before, after)


async def test_retryable_with_a_delay_is_not_claimed_before_it(backend: Backend) -> None:
    job, lease = await executing(backend)
    assert await mark_retryable(backend, job.id, lease, FAR_FUTURE, FAILURE)
    assert await backend.claim_ready_jobs("ex", 10, "node-1") == []


async def test_errors_accumulate_over_attempts_in_order(backend: Backend) -> None:
    job_id = await enqueue(backend)
    kinds = [ErrorType.EXCEPTION, ErrorType.TIMEOUT, ErrorType.USER]
    for kind in kinds:
        _, lease = await claim_one(backend)
        error = FailureRecord(kind, f"failed with {kind}")
        assert await mark_retryable(backend, job_id, lease, timedelta(0), error)
    stored = await backend.get_job(job_id)
    assert [e.attempt for e in stored.errors] == [1, 2, 3]
    assert [e.error_type for e in stored.errors] == kinds
    assert [e.details for e in stored.errors] == [f"failed with {k}" for k in kinds]
    assert stored.errors[0].recorded_at <= stored.errors[1].recorded_at
    assert stored.errors[1].recorded_at <= stored.errors[2].recorded_at


async def test_error_without_name_or_traceback_keeps_them_none(backend: Backend) -> None:
    job, lease = await executing(backend)
    error = FailureRecord(ErrorType.TIMEOUT, "took too long")
    assert await mark_retryable(backend, job.id, lease, timedelta(0), error)
    [stored] = (await backend.get_job(job.id)).errors
    assert stored.error_type is ErrorType.TIMEOUT
    assert stored.name is None
    assert stored.traceback is None


async def test_user_error_records_its_name(backend: Backend) -> None:
    job, lease = await executing(backend)
    error = FailureRecord(ErrorType.USER, "quota exceeded", name="QuotaExceeded")
    assert await mark_discarded(backend, job.id, lease, error)
    [stored] = (await backend.get_job(job.id)).errors
    assert stored.error_type is ErrorType.USER
    assert stored.name == "QuotaExceeded"
    assert stored.details == "quota exceeded"


async def test_discarded_sets_discarded_at_and_records_the_error(backend: Backend) -> None:
    job, lease = await executing(backend, max_attempts=1)
    before = utcnow()
    assert await mark_discarded(backend, job.id, lease, FAILURE)
    after = utcnow()
    stored = await backend.get_job(job.id)
    assert stored.status is JobStatus.DISCARDED
    assert_between(stored.discarded_at, before, after)
    assert stored.completed_at is None
    assert stored.cancelled_at is None
    assert stored.attempt == 1
    [error] = stored.errors
    assert error.attempt == 1
    assert error.error_type is ErrorType.EXCEPTION
    assert_between(error.recorded_at, before, after)


async def test_cancelled_with_a_lease_sets_cancelled_at_and_records_the_reason(
    backend: Backend,
) -> None:
    job, lease = await executing(backend)
    before = utcnow()
    assert await mark_cancelled(backend, job.id, lease, CANCEL)
    after = utcnow()
    stored = await backend.get_job(job.id)
    assert stored.status is JobStatus.CANCELLED
    assert_between(stored.cancelled_at, before, after)
    assert stored.completed_at is None
    assert stored.discarded_at is None
    [error] = stored.errors
    assert error.attempt == 1
    assert error.error_type is ErrorType.CANCELLED
    assert error.details == "no longer needed"


async def test_a_retried_jobs_old_lease_no_longer_applies(backend: Backend) -> None:
    job, first = await executing(backend, node="node-a")
    assert await mark_retryable(backend, job.id, first, timedelta(0), FAILURE)
    _, second = await claim_one(backend, node="node-b")
    assert await mark_complete(backend, job.id, first) is False
    assert (await backend.get_job(job.id)).status is JobStatus.EXECUTING
    assert await mark_complete(backend, job.id, second) is True


async def test_complete_jobs_reports_each_item(backend: Backend) -> None:
    a, lease_a = await executing(backend, "a")
    b, lease_b = await executing(backend, "b")
    c, lease_c = await executing(backend, "c")
    d, lease_d = await executing(backend, "d")
    assert await mark_complete(backend, c.id, lease_c)

    results = await backend.complete_jobs(
        [
            (a.id, lease_a),
            (b.id, Lease("someone-else", lease_b.attempt)),
            (c.id, lease_c),
            (d.id, Lease(lease_d.node_id, lease_d.attempt + 1)),
        ]
    )
    assert results == [True, False, False, False]
    assert (await backend.get_job(a.id)).status is JobStatus.COMPLETE
    assert (await backend.get_job(b.id)).status is JobStatus.EXECUTING
    assert (await backend.get_job(d.id)).status is JobStatus.EXECUTING
    assert (await backend.get_job(a.id)).completed_at is not None


async def test_complete_jobs_of_nothing_returns_nothing(backend: Backend) -> None:
    assert await backend.complete_jobs([]) == []


async def test_complete_jobs_completes_many(backend: Backend) -> None:
    for i in range(6):
        await enqueue(backend, data={"i": i})
    claimed = await backend.claim_ready_jobs("ex", 6, "node-1")
    results = await backend.complete_jobs([(j.id, Lease("node-1", j.attempt)) for j in claimed])
    assert results == [True] * 6
    for job in claimed:
        assert (await backend.get_job(job.id)).status is JobStatus.COMPLETE
