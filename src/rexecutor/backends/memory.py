"""``InMemoryBackend``: jobs in a Python dict, for tests and examples.

Thread-safe (one lock, no awaits while it is held), so every operation is atomic. Not durable.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from rexecutor import _clock
from rexecutor.backend import (
    Backend,
    EnqueuableJob,
    EnqueueResult,
    FailureRecord,
    Lease,
    NodeInfo,
    PruneSpec,
    refuse_connection,
)
from rexecutor.backends._common import (
    apply_replace,
    error_entry,
    matches,
    status_after_giving_back,
    unique_match,
    validate_enqueuable,
    validate_update,
)
from rexecutor.errors import InvalidTransition, JobNotFound
from rexecutor.job import ErrorType, Job, JobId, JobStatus
from rexecutor.query import QueryNode

__all__ = ["InMemoryBackend"]


class InMemoryBackend(Backend):
    """Jobs kept in memory: fast, exact, and gone when the process ends.

    Example:
        >>> backend = InMemoryBackend()
        >>> paused = InMemoryBackend().paused()   # stores jobs, never hands them out
    """

    poll_interval = 1.0

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._jobs: dict[int, Job[Any, Any]] = {}
        self._keys: dict[int, int | None] = {}
        self._nodes: dict[str, NodeInfo] = {}
        self._next_id = 1
        self._paused = False

    def paused(self) -> InMemoryBackend:
        """Make this backend store jobs but never hand them to runners; returns ``self``."""
        self._paused = True
        return self

    def _get(self, job_id: int) -> Job[Any, Any]:
        try:
            return self._jobs[int(job_id)]
        except KeyError:
            raise JobNotFound(job_id) from None

    def _held(self, job_id: int, lease: Lease) -> Job[Any, Any] | None:
        job = self._get(job_id)
        if (
            job.status is JobStatus.EXECUTING
            and job.attempted_by == lease.node_id
            and job.attempt == lease.attempt
        ):
            return job
        return None

    # -- enqueue ---------------------------------------------------------------------------

    def _enqueue_locked(self, job: EnqueuableJob, now: datetime) -> EnqueueResult:
        validate_enqueuable(job)
        # Store copies: the caller may go on mutating what it passed in.
        job = replace(job, data=copy.deepcopy(job.data), metadata=copy.deepcopy(job.metadata))
        scheduled_at = job.scheduled_at.astimezone(UTC) if job.scheduled_at else now
        criteria = job.uniqueness
        key = criteria.key if criteria else None
        if criteria is not None:
            for job_id in sorted(self._jobs):
                existing = self._jobs[job_id]
                if unique_match(job, key, existing, self._keys[job_id], scheduled_at):
                    if apply_replace(job, existing, scheduled_at):
                        self._wake(existing, now)
                    return EnqueueResult(existing.id, duplicate=True)
        job_id = JobId(self._next_id)
        self._next_id += 1
        self._jobs[job_id] = Job(
            id=job_id,
            status=JobStatus.SCHEDULED,
            executor=job.executor,
            data=job.data,
            metadata=job.metadata,
            attempt=0,
            max_attempts=job.max_attempts,
            priority=job.priority,
            tags=list(job.tags),
            errors=[],
            inserted_at=now,
            scheduled_at=scheduled_at,
        )
        self._keys[job_id] = key
        self._wake(self._jobs[job_id], now)
        return EnqueueResult(job_id)

    def _wake(self, job: Job[Any, Any], now: datetime) -> None:
        if not self._paused and job.status in JobStatus.READY:
            self.notify(job.executor)

    async def enqueue(self, job: EnqueuableJob, *, connection: Any = None) -> EnqueueResult:
        refuse_connection(self, connection)
        with self._lock:
            return self._enqueue_locked(job, _clock.now())

    async def enqueue_many(
        self, jobs: Sequence[EnqueuableJob], *, connection: Any = None
    ) -> list[EnqueueResult]:
        refuse_connection(self, connection)
        with self._lock:
            now = _clock.now()
            for job in jobs:
                validate_enqueuable(job)
            return [self._enqueue_locked(job, now) for job in jobs]

    # -- claiming and transitions ------------------------------------------------------------

    async def claim_ready_jobs(
        self, executor: str, limit: int, node_id: str
    ) -> list[Job[Any, Any]]:
        if self._paused or limit <= 0:
            return []
        with self._lock:
            now = _clock.now()
            ready = sorted(
                (
                    j
                    for j in self._jobs.values()
                    if j.executor == executor
                    and j.status in JobStatus.READY
                    and j.scheduled_at <= now
                ),
                key=lambda j: (j.priority, j.scheduled_at, j.id),
            )[:limit]
            for job in ready:
                job.status = JobStatus.EXECUTING
                job.attempt += 1
                job.attempted_at = now
                job.attempted_by = node_id
            return [_copy(j) for j in ready]

    async def next_scheduled_at(self, executors: Collection[str]) -> datetime | None:
        if self._paused:
            return None
        with self._lock:
            times = [
                j.scheduled_at
                for j in self._jobs.values()
                if j.executor in executors and j.status in JobStatus.READY
            ]
        return min(times, default=None)

    async def mark_job_complete(self, job_id: int, lease: Lease) -> bool:
        with self._lock:
            job = self._held(job_id, lease)
            if job is None:
                return False
            job.status = JobStatus.COMPLETE
            job.completed_at = _clock.now()
            return True

    async def mark_job_retryable(
        self, job_id: int, lease: Lease, delay: timedelta, error: FailureRecord
    ) -> bool:
        with self._lock:
            job = self._held(job_id, lease)
            if job is None:
                return False
            now = _clock.now()
            job.errors.append(error_entry(job, error, now))
            job.status = JobStatus.RETRYABLE
            job.scheduled_at = now + delay
            self._wake(job, now)
            return True

    async def mark_job_discarded(self, job_id: int, lease: Lease, error: FailureRecord) -> bool:
        with self._lock:
            job = self._held(job_id, lease)
            if job is None:
                return False
            now = _clock.now()
            job.errors.append(error_entry(job, error, now))
            job.status = JobStatus.DISCARDED
            job.discarded_at = now
            return True

    async def mark_job_snoozed(
        self, job_id: int, lease: Lease, delay: timedelta, error: FailureRecord | None = None
    ) -> bool:
        with self._lock:
            job = self._held(job_id, lease)
            if job is None:
                return False
            now = _clock.now()
            if error is not None:
                job.errors.append(error_entry(job, error, now))
            job.attempt = max(job.attempt - 1, 0)
            job.status = status_after_giving_back(job.attempt)
            job.scheduled_at = now + delay
            self._wake(job, now)
            return True

    async def mark_job_cancelled(
        self, job_id: int, lease: Lease | None, error: FailureRecord
    ) -> bool:
        with self._lock:
            job = self._get(job_id) if lease is None else self._held(job_id, lease)
            if job is None or job.status.is_terminal:
                return False
            now = _clock.now()
            job.errors.append(error_entry(job, error, now))
            was_running = job.status is JobStatus.EXECUTING
            job.status = JobStatus.CANCELLED
            job.cancelled_at = now
        if was_running and lease is None:
            self.notify_cancellation()
        return True

    async def rerun_job(self, job_id: int) -> None:
        with self._lock:
            job = self._get(job_id)
            if job.status is JobStatus.EXECUTING:
                raise InvalidTransition(
                    f"job {job_id} is executing and cannot be rerun; cancel it first, or wait "
                    "for it to finish"
                )
            now = _clock.now()
            if job.status.is_terminal:
                if job.attempt >= job.max_attempts:
                    job.max_attempts = job.attempt + 1
                job.completed_at = job.cancelled_at = job.discarded_at = None
                job.status = status_after_giving_back(job.attempt)
            job.scheduled_at = now
            self._wake(job, now)

    async def update_job(self, job: Job[Any, Any]) -> None:
        with self._lock:
            stored = self._get(job.id)
            validate_update(job)
            stored.data = copy.deepcopy(job.data)
            stored.metadata = copy.deepcopy(job.metadata)
            stored.max_attempts = job.max_attempts
            stored.priority = job.priority
            stored.tags = list(job.tags)
            stored.scheduled_at = job.scheduled_at.astimezone(UTC)
            self._wake(stored, _clock.now())

    # -- reading and housekeeping ------------------------------------------------------------

    async def query(
        self,
        where: QueryNode,
        *,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[Job[Any, Any]]:
        with self._lock:
            ids = sorted(self._jobs, reverse=newest_first)
            found = [_copy(self._jobs[i]) for i in ids if matches(where, self._jobs[i])]
        end = None if limit is None else offset + limit
        return found[offset:end]

    async def count_jobs(self) -> dict[tuple[str, JobStatus], int]:
        with self._lock:
            return dict(Counter((j.executor, j.status) for j in self._jobs.values()))

    async def finished_per_minute(self, since: timedelta) -> list[tuple[datetime, JobStatus, int]]:
        with self._lock:
            cutoff = _clock.now() - since
            buckets = Counter(
                (j.finished_at.replace(second=0, microsecond=0), j.status)
                for j in self._jobs.values()
                if j.finished_at is not None and j.finished_at >= cutoff
            )
        return [(minute, status, n) for (minute, status), n in sorted(buckets.items())]

    async def prune_jobs(self, spec: PruneSpec, batch_size: int = 1000) -> int:
        with self._lock:
            candidates = sorted(
                (
                    j
                    for j in self._jobs.values()
                    if j.status is spec.status and spec.applies_to(j.executor)
                ),
                key=lambda j: (j.finished_at or j.scheduled_at, j.id),
                reverse=True,
            )
            if spec.max_length is not None:
                doomed = candidates[spec.max_length :]
            else:
                assert spec.max_age is not None
                cutoff = _clock.now() - spec.max_age
                doomed = [j for j in candidates if (j.finished_at or j.scheduled_at) < cutoff]
            for job in doomed:
                del self._jobs[job.id]
                del self._keys[job.id]
            return len(doomed)

    async def record_heartbeat(self, node: NodeInfo) -> None:
        with self._lock:
            now = _clock.now()
            known = self._nodes.get(node.node_id)
            started = known.started_at if known else now
            self._nodes[node.node_id] = replace(node, started_at=started, heartbeat_at=now)

    async def remove_node(self, node_id: str) -> None:
        with self._lock:
            self._nodes.pop(node_id, None)

    async def list_nodes(self) -> list[NodeInfo]:
        with self._lock:
            nodes = list(self._nodes.values())
        return sorted(
            nodes, key=lambda n: n.heartbeat_at or n.started_at or _clock.now(), reverse=True
        )

    async def rescue_orphaned_jobs(self, dead_after: timedelta) -> list[JobId]:
        with self._lock:
            now = _clock.now()
            cutoff = now - dead_after
            dead = {n.node_id for n in self._nodes.values() if (n.heartbeat_at or now) < cutoff}
            rescued: list[JobId] = []
            for job in sorted(self._jobs.values(), key=lambda j: j.id):
                if job.status is not JobStatus.EXECUTING:
                    continue
                holder = job.attempted_by
                unknown = holder not in self._nodes and (job.attempted_at or now) < cutoff
                if holder in dead or unknown:
                    error = FailureRecord(
                        ErrorType.ORPHANED,
                        f"node {holder} stopped sending heartbeats while running this job",
                    )
                    job.errors.append(error_entry(job, error, now))
                    if job.attempt >= job.max_attempts:
                        job.status = JobStatus.DISCARDED
                        job.discarded_at = now
                    else:
                        job.status = JobStatus.RETRYABLE
                        job.scheduled_at = now
                        self._wake(job, now)
                    rescued.append(job.id)
            for node_id in dead:
                del self._nodes[node_id]
            return rescued

    async def lost_jobs(self, node_id: str, leases: dict[int, int]) -> list[int]:
        with self._lock:
            lost = []
            for job_id, attempt in leases.items():
                job = self._jobs.get(job_id)
                if job is None or self._held(job_id, Lease(node_id, attempt)) is None:
                    lost.append(job_id)
            return lost


def _copy(job: Job[Any, Any]) -> Job[Any, Any]:
    # Callers may mutate what they get; the stored job must not change with it.
    return replace(
        job,
        data=copy.deepcopy(job.data),
        metadata=copy.deepcopy(job.metadata),
        tags=list(job.tags),
        errors=list(job.errors),
    )
