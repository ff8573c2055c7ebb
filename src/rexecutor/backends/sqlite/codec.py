"""Rows to jobs and back: times as integer microseconds, JSON as canonical text, and the
lenient readers for rows that rexecutor could not have written.

* **Times** are stored as integer microseconds since the Unix epoch (UTC), so they sort and
  compare as numbers in SQL and convert back exactly to aware UTC datetimes.
* **JSON** values (data, metadata) are stored as canonical text (sorted keys), so equality in a
  query is a text comparison that does not depend on key order. A value holding integral floats
  also gets an "equality text" (``data_eq``/``metadata_eq``) with them written as integers,
  because JSON equality, as the reference backend defines it, has 1 == 1.0 (and true != 1).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from rexecutor import _clock
from rexecutor._payload import EARLIEST, LATEST, EncodedJob
from rexecutor.backend import EnqueuableJob, FailureRecord
from rexecutor.backends._common import (
    UNREADABLE_EARLY,
    UNREADABLE_LATE,
    RowReader,
    error_entry,
    poison_failure,
    schedulable,
    storable_id,
)
from rexecutor.errors import JobNotFound
from rexecutor.job import Job, JobError, JobId, JobProgress, JobStatus

T = TypeVar("T")

_log = logging.getLogger("rexecutor")

#: The columns of a job row, in the order every reader below expects.
COLUMNS: Final = (
    "id, status, executor, data, metadata, attempt, max_attempts, priority, tags, errors, "
    "inserted_at, scheduled_at, attempted_at, attempted_by, completed_at, cancelled_at, "
    "discarded_at, partition_key, result, progress, workflow_id, workflow_step, blocked, "
    "has_dependents"
)
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND: Final = timedelta(microseconds=1)
#: The range of stored times Python can represent, and the narrower one enqueue accepts.
_MIN_US: Final = (UNREADABLE_EARLY - EPOCH) // MICROSECOND
_MAX_US: Final = (UNREADABLE_LATE - EPOCH) // MICROSECOND
_EARLIEST_US: Final = (EARLIEST - EPOCH) // MICROSECOND
LATEST_US: Final = (LATEST - EPOCH) // MICROSECOND
STATUS: Final = {s.value: s for s in JobStatus}

#: rexecutor._json.canonical (sorted keys, compact, not ASCII-escaped), with one encoder for
#: every value instead of one per call: it encodes the data and metadata of every job stored.
_canonical: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False
).encode


def to_us(moment: datetime) -> int:
    """Integer microseconds since the epoch; exact for every aware datetime."""
    return (moment - EPOCH) // MICROSECOND


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def _opt_from_us(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + timedelta(microseconds=value)


def clamped_from_us(value: int | None) -> datetime | None:
    """A stored time as a datetime, clamped to what Python can represent (for summaries)."""
    if value is None:
        return None
    return from_us(min(max(int(value), _MIN_US), _MAX_US))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


#: json.loads, except that NaN and Infinity (which Python's json writes and reads, but which
#: are not JSON) make a stored value unreadable instead of flowing on into JSON output.
_decode_json: Final = json.JSONDecoder(parse_constant=_refuse_constant).decode
#: What decoding a stored row can raise when the row holds something rexecutor never writes.
_DECODE_ERRORS: Final = (ValueError, TypeError, KeyError, OverflowError, RecursionError)


def _loads(text: str) -> Any:
    # Shortcuts for the commonest values (no metadata, no tags, no errors): decoding is a large
    # share of the cost of reading a job.
    if text == "null":
        return None
    if text == "[]":
        return []
    return _decode_json(text)


def _job_from_row(row: tuple[Any, ...]) -> Job[Any, Any]:
    errors_text: str = row[9]
    tags = _loads(row[8])
    if type(tags) is not list:
        raise TypeError("tags are not a list")
    return Job(
        id=JobId(row[0]),
        status=STATUS[row[1]],
        executor=row[2],
        data=_loads(row[3]),
        metadata=_loads(row[4]),
        attempt=row[5],
        max_attempts=row[6],
        priority=row[7],
        tags=tags,
        errors=[]
        if errors_text == "[]"
        else [JobError.from_json(e) for e in _decode_json(errors_text)],
        inserted_at=from_us(row[10]),
        scheduled_at=from_us(row[11]),
        attempted_at=_opt_from_us(row[12]),
        attempted_by=row[13],
        completed_at=_opt_from_us(row[14]),
        cancelled_at=_opt_from_us(row[15]),
        discarded_at=_opt_from_us(row[16]),
        partition_key=row[17],
        result=None if row[18] is None else _loads(row[18]),
        progress=None if row[19] is None else JobProgress.from_json(_loads(row[19])),
        workflow_id=row[20],
        workflow_step=row[21],
        blocked=bool(row[22]),
        has_dependents=bool(row[23]),
    )


def read_job(row: tuple[Any, ...]) -> Job[Any, Any]:
    """Decode a row for a reader; a row that rexecutor could not have written still reads."""
    try:
        return _job_from_row(row)
    except _DECODE_ERRORS:
        return _read_defensively(row)[0]


class _InvalidUtf8(str):
    """Stored text that is not UTF-8, read with its bad bytes replaced (U+FFFD)."""

    __slots__ = ()


def lenient_text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return _InvalidUtf8(raw.decode(errors="replace"))


def leniently(conn: sqlite3.Connection, run: Callable[[], T]) -> T:
    """``run()`` with text read by ``lenient_text``: the default, C-speed text reading stays
    on every other call."""
    conn.text_factory = lenient_text
    try:
        return run()
    finally:
        conn.text_factory = str


_COLUMN_NAMES: Final = tuple(COLUMNS.split(", "))


def _note_invalid_utf8(row: tuple[Any, ...], reader: RowReader) -> None:
    for name, value in zip(_COLUMN_NAMES, row, strict=True):
        if type(value) is _InvalidUtf8:
            text = str(value)
            if name in ("data", "metadata", "tags", "errors"):
                try:
                    _decode_json(text)
                except _DECODE_ERRORS:
                    text = _canonical(text)
            reader.note(name, value, "is not valid UTF-8 (bad bytes replaced)", text)


def read_claimed(row: tuple[Any, ...], lenient: bool) -> tuple[Job[Any, Any], RowReader | None]:
    """Decode a claimed row, with what makes it unfit to run (None: nothing).

    ``lenient``: text was read by ``lenient_text`` (some row holds text that is not UTF-8).
    """
    if lenient and any(type(value) is _InvalidUtf8 for value in row):
        job, reader = _read_defensively(row)
        _note_invalid_utf8(row, reader)
        return job, reader
    try:
        job = _job_from_row(row)
    except _DECODE_ERRORS:
        return _read_defensively(row)
    if schedulable(job.scheduled_at) and schedulable(job.inserted_at):
        return job, None
    reader = RowReader()
    for column, moment, raw in (
        ("inserted_at", job.inserted_at, row[10]),
        ("scheduled_at", job.scheduled_at, row[11]),
    ):
        if not schedulable(moment):
            clamped = min(max(raw, _EARLIEST_US), LATEST_US)
            reader.note(
                column, raw, f"({moment.isoformat()}) is outside what enqueue accepts", clamped
            )
    return job, reader


def _progress(text: Any) -> JobProgress | None:
    """Stored progress, or None where it cannot be read (it is only a report)."""
    try:
        return JobProgress.from_json(_loads(text))
    except _DECODE_ERRORS:
        return None


def _read_defensively(row: tuple[Any, ...]) -> tuple[Job[Any, Any], RowReader]:
    """Decode each column of a row on its own, noting (and standing in for) what is unreadable."""
    reader = RowReader()

    def moment(column: str, raw: Any) -> datetime | None:
        if raw is None and column not in ("inserted_at", "scheduled_at"):
            return None
        if isinstance(raw, int) and not isinstance(raw, bool):
            if raw > _MAX_US:
                reader.note(column, raw, "is after the latest time Python can hold", LATEST_US)
                return UNREADABLE_LATE
            if raw < _MIN_US:
                reader.note(
                    column, raw, "is before the earliest time Python can hold", _EARLIEST_US
                )
                return UNREADABLE_EARLY
            if column in ("inserted_at", "scheduled_at") and not (_EARLIEST_US <= raw <= LATEST_US):
                reader.note(
                    column,
                    raw,
                    "is outside what enqueue accepts",
                    min(max(raw, _EARLIEST_US), LATEST_US),
                )
            return from_us(raw)
        reader.note(column, raw, "is not a time (integer microseconds since 1970)", LATEST_US)
        return UNREADABLE_LATE

    def value(column: str, raw: Any) -> Any:
        try:
            return _loads(raw)
        except _DECODE_ERRORS as exc:
            text = raw if isinstance(raw, str) else repr(raw)
            reader.note(column, raw, f"is not valid JSON ({exc})", _canonical(text))
            return text

    tags: Any = value("tags", row[8])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        if "tags" not in reader.repairs:
            reader.note("tags", row[8], "is not a JSON list of strings", None)
        tags = [row[8] if isinstance(row[8], str) else repr(row[8])]
        reader.repairs["tags"] = _canonical(tags)
    try:
        stored_errors: Any = _loads(row[9])
    except _DECODE_ERRORS:
        stored_errors = None
    errors = reader.errors(stored_errors, row[9])
    status = reader.status(row[1])
    job: Job[Any, Any] = Job(
        id=JobId(row[0]),
        status=status,
        executor=reader.text("executor", row[2]),
        data=value("data", row[3]),
        metadata=value("metadata", row[4]),
        attempt=reader.integer("attempt", row[5], 0),
        max_attempts=reader.integer("max_attempts", row[6], 1),
        priority=reader.integer("priority", row[7], 0),
        tags=tags,
        errors=reader.explained(errors),
        inserted_at=moment("inserted_at", row[10]) or UNREADABLE_EARLY,
        scheduled_at=moment("scheduled_at", row[11]) or UNREADABLE_LATE,
        attempted_at=moment("attempted_at", row[12]),
        attempted_by=None if row[13] is None else reader.text("attempted_by", row[13]),
        completed_at=moment("completed_at", row[14]),
        cancelled_at=moment("cancelled_at", row[15]),
        discarded_at=moment("discarded_at", row[16]),
        partition_key=None if row[17] is None else reader.text("partition_key", row[17]),
        result=None if row[18] is None else value("result", row[18]),
        progress=None if row[19] is None else _progress(row[19]),
        workflow_id=None if row[20] is None else reader.text("workflow_id", row[20]),
        workflow_step=None if row[21] is None else reader.text("workflow_step", row[21]),
        blocked=bool(row[22]),
        has_dependents=bool(row[23]),
    )
    return job, reader


def set_aside(conn: sqlite3.Connection, job: Job[Any, Any], reader: RowReader) -> None:
    """Discard a claimed job whose row cannot be read, writing readable stand-ins."""
    now = _clock.now()
    failure = poison_failure(reader.problems)
    entries = [e.to_json() for e in job.errors]
    entries.append(error_entry(job, failure, now).to_json())
    columns: dict[str, Any] = {
        "status": JobStatus.DISCARDED.value,
        "discarded_at": to_us(now),
        "errors": json.dumps(entries, ensure_ascii=False),
    }
    for column, repair in reader.repairs.items():
        if column not in ("status", "errors"):
            columns[column] = repair
    if "data" in columns:
        columns["data_eq"] = None
    if "metadata" in columns:
        columns["metadata_eq"] = None
    assignments = ", ".join(f"{column} = ?" for column in columns)
    conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*columns.values(), job.id))
    _log.warning(
        "job %s of executor %r cannot be read and was discarded: %s",
        int(job.id),
        job.executor,
        "; ".join(reader.problems),
    )


def error_json(attempt: int, error: FailureRecord, now: datetime) -> str:
    entry = JobError(attempt, error.error_type, error.details, now, error.name, error.traceback)
    return json.dumps(entry.to_json(), ensure_ascii=False)


def _has_integral_float(value: Any) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_has_integral_float(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_integral_float(v) for v in value)
    return False


def _normalise(value: Any) -> Any:
    """``value`` with integral floats as ints, so equal JSON numbers have equal text.

    ``int(f)`` is exact, so 1e300 stays unequal to 10**300, exactly as Python compares them.
    """
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def equality_text(value: Any) -> str:
    """The text an equality query compares with ``COALESCE(data_eq, data)``."""
    return _canonical(_normalise(value))


def equality_text_if_needed(value: Any) -> str | None:
    """The equality text of a JSON value when it differs from its stored text."""
    return equality_text(value) if _has_integral_float(value) else None


class Prepared:
    """An enqueuable job with its JSON encoded, ready for the database thread."""

    __slots__ = (
        "data",
        "data_eq",
        "key",
        "metadata",
        "metadata_eq",
        "scheduled_us",
        "source",
        "tags",
    )

    def __init__(self, job: EnqueuableJob, encoded: EncodedJob) -> None:
        self.source = job
        self.data, self.data_eq = encoded.data, equality_text_if_needed(job.data)
        self.metadata = encoded.metadata
        self.metadata_eq = equality_text_if_needed(job.metadata)
        self.tags = encoded.tags
        self.key = job.uniqueness.key if job.uniqueness is not None else None
        self.scheduled_us = None if encoded.scheduled_at is None else to_us(encoded.scheduled_at)


def select_jobs(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Job[Any, Any]]:
    return [read_job(r) for r in conn.execute(sql, params).fetchall()]


def job_key(job_id: int) -> int:
    """A job id as SQLite binds it; an id no row can have is not found (not an OverflowError)."""
    key = int(job_id)
    if not storable_id(key):
        raise JobNotFound(key)
    return key


def stored_status(value: Any) -> JobStatus:
    # An unknown status (a row rexecutor did not write) counts as discarded, as readers show it.
    return STATUS.get(value, JobStatus.DISCARDED)
