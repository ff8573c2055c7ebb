"""Managing stored jobs: cancel, rerun, retry by filter, statistics and the node list.

The one place these operations live: ``Executor.cancel_job`` and its kin,
:mod:`rexecutor.sync`, the ``rexecutor`` command line and the dashboard all call them. Each
function takes the backend first and goes through the :class:`~rexecutor.backend.Backend`
protocol only, so it works the same on every backend, and nothing here needs an extra
installed.

Example:
    >>> from rexecutor import admin
    >>> await admin.cancel(backend, job_id, "no longer needed")
    True
    >>> report = await admin.retry(backend, admin.Filters(statuses=(JobStatus.DISCARDED,)))
    >>> report.rerun
    [12, 15]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rexecutor import _clock, _text, lifecycle
from rexecutor._views import iso
from rexecutor.backend import Backend, FailureRecord, NodeInfo
from rexecutor.errors import ConfigurationError, InvalidTransition, JobNotFound
from rexecutor.job import ErrorType, Job, JobId, JobStatus
from rexecutor.lifecycle import Fence
from rexecutor.query import And, ExecutorEquals, Or, QueryNode, StatusIn, TagsAllOf

__all__ = [
    "FAILED_STATUSES",
    "MAX_JOB_ID",
    "CancelResult",
    "Filters",
    "NodeRow",
    "Overview",
    "RetryReport",
    "can_retry",
    "cancel",
    "cancel_and_report",
    "check_job_id",
    "check_retry",
    "nodes",
    "rerun",
    "rerun_and_read",
    "rescue_orphans",
    "retry",
    "retry_candidates",
    "stats",
]

#: Terminal statuses drawn as failures in charts and ``stats``.
FAILED_STATUSES = frozenset({JobStatus.DISCARDED, JobStatus.CANCELLED})

#: The largest job id any backend can store (a signed 64-bit integer); larger ones do not exist.
MAX_JOB_ID = 2**63 - 1


def check_job_id(job_id: int) -> int:
    """``job_id`` if a job could have it; ``JobNotFound`` for ids no backend can store."""
    if not 1 <= job_id <= MAX_JOB_ID:
        raise JobNotFound(job_id)
    return job_id


# -- the two writes ------------------------------------------------------------------------------
# Every cancel and every rerun below goes through these two functions: each reads the job, lets
# the lifecycle decide, and stores the decision under a fence that holds only while the job is
# still as it was read; when someone moved the job meanwhile, it reads it again.

#: How often a write reads a job again when it keeps changing under it.
_TRIES = 100


async def _cancel_one(backend: Backend, job_id: int, reason: str) -> bool:
    error = FailureRecord(ErrorType.CANCELLED, reason)
    for _ in range(_TRIES):
        job = await backend.get_job(job_id)
        transition = lifecycle.external_cancel(job, error)
        if transition is None:
            return False
        if await backend.apply_transition(job_id, Fence.as_read(job), transition):
            return True
    return False


async def _rerun_one(backend: Backend, job_id: int) -> None:
    for _ in range(_TRIES):
        job = await backend.get_job(job_id)
        if await backend.apply_transition(job_id, Fence.as_read(job), lifecycle.rerun(job)):
            return
    raise InvalidTransition(f"job {job_id} kept changing while it was being rerun; try again")


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


# -- one job ---------------------------------------------------------------------------------


async def cancel(backend: Backend, job_id: int, reason: object) -> bool:
    """Cancel a job for good, recording ``str(reason)``; a running one is stopped on its node.

    Returns False when the job had already finished (complete, cancelled or discarded), which
    it leaves alone. Raises ``JobNotFound``.
    """
    return await _cancel_one(backend, job_id, _text.describe(reason))


@dataclass(frozen=True, slots=True)
class CancelResult:
    """What a cancel did: ``cancelled`` is False when the job had already finished."""

    job_id: int
    cancelled: bool
    status: JobStatus


async def cancel_and_report(backend: Backend, job_id: int, reason: object) -> CancelResult:
    """:func:`cancel`, also telling the status of a job that had already finished."""
    done = await cancel(backend, job_id, reason)
    status = JobStatus.CANCELLED
    if not done:
        status = (await backend.get_job(job_id)).status
    return CancelResult(int(job_id), done, status)


async def rerun(backend: Backend, job_id: int) -> None:
    """Run a complete, cancelled or discarded job again now (one more attempt if needed).

    A scheduled or retryable job is moved to now. Raises ``JobNotFound``, or
    ``InvalidTransition`` for a job that is executing.
    """
    await _rerun_one(backend, job_id)


async def rerun_and_read(backend: Backend, job_id: int) -> Job[Any, Any]:
    """:func:`rerun`, then return the job as stored afterwards."""
    await rerun(backend, job_id)
    return await backend.get_job(job_id)


# -- many jobs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    """Which jobs a listing or a bulk action covers: executors (any of), statuses (any of) and
    tags (all of). Empty means no restriction."""

    executors: tuple[str, ...] = ()
    statuses: tuple[JobStatus, ...] = ()
    tags: tuple[str, ...] = ()

    def node(self) -> QueryNode:
        """The query tree for these filters."""
        parts: list[QueryNode] = []
        if self.executors:
            parts.append(Or(tuple(ExecutorEquals(name) for name in self.executors)))
        if self.statuses:
            parts.append(StatusIn(self.statuses))
        if self.tags:
            parts.append(TagsAllOf(self.tags))
        return And(tuple(parts))

    @staticmethod
    def parse_statuses(values: list[str] | tuple[str, ...]) -> tuple[JobStatus, ...]:
        """Statuses from their names; raises ``ConfigurationError`` naming the valid ones."""
        statuses = []
        for value in values:
            try:
                statuses.append(JobStatus(value.strip().lower()))
            except ValueError:
                valid = ", ".join(s.value for s in JobStatus.ALL)
                raise ConfigurationError(f"unknown status {value!r}: use one of {valid}") from None
        return tuple(statuses)


def can_retry(filters: Filters) -> bool:
    """Whether a bulk retry of ``filters`` is allowed: not when it names executing jobs.

    An executing job belongs to the node running it: it can be cancelled, not run again.
    """
    return JobStatus.EXECUTING not in filters.statuses


def check_retry(filters: Filters) -> None:
    """Refuse, with ``ConfigurationError``, a bulk retry that :func:`can_retry` does not allow.

    :func:`retry` checks this itself; callers that ask for a confirmation first check it
    before asking.
    """
    if not can_retry(filters):
        raise ConfigurationError(
            "executing jobs cannot be retried: cancel them first, or pick another status"
        )


@dataclass(slots=True)
class RetryReport:
    """What a bulk retry did: the ids run again, and those skipped with the reason."""

    rerun: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Encode as a JSON object."""
        return {
            "rerun": self.rerun,
            "skipped": [{"id": job_id, "reason": why} for job_id, why in self.skipped],
        }


async def retry_candidates(
    backend: Backend, filters: Filters, *, limit: int | None = None, page: int = 500
) -> list[int]:
    """The ids :func:`retry` would run again (at most ``limit``), oldest first.

    Without statuses in ``filters``, every status but executing. Read ``page`` jobs at a time.
    """
    check_retry(filters)
    node = filters.node()
    if not filters.statuses:
        node = And((node, StatusIn(tuple(s for s in JobStatus.ALL if s != JobStatus.EXECUTING))))
    ids: list[int] = []
    offset = 0
    while limit is None or len(ids) < limit:
        size = page if limit is None else min(page, limit - len(ids))
        batch = await backend.query(node, limit=size, offset=offset)
        ids.extend(int(job.id) for job in batch)
        if len(batch) < size:
            break
        offset += size
    return ids


async def retry(
    backend: Backend, filters: Filters, *, limit: int | None = None, page: int = 500
) -> RetryReport:
    """Run again every job that ``filters`` selects (at most ``limit``), oldest first.

    Executing jobs are refused (see :func:`check_retry`). The ids are collected first and then
    rerun one by one, so a job that changes meanwhile (a worker claims it, a pruner deletes
    it) is skipped and reported, not an error.
    """
    report = RetryReport()
    for job_id in await retry_candidates(backend, filters, limit=limit, page=page):
        try:
            await rerun(backend, job_id)
        except JobNotFound:
            report.skipped.append((job_id, "deleted meanwhile"))
        except InvalidTransition:
            report.skipped.append((job_id, "executing"))
        else:
            report.rerun.append(job_id)
    return report


# -- statistics and nodes --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overview:
    """Counts per executor and status, and finished jobs per minute, for stats and charts.

    ``series`` has one row per minute of the window, oldest first, minutes without finished
    jobs included: (minute, {status: count}).
    """

    counts: dict[tuple[str, JobStatus], int]
    series: list[tuple[datetime, dict[JobStatus, int]]]
    minutes: int
    taken_at: datetime

    @property
    def executors(self) -> list[str]:
        """Executor names that have jobs, sorted."""
        return sorted({executor for executor, _ in self.counts})

    def by_status(self) -> dict[JobStatus, int]:
        """Totals per status over every executor (every status present, zeros included)."""
        totals = dict.fromkeys(JobStatus.ALL, 0)
        for (_, status), count in self.counts.items():
            totals[status] += count
        return totals

    def row(self, executor: str) -> dict[JobStatus, int]:
        """One executor's counts per status (zeros included)."""
        return {status: self.counts.get((executor, status), 0) for status in JobStatus.ALL}

    def finished(self, statuses: frozenset[JobStatus] | None = None) -> int:
        """Jobs that finished within the window, of ``statuses`` (None: any terminal one)."""
        return sum(
            count
            for _, per_status in self.series
            for status, count in per_status.items()
            if statuses is None or status in statuses
        )

    def per_minute(self) -> float:
        """Average completed jobs per minute over the window."""
        return self.finished(frozenset({JobStatus.COMPLETE})) / max(self.minutes, 1)

    def to_json(self) -> dict[str, Any]:
        """Encode as a JSON object."""
        return {
            "taken_at": iso(self.taken_at),
            "minutes": self.minutes,
            "by_status": {s.value: n for s, n in self.by_status().items()},
            "by_executor": {
                executor: {s.value: n for s, n in self.row(executor).items()}
                for executor in self.executors
            },
            "throughput": [
                {"minute": iso(minute), **{s.value: per[s] for s in JobStatus.TERMINAL}}
                for minute, per in self.series
            ],
            "completed_per_minute": round(self.per_minute(), 3),
        }


async def stats(backend: Backend, minutes: int = 60) -> Overview:
    """Counts per executor and status, and the last ``minutes`` minutes of throughput."""
    if minutes < 1:
        raise ConfigurationError(f"the window must be at least one minute, got {minutes}")
    counts = await backend.count_jobs()
    rows = await backend.finished_per_minute(timedelta(minutes=minutes))
    now = _clock.now().astimezone(UTC)
    last = now.replace(second=0, microsecond=0)
    first = last - timedelta(minutes=minutes - 1)
    series: dict[datetime, dict[JobStatus, int]] = {}
    for i in range(minutes):
        series[first + timedelta(minutes=i)] = dict.fromkeys(JobStatus.TERMINAL, 0)
    for minute, status, count in rows:
        key = minute.astimezone(UTC).replace(second=0, microsecond=0)
        if key in series and status in JobStatus.TERMINAL:
            series[key][status] += count
    return Overview(dict(counts), sorted(series.items()), minutes, now)


@dataclass(frozen=True, slots=True)
class NodeRow:
    """A recorded node and whether its heartbeat is recent enough to count as alive."""

    node: NodeInfo
    alive: bool

    def to_json(self) -> dict[str, Any]:
        """Encode as a JSON object."""
        return {
            "node_id": self.node.node_id,
            "host": self.node.host,
            "pid": self.node.pid,
            "started_at": iso(self.node.started_at),
            "heartbeat_at": iso(self.node.heartbeat_at),
            "alive": self.alive,
        }


async def nodes(backend: Backend, stale_after: timedelta = timedelta(seconds=30)) -> list[NodeRow]:
    """Recorded nodes, most recent heartbeat first; silent longer than ``stale_after``: not
    alive (30 s, a node's default ``rescue_after``)."""
    now = _clock.now()
    return [
        NodeRow(node, node.heartbeat_at is not None and now - node.heartbeat_at <= stale_after)
        for node in await backend.list_nodes()
    ]
