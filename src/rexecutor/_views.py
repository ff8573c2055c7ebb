"""Views of stored jobs for people and for JSON, shared by the command line and the dashboard.

How a job, its errors and its history look in ``--json`` output and the dashboard's API, and
the short relative times both show. Nothing here reads a backend; the operations are in
:mod:`rexecutor.admin`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rexecutor import _clock
from rexecutor.control import ExecutorControl
from rexecutor.job import ErrorType, Job, JobError, JobStatus
from rexecutor.limits import RateLimit
from rexecutor.progress import is_from_earlier_attempt

__all__ = [
    "LIST_ERRORS",
    "LIST_TEXT_CHARS",
    "LIST_VALUE_CHARS",
    "HistoryEntry",
    "control_to_json",
    "dumps_json",
    "error_to_json",
    "format_age",
    "format_period",
    "format_rate",
    "iso",
    "job_history",
    "job_to_json",
    "progress_text",
    "progress_to_json",
]

#: In listings, data or metadata whose JSON is longer than this is cut to a preview.
LIST_VALUE_CHARS = 2048
#: In listings, error details, tracebacks and tags longer than this are cut.
LIST_TEXT_CHARS = 1024
#: In listings, only the last errors of a job are shown.
LIST_ERRORS = 3


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


def iso(moment: datetime | None) -> str | None:
    """``moment`` in ISO 8601, UTC (None stays None)."""
    return None if moment is None else moment.astimezone(UTC).isoformat()


def format_period(period: timedelta) -> str:
    """A rate-limit period, briefly: ``"1m"``, ``"90s"``, ``"250ms"``, ``"1h30m"``."""
    millis = round(period.total_seconds() * 1000)
    if millis % 1000:
        return f"{millis}ms" if millis < 1000 else f"{millis / 1000:g}s"
    seconds = millis // 1000
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


def format_rate(rate: RateLimit | None) -> str:
    """A rate limit for people: ``"100 per 1m"``, ``"5 per 1s per partition"``, ``"-"``."""
    if rate is None:
        return "-"
    text = f"{rate.allowed} per {format_period(rate.period)}"
    return text + " per partition" if rate.per_partition else text


def control_to_json(state: ExecutorControl) -> dict[str, Any]:
    """An executor's run-time state as a JSON object (the rate limit's period in seconds;
    ``max_concurrency`` None with ``scaled`` false: the class's own limit, which only the
    executor's code knows)."""
    rate = state.rate_limit
    return {
        "name": state.name,
        "paused": state.paused,
        "max_concurrency": state.max_concurrency,
        "scaled": state.scaled,
        "global_max_concurrency": state.global_max_concurrency,
        "partition_max_concurrency": state.partition_max_concurrency,
        "rate_limit": None
        if rate is None
        else {
            "allowed": rate.allowed,
            "period_seconds": rate.period.total_seconds(),
            "per_partition": rate.per_partition,
        },
        "started_in_window": state.started_in_window,
        "rate_headroom": state.rate_headroom,
        "scheduled": state.scheduled,
        "executing": state.executing,
        "failed": state.failed,
    }


def error_to_json(error: JobError) -> dict[str, Any]:
    """A recorded error as a JSON object (times in ISO 8601, UTC)."""
    return {
        "attempt": error.attempt,
        "type": error.error_type.value,
        "name": error.name,
        "details": error.details,
        "recorded_at": iso(error.recorded_at),
        "traceback": error.traceback,
    }


def progress_to_json(job: Job[Any, Any]) -> dict[str, Any] | None:
    """A job's last progress report as a JSON object (None: none); ``earlier_attempt`` says
    it was left by an attempt before the one on record."""
    progress = job.progress
    if progress is None:
        return None
    return {
        "percent": progress.percent,
        "message": progress.message,
        "updated_at": iso(progress.updated_at),
        "earlier_attempt": is_from_earlier_attempt(job),
    }


def progress_text(job: Job[Any, Any]) -> str | None:
    """A job's last progress report in one line: ``"40% · page 4 of 10 (3s ago)"``."""
    progress = job.progress
    if progress is None:
        return None
    text = f"{progress.percent:.3g}%"
    if progress.message:
        text += f" · {progress.message}"
    text += f" ({format_age(progress.updated_at)}"
    if is_from_earlier_attempt(job):
        text += ", from an earlier attempt"
    return text + ")"


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

    ``result`` is the job's stored result (None: none). With ``summary`` (the address of the
    full job), the object is bounded for listings: data, metadata and result longer than
    :data:`LIST_VALUE_CHARS` become a preview string, only the last :data:`LIST_ERRORS`
    errors are kept, long texts and tags are cut; ``truncated`` then names the fields that
    were cut and ``full`` is ``summary``.
    """
    cut: list[str] = []
    errors = job.errors
    tags = list(job.tags)
    data, metadata, result = job.data, job.metadata, job.result
    if summary is not None:
        data = _preview(data, cut, "data")
        metadata = _preview(metadata, cut, "metadata")
        result = _preview(result, cut, "result")
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
        "result": result,
        "errors": error_values,
        "progress": progress_to_json(job),
        "inserted_at": iso(job.inserted_at),
        "scheduled_at": iso(job.scheduled_at),
        "attempted_at": iso(job.attempted_at),
        "attempted_by": job.attempted_by,
        "completed_at": iso(job.completed_at),
        "cancelled_at": iso(job.cancelled_at),
        "discarded_at": iso(job.discarded_at),
    }
    value.update(_workflow_fields(job))
    if history:
        value["history"] = [entry.to_json() for entry in job_history(job)]
    if cut:
        value["truncated"] = cut
        value["full"] = summary
    return value


def _workflow_fields(job: Job[Any, Any]) -> dict[str, Any]:
    # The workflow a job belongs to (None: none), its step name, and whether it is held back
    # until its dependencies finish (still ``scheduled``).
    return {
        "workflow_id": job.workflow_id,
        "workflow_step": job.workflow_step,
        "blocked": job.blocked,
    }


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One step in a job's life, rebuilt from its timestamps and errors."""

    at: datetime
    event: str
    detail: str = ""
    status: str = ""

    def to_json(self) -> dict[str, Any]:
        """Encode as a JSON object."""
        return {"at": iso(self.at), "event": self.event, "detail": self.detail}


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
