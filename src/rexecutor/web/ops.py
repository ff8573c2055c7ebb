"""Operations on stored jobs shared by the ``rexecutor`` command line and the dashboard.

Everything here goes through the :class:`~rexecutor.backend.Backend` protocol only, so it
works the same on every backend, and imports nothing beyond the standard library: the command
line uses it without the ``web`` extra installed.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rexecutor import _clock, admin
from rexecutor.backend import Backend, NodeInfo
from rexecutor.errors import ConfigurationError, InvalidTransition, JobNotFound
from rexecutor.job import ErrorType, Job, JobError, JobStatus
from rexecutor.query import And, ExecutorEquals, Or, QueryNode, StatusIn, TagsAllOf

__all__ = [
    "FAILED_STATUSES",
    "LIST_ERRORS",
    "LIST_TEXT_CHARS",
    "LIST_VALUE_CHARS",
    "MAX_JOB_ID",
    "CancelResult",
    "Filters",
    "HistoryEntry",
    "NodeRow",
    "Overview",
    "RetryReport",
    "cancel_job",
    "check_job_id",
    "dumps_json",
    "error_to_json",
    "format_age",
    "host_name",
    "is_loopback",
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

#: The largest job id any backend can store (a signed 64-bit integer); larger ones do not exist.
MAX_JOB_ID = 2**63 - 1
#: In listings, data or metadata whose JSON is longer than this is cut to a preview.
LIST_VALUE_CHARS = 2048
#: In listings, error details, tracebacks and tags longer than this are cut.
LIST_TEXT_CHARS = 1024
#: In listings, only the last errors of a job are shown.
LIST_ERRORS = 3

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)")
_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost`` or a loopback address)."""
    name = host.strip().lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a Host header, lower case, without the port: ``[::1]:8000`` → ``::1``."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


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


def check_job_id(job_id: int) -> int:
    """``job_id`` if a job could have it; ``JobNotFound`` for ids no backend can store."""
    if not 1 <= job_id <= MAX_JOB_ID:
        raise JobNotFound(job_id)
    return job_id


def dumps_json(value: Any, *, indent: int | None = None) -> str:
    """Strict JSON text for ``value`` (non-ASCII kept as is).

    Values that JSON cannot hold are written as strings, so the output always parses:
    NaN and infinities (old rows may hold them) as ``"NaN"``, ``"Infinity"`` and
    ``"-Infinity"``, integers too long for Python to print as text as a description of their
    size, anything else as its ``str``. Lone surrogates stay in the text: encode it with
    ``errors="backslashreplace"``, which writes them as valid ``\\uXXXX`` escapes.
    """
    try:
        return json.dumps(value, indent=indent, ensure_ascii=False, allow_nan=False, default=str)
    except ValueError:  # NaN, an infinity or a huge integer somewhere: rare, so walk only then
        return json.dumps(
            _strict(value), indent=indent, ensure_ascii=False, allow_nan=False, default=str
        )


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            str(value)
        except ValueError:
            return f"<integer of {value.bit_length()} bits>"
        return value
    if isinstance(value, dict):
        return {str(_strict(k)): _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _clip_text(text: str | None, limit: int, cut: list[str], what: str) -> str | None:
    if text is None or len(text) <= limit:
        return text
    if what not in cut:
        cut.append(what)
    return text[:limit] + f"… [{len(text) - limit} more characters]"


def _preview(value: Any, cut: list[str], what: str) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str) and len(value) <= LIST_VALUE_CHARS:
        return value
    text = dumps_json(value)
    if len(text) <= LIST_VALUE_CHARS:
        return value
    cut.append(what)
    return text[:LIST_VALUE_CHARS] + f"… [{len(text) - LIST_VALUE_CHARS} more characters]"


def job_to_json(
    job: Job[Any, Any], *, history: bool = False, summary: str | None = None
) -> dict[str, Any]:
    """A stored job as a JSON object: what ``--json`` prints and the dashboard's API returns.

    With ``summary`` (the address of the full job), the object is bounded for listings: data
    and metadata longer than :data:`LIST_VALUE_CHARS` become a preview string, only the last
    :data:`LIST_ERRORS` errors are kept, long texts and tags are cut; ``truncated`` then names
    the fields that were cut and ``full`` is ``summary``.
    """
    cut: list[str] = []
    errors = job.errors
    tags = list(job.tags)
    data, metadata = job.data, job.metadata
    if summary is not None:
        data = _preview(data, cut, "data")
        metadata = _preview(metadata, cut, "metadata")
        if len(errors) > LIST_ERRORS:
            errors, cut = errors[-LIST_ERRORS:], [*cut, "errors"]
        if len(tags) > LIST_ERRORS * 10:
            tags, cut = tags[: LIST_ERRORS * 10], [*cut, "tags"]
        tags = [str(_clip_text(t, LIST_TEXT_CHARS, cut, "tags")) for t in tags]
    error_values = [error_to_json(e) for e in errors]
    if summary is not None:
        for entry in error_values:
            entry["details"] = _clip_text(entry["details"], LIST_TEXT_CHARS, cut, "errors")
            entry["traceback"] = _clip_text(entry["traceback"], LIST_TEXT_CHARS, cut, "errors")
    value: dict[str, Any] = {
        "id": int(job.id),
        "executor": job.executor,
        "status": job.status.value,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "priority": job.priority,
        "tags": tags,
        "data": data,
        "metadata": metadata,
        "errors": error_values,
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
    if cut:
        value["truncated"] = cut
        value["full"] = summary
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
    done = await admin.cancel(backend, job_id, reason)
    status = JobStatus.CANCELLED
    if not done:
        status = (await backend.get_job(job_id)).status
    return CancelResult(int(job_id), done, status)


async def rerun_job(backend: Backend, job_id: int) -> Job[Any, Any]:
    """Run a job again now; returns it as stored afterwards.

    Raises ``JobNotFound``, or ``InvalidTransition`` for a job that is executing.
    """
    await admin.rerun(backend, job_id)
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
            await admin.rerun(backend, job_id)
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
