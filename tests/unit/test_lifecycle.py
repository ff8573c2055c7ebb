"""The lifecycle's rules, as pure functions: every outcome's transition, decided in one place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rexecutor import lifecycle
from rexecutor.backend import FailureRecord, Lease
from rexecutor.errors import InvalidTransition
from rexecutor.job import ErrorType, Job, JobId, JobStatus
from rexecutor.lifecycle import Fence, Transition

ERROR = FailureRecord(ErrorType.EXCEPTION, "boom")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _job(
    status: JobStatus, attempt: int = 1, max_attempts: int = 3, **fields: Any
) -> Job[Any, Any]:
    return Job(
        id=JobId(7),
        status=status,
        executor="ex",
        data={},
        metadata=None,
        attempt=attempt,
        max_attempts=max_attempts,
        priority=0,
        tags=[],
        errors=[],
        inserted_at=NOW,
        scheduled_at=NOW,
        attempted_by=fields.pop("attempted_by", "node-1"),
        **fields,
    )


def test_a_failure_retries_after_the_delay_until_the_last_attempt_which_discards() -> None:
    delay = timedelta(seconds=30)
    assert lifecycle.failed(1, 3, delay, ERROR) == Transition(
        JobStatus.RETRYABLE, run_in=delay, error=ERROR
    )
    assert lifecycle.failed(3, 3, delay, ERROR) == Transition(JobStatus.DISCARDED, error=ERROR)


@pytest.mark.parametrize(
    ("attempt", "status", "given_back"),
    [(1, JobStatus.SCHEDULED, 0), (2, JobStatus.RETRYABLE, 1), (0, JobStatus.SCHEDULED, 0)],
)
def test_a_snooze_gives_the_attempt_back(attempt: int, status: JobStatus, given_back: int) -> None:
    snoozed = lifecycle.snoozed(attempt, timedelta(minutes=5))
    assert (snoozed.status, snoozed.attempt, snoozed.run_in) == (
        status,
        given_back,
        timedelta(minutes=5),
    )
    assert snoozed.error is None


def test_a_shutdown_hands_the_job_back_now_with_an_error_saying_why() -> None:
    handed = lifecycle.handed_back(2, "the node shut down")
    assert (handed.status, handed.attempt, handed.run_in) == (JobStatus.RETRYABLE, 1, timedelta(0))
    assert handed.error is not None and handed.error.error_type is ErrorType.SHUTDOWN


def test_complete_and_cancel() -> None:
    assert lifecycle.completed() == Transition(JobStatus.COMPLETE)
    assert lifecycle.cancelled(ERROR) == Transition(JobStatus.CANCELLED, error=ERROR)


def test_an_orphaned_job_is_retried_now_or_discarded_on_its_last_attempt() -> None:
    retried = lifecycle.orphaned(_job(JobStatus.EXECUTING, attempt=1))
    assert (retried.status, retried.run_in) == (JobStatus.RETRYABLE, timedelta(0))
    assert retried.error is not None and retried.error.error_type is ErrorType.ORPHANED
    assert "node-1" in retried.error.details
    last = lifecycle.orphaned(_job(JobStatus.EXECUTING, attempt=3))
    assert last.status is JobStatus.DISCARDED


@pytest.mark.parametrize("status", [JobStatus.COMPLETE, JobStatus.CANCELLED, JobStatus.DISCARDED])
def test_a_rerun_of_a_finished_job_reopens_it_with_one_more_attempt_if_none_is_left(
    status: JobStatus,
) -> None:
    again = lifecycle.rerun(_job(status, attempt=3, max_attempts=3))
    assert again == Transition(
        JobStatus.RETRYABLE, run_in=timedelta(0), min_max_attempts=4, reopen=True
    )
    never_ran = lifecycle.rerun(_job(status, attempt=0))
    assert never_ran.status is JobStatus.SCHEDULED


@pytest.mark.parametrize("status", [JobStatus.SCHEDULED, JobStatus.RETRYABLE])
def test_a_rerun_of_a_waiting_job_only_moves_it_to_now(status: JobStatus) -> None:
    assert lifecycle.rerun(_job(status)) == Transition(status, run_in=timedelta(0))


def test_an_executing_job_cannot_be_rerun() -> None:
    with pytest.raises(InvalidTransition, match="cancel it first"):
        lifecycle.rerun(_job(JobStatus.EXECUTING))


def test_an_external_cancel_leaves_finished_jobs_alone() -> None:
    assert lifecycle.external_cancel(_job(JobStatus.COMPLETE), ERROR) is None
    for status in (JobStatus.SCHEDULED, JobStatus.RETRYABLE, JobStatus.EXECUTING):
        assert lifecycle.external_cancel(_job(status), ERROR) == lifecycle.cancelled(ERROR)


def test_fences() -> None:
    job = _job(JobStatus.EXECUTING, attempt=2)
    assert Fence.held(Lease("node-1", 2)).holds(job)
    assert not Fence.held(Lease("node-2", 2)).holds(job)  # another node
    assert not Fence.held(Lease("node-1", 1)).holds(job)  # an earlier attempt (a zombie)
    assert Fence.as_read(job).holds(job)  # any node
    assert not Fence.as_read(_job(JobStatus.RETRYABLE, attempt=2)).holds(job)
