"""Job management: cancel, rerun and rescue, decided by the lifecycle, stored by a backend.

Each operation reads the job, lets :mod:`rexecutor.lifecycle` decide, and stores the decision
under a fence that holds only while the job is still as it was read; when someone else moved
the job meanwhile the fence fails and the operation reads it again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rexecutor import _text, lifecycle
from rexecutor.backend import Backend, FailureRecord
from rexecutor.job import ErrorType, Job, JobId, JobStatus
from rexecutor.lifecycle import Fence

#: How often an operation reads a job again when it keeps changing under it.
_TRIES = 100


async def cancel(backend: Backend, job_id: int, reason: object) -> bool:
    """Cancel a job for good, recording ``reason``; a running job is stopped by its node.

    Returns False when the job had already finished (complete, cancelled or discarded), which
    it leaves alone. Raises ``JobNotFound`` for an unknown id.
    """
    error = FailureRecord(ErrorType.CANCELLED, _text.describe(reason))
    for _ in range(_TRIES):
        job = await backend.get_job(job_id)
        transition = lifecycle.external_cancel(job, error)
        if transition is None:
            return False
        if await backend.apply_transition(job_id, Fence.as_read(job), transition):
            return True
    return False


async def rerun(backend: Backend, job_id: int) -> Job[Any, Any]:
    """Run a job again now (see :func:`rexecutor.lifecycle.rerun`); returns it as it was
    before. Raises ``InvalidTransition`` for an executing job, ``JobNotFound`` for an unknown
    id."""
    for _ in range(_TRIES):
        job = await backend.get_job(job_id)
        if await backend.apply_transition(job_id, Fence.as_read(job), lifecycle.rerun(job)):
            return job
    raise RuntimeError(f"job {job_id} kept changing while it was being rerun; try again")


async def rescue_orphans(backend: Backend, dead_after: timedelta) -> list[JobId]:
    """Hand back the jobs of nodes silent for longer than ``dead_after``: each is retried now,
    or discarded when that was its last attempt, with an ``ORPHANED`` error. Returns the ids
    rescued (a job its node finished meanwhile is left alone)."""
    rescued: list[JobId] = []
    for job in await backend.orphaned_jobs(dead_after):
        fence = Fence(JobStatus.EXECUTING, job.attempt, job.attempted_by)
        if await backend.apply_transition(job.id, fence, lifecycle.orphaned(job)):
            rescued.append(job.id)
    return rescued
