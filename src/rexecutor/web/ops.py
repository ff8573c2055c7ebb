"""Operations on stored jobs shared by the ``rexecutor`` command line and the dashboard.

Everything here goes through the :class:`~rexecutor.backend.Backend` protocol only, so it
works the same on every backend, and imports nothing beyond the standard library: the command
line uses it without the ``web`` extra installed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rexecutor import _clock
from rexecutor.backend import Backend, FailureRecord, NodeInfo
from rexecutor.errors import ConfigurationError, InvalidTransition, JobNotFound
from rexecutor.job import ErrorType, Job, JobError, JobStatus
from rexecutor.query import And, ExecutorEquals, Or, QueryNode, StatusIn, TagsAllOf

__all__ = [
    "FAILED_STATUSES",
    "CancelResult",
    "Filters",
    "HistoryEntry",
    "NodeRow",
    "Overview",
    "RetryReport",
    "cancel_job",
    "error_to_json",
    "format_age",
    "job_history",
    "job_to_json",
    "list_node_rows",
    "load_overview",
    "parse_duration",
    "rerun_job",
    "retry_jobs",
]

#: Terminal statuses drawn as failures in charts and ``stats``.
FAILED_STATUSES = frozenset({JobStatus.DISCARDED, JobStatus.CANCELLED})

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)")
_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> timedelta:
    """Parse ``90s``, ``15m``, ``12h``, ``7d``, ``2w`` or combinations such as ``1d12h``.

    A bare number counts seconds. Raises ``ConfigurationError`` with the accepted forms.

    Example:
        >>> parse_duration("1d12h")
        datetime.timedelta(days=1, seconds=43200)
    """
    cleaned = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        return timedelta(seconds=float(cleaned))
    position, seconds = 0, 0.0
    for match in _DURATION.finditer(cleaned):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not cleaned or position != len(cleaned):
        raise ConfigurationError(
            f"cannot read the duration {text!r}: use a number with a unit, such as 90s, 15m, "
            "12h, 7d or 2w (or combinations such as 1d12h)"
        )
    return timedelta(seconds=seconds)


def format_age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``moment`` was, briefly: ``"4s ago"``, ``"3m ago"``, ``"in 2h"``."""
    if moment is None:
        return "-"
    delta = ((now or _clock.now()) - moment).total_seconds()
    future = delta < 0
    delta = abs(delta)
    if delta < 60:
        text = f"{int(delta)}s"
    elif delta < 3600:
        text = f"{int(delta // 60)}m"
    elif delta < 86400:
        text = f"{int(delta // 3600)}h"
    else:
        text = f"{int(delta // 86400)}d"
    return f"in {text}" if future else f"{text} ago"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def error_to_json(error: JobError) -> dict[str, Any]:
    """A recorded error as a JSON object (times in ISO 8601, UTC)."""
    return {
        "attempt": error.attempt,
        "type": error.error_type.value,
        "name": error.name,
        "details": error.details,
        "recorded_at": _iso(error.recorded_at),
        "traceback": error.traceback,
    }


def job_to_json(job: Job[Any, Any], *, history: bool = False) -> dict[str, Any]:
    """A stored job as a JSON object: what ``--json`` prints and the dashboard's API returns."""
    value: dict[str, Any] = {
        "id": int(job.id),
        "executor": job.executor,
        "status": job.status.value,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "priority": job.priority,
        "tags": list(job.tags),
        "data": job.data,
        "metadata": job.metadata,
        "errors": [error_to_json(e) for e in job.errors],
        "inserted_at": _iso(job.inserted_at),
        "scheduled_at": _iso(job.scheduled_at),
        "attempted_at": _iso(job.attempted_at),
        "attempted_by": job.attempted_by,
        "completed_at": _iso(job.completed_at),
        "cancelled_at": _iso(job.cancelled_at),
        "discarded_at": _iso(job.discarded_at),
    }
    if history:
        value["history"] = [entry.to_json() for entry in job_history(job)]
    return value


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One step in a job's life, rebuilt from its timestamps and errors."""

    at: datetime
    event: str
    detail: str = ""
    status: str = ""

    def to_json(self) -> dict[str, Any]:
        """Encode as a JSON object."""
        return {"at": _iso(self.at), "event": self.event, "detail": self.detail}


_ERROR_EVENTS = {
    ErrorType.CANCELLED: "cancelled",
    ErrorType.ORPHANED: "rescued",
    ErrorType.SHUTDOWN: "handed back",
    ErrorType.TIMEOUT: "timed out",
}


def job_history(job: Job[Any, Any]) -> list[HistoryEntry]:
    """The state history of ``job``, oldest first.

    Nothing extra is stored for it: it is rebuilt from the timestamps a job keeps (inserted,
    scheduled, last attempted, completed, cancelled, discarded) and its errors, each recorded
    with its attempt and time. Earlier attempts that succeeded in snoozing leave no trace.
    """
    entries = [HistoryEntry(job.inserted_at, "inserted", f"max {job.max_attempts} attempts")]
    for error in job.errors:
        event = _ERROR_EVENTS.get(error.error_type, "failed")
        label = error.name or error.error_type.value
        detail = f"attempt {error.attempt}: {label}: {error.details}"
        entries.append(HistoryEntry(error.recorded_at, event, detail, "error"))
    if job.attempted_at is not None:
        node = f" on {job.attempted_by}" if job.attempted_by else ""
        entries.append(HistoryEntry(job.attempted_at, "attempted", f"attempt {job.attempt}{node}"))
    if job.status in JobStatus.READY and job.scheduled_at > job.inserted_at + timedelta(
        milliseconds=1
    ):
        what = "retry due" if job.status is JobStatus.RETRYABLE else "due"
        entries.append(HistoryEntry(job.scheduled_at, what, ""))
    for moment, event in (
        (job.completed_at, "completed"),
        (job.cancelled_at, "cancelled"),
        (job.discarded_at, "discarded"),
    ):
        if moment is not None:
            entries.append(HistoryEntry(moment, event, "", event))
    # Stable sort: at equal times, the order above (error before the status it caused) holds.
    return sorted(entries, key=lambda e: e.at)


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


@dataclass(frozen=True, slots=True)
class CancelResult:
    """What a cancel did: ``cancelled`` is False when the job had already finished."""

    job_id: int
    cancelled: bool
    status: JobStatus


async def cancel_job(backend: Backend, job_id: int, reason: str) -> CancelResult:
    """Cancel a job from outside (a running one is stopped on its node).

    Raises ``JobNotFound``. A job that had already finished is left alone and reported with
    ``cancelled=False`` and its status.
    """
    error = FailureRecord(ErrorType.CANCELLED, reason)
    done = await backend.mark_job_cancelled(job_id, None, error)
    status = JobStatus.CANCELLED
    if not done:
        status = (await backend.get_job(job_id)).status
    return CancelResult(int(job_id), done, status)


async def rerun_job(backend: Backend, job_id: int) -> Job[Any, Any]:
    """Run a job again now; returns it as stored afterwards.

    Raises ``JobNotFound``, or ``InvalidTransition`` for a job that is executing.
    """
    await backend.rerun_job(job_id)
    return await backend.get_job(job_id)


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


async def retry_jobs(
    backend: Backend, filters: Filters, *, limit: int | None = None, page: int = 500
) -> RetryReport:
    """Run again every job that ``filters`` selects (at most ``limit``), oldest first.

    The ids are collected first and then rerun one by one, so a job that changes meanwhile
    (a worker claims it, a pruner deletes it) is skipped and reported, not an error.
    """
    if JobStatus.EXECUTING in filters.statuses:
        raise ConfigurationError("executing jobs cannot be retried: cancel them first")
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
    report = RetryReport()
    for job_id in ids:
        try:
            await backend.rerun_job(job_id)
        except JobNotFound:
            report.skipped.append((job_id, "deleted meanwhile"))
        except InvalidTransition:
            report.skipped.append((job_id, "executing"))
        else:
            report.rerun.append(job_id)
    return report


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
            "taken_at": _iso(self.taken_at),
            "minutes": self.minutes,
            "by_status": {s.value: n for s, n in self.by_status().items()},
            "by_executor": {
                executor: {s.value: n for s, n in self.row(executor).items()}
                for executor in self.executors
            },
            "throughput": [
                {"minute": _iso(minute), **{s.value: per[s] for s in JobStatus.TERMINAL}}
                for minute, per in self.series
            ],
            "completed_per_minute": round(self.per_minute(), 3),
        }


async def load_overview(backend: Backend, minutes: int = 60) -> Overview:
    """Read counts and the last ``minutes`` minutes of throughput from ``backend``."""
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
            "started_at": _iso(self.node.started_at),
            "heartbeat_at": _iso(self.node.heartbeat_at),
            "alive": self.alive,
        }


async def list_node_rows(
    backend: Backend, stale_after: timedelta = timedelta(seconds=30)
) -> list[NodeRow]:
    """Recorded nodes, most recent heartbeat first; silent longer than ``stale_after``: not
    alive (30 s, a node's default ``rescue_after``)."""
    now = _clock.now()
    return [
        NodeRow(node, node.heartbeat_at is not None and now - node.heartbeat_at <= stale_after)
        for node in await backend.list_nodes()
    ]
