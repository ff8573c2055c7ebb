"""The job lifecycle: what every outcome does to a job, decided in one place.

Each rule is a pure function from what is known of a job (its attempt, its attempts allowed, its
status) and an outcome (done, failed with a delay, snoozed, cancelled, timed out, orphaned,
handed back at shutdown, rerun) to a :class:`Transition`: the new status, attempt and scheduled
time, and the error to record. The runner, the rescue of dead nodes' jobs, shutdown, the admin
operations and ``rexecutor.testing`` all decide here; a backend only stores a transition, and
only while the job is still as the :class:`Fence` describes (compare-and-set), so a late write
from a node that lost the job changes nothing.

Example:
    >>> from datetime import timedelta
    >>> from rexecutor.job import JobStatus
    >>> snoozed(attempt=1, delay=timedelta(seconds=30)).status
    <JobStatus.SCHEDULED: 'scheduled'>
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rexecutor.backend import FailureRecord, Lease
from rexecutor.errors import InvalidTransition
from rexecutor.job import ErrorType, Job, JobStatus

__all__ = [
    "Fence",
    "Transition",
    "cancelled",
    "completed",
    "discarded",
    "external_cancel",
    "failed",
    "handed_back",
    "orphaned",
    "rerun",
    "retry_follows",
    "snoozed",
]

#: Giving back an attempt now (shutdown, rescue, rerun) schedules the job at once.
NOW = timedelta(0)


@dataclass(frozen=True, slots=True)
class Fence:
    """What a job must still be for a transition to apply: a compare-and-set condition.

    ``status`` and ``attempt`` must match the stored job; ``node_id`` (for an executing job)
    must be the node that claimed it, or ``None`` for any node. A fence that no longer holds
    means someone else moved the job on meanwhile: the write changes nothing.
    """

    status: JobStatus
    attempt: int
    node_id: str | None = None

    @classmethod
    def held(cls, lease: Lease) -> Fence:
        """The fence of a claimed job: executing, at the lease's attempt, by its node."""
        return cls(JobStatus.EXECUTING, lease.attempt, lease.node_id)

    @classmethod
    def as_read(cls, job: Job[Any, Any]) -> Fence:
        """The fence of a job as it was read (any node, if it is executing)."""
        return cls(job.status, job.attempt)

    def holds(self, job: Job[Any, Any]) -> bool:
        """Whether ``job`` is still as this fence requires (SQL backends say the same in SQL)."""
        return (
            job.status is self.status
            and job.attempt == self.attempt
            and (self.node_id is None or job.attempted_by == self.node_id)
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """A decided change to one job, for a backend to store as it is.

    ``status`` is the new status; reaching complete, cancelled or discarded also stamps
    ``completed_at``, ``cancelled_at`` or ``discarded_at`` with the backend's now.
    ``attempt`` replaces the attempt (``None``: unchanged). ``run_in`` sets ``scheduled_at``
    to now plus it (``None``: unchanged). ``error`` is appended to the job's errors, stamped
    with the fence's attempt and now. ``min_max_attempts`` raises ``max_attempts`` to at least
    that. ``reopen`` clears the finished timestamps, the result and the progress (a rerun
    starts afresh). ``result`` (only with ``COMPLETE``) is the canonical JSON text of the
    job's result, as :func:`rexecutor._payload.check_result` produced it (``None``: none);
    the backend stores it with the completion, under the same fence.
    """

    status: JobStatus
    attempt: int | None = None
    run_in: timedelta | None = None
    error: FailureRecord | None = None
    min_max_attempts: int | None = None
    reopen: bool = False
    result: str | None = None


# -- outcomes of an attempt (the runner) ---------------------------------------------------------


def completed(result: str | None = None) -> Transition:
    """The attempt succeeded, with ``result`` to store (its JSON text; ``None``: none)."""
    return Transition(JobStatus.COMPLETE, result=result)


def retry_follows(attempt: int, max_attempts: int) -> bool:
    """Whether a failure of attempt ``attempt`` is retried (else it was the last allowed)."""
    return attempt < max_attempts


def failed(attempt: int, max_attempts: int, delay: timedelta, error: FailureRecord) -> Transition:
    """The attempt failed (raised, returned an error, timed out): retry after ``delay``, or
    discard when it was the last attempt allowed."""
    if not retry_follows(attempt, max_attempts):
        return discarded(error)
    return Transition(JobStatus.RETRYABLE, run_in=delay, error=error)


def discarded(error: FailureRecord) -> Transition:
    """The job is given up on now, whatever attempts it has left: its last attempt failed, or
    it failed with an exception its executor's ``discard_on`` names."""
    return Transition(JobStatus.DISCARDED, error=error)


def ready_status(attempt: int) -> JobStatus:
    """The ready status of a job with ``attempt`` attempts on record: scheduled at 0, else
    retryable (as after a snooze or a rerun in the seed system)."""
    return JobStatus.SCHEDULED if attempt <= 0 else JobStatus.RETRYABLE


def snoozed(attempt: int, delay: timedelta, error: FailureRecord | None = None) -> Transition:
    """The job runs again after ``delay`` without using up the attempt it was on: it asked to
    (``ExecutionResult.Snooze``, no error), or failed with an exception its executor's
    ``snooze_on`` names (``error`` records it)."""
    given_back = max(attempt - 1, 0)
    return Transition(ready_status(given_back), attempt=given_back, run_in=delay, error=error)


def cancelled(error: FailureRecord) -> Transition:
    """The job cancelled itself (``ExecutionResult.Cancel``), or was cancelled from outside."""
    return Transition(JobStatus.CANCELLED, error=error)


def handed_back(attempt: int, detail: str) -> Transition:
    """The node shut down before the attempt finished: the job runs again now, elsewhere,
    without using up an attempt; ``detail`` says when it happened."""
    return snoozed(attempt, NOW, FailureRecord(ErrorType.SHUTDOWN, detail))


# -- decisions about stored jobs (rescue, admin) ------------------------------------------------


def orphaned(job: Job[Any, Any]) -> Transition:
    """``job``'s node stopped sending heartbeats while running it: retry it now, or discard it
    when that was its last attempt."""
    error = FailureRecord(
        ErrorType.ORPHANED,
        f"node {job.attempted_by} stopped sending heartbeats while running this job",
    )
    return failed(job.attempt, job.max_attempts, NOW, error)


def rerun(job: Job[Any, Any]) -> Transition:
    """Run ``job`` again now.

    A finished job (complete, cancelled, discarded) goes back to ready with its finished time
    cleared, and one more attempt allowed if none is left; a ready job is moved to now. An
    executing job raises ``InvalidTransition``: it cannot be in two places at once.
    """
    if job.status is JobStatus.EXECUTING:
        raise InvalidTransition(
            f"job {job.id} is executing and cannot be rerun; cancel it first, or wait "
            "for it to finish"
        )
    if not job.status.is_terminal:
        return Transition(job.status, run_in=NOW)
    return Transition(
        ready_status(job.attempt), run_in=NOW, min_max_attempts=job.attempt + 1, reopen=True
    )


def external_cancel(job: Job[Any, Any], error: FailureRecord) -> Transition | None:
    """Cancel ``job`` from outside (an operator, an API call); ``None`` if it already finished.

    An executing job is cancelled too: its node notices that it lost the job and stops it.
    """
    if job.status.is_terminal:
        return None
    return cancelled(error)
