"""``SqliteBackend``: jobs in one SQLite file, durable and shared by the processes of one machine.

How it works:

* **One thread per backend.** Every database call runs on a dedicated thread that owns the one
  connection; an ``async`` method hands it a closure and awaits a future that the thread resolves
  with ``call_soon_threadsafe``. The event loop never blocks on SQLite. A hand-rolled queue
  is used instead of ``loop.run_in_executor``: measured side by side on the project's 2-core
  machine, a round trip to a function that does nothing costs about 50 µs this way when the
  machine is quiet (100-200 µs when both cores are busy), against 130-220 µs through a
  ``ThreadPoolExecutor``, which adds a ``concurrent.futures.Future``, ``wrap_future`` and a
  semaphore to every call. A whole ``get_job`` costs about 140 µs on a quiet machine; an
  ``enqueue``, which waits for its fsync, about 1 ms.
* **Durable and multi-process.** WAL journal, ``synchronous=FULL`` (a commit is on disk before
  ``enqueue`` returns) and ``BEGIN IMMEDIATE`` for every write transaction, so writers queue on the
  file's write lock instead of failing when they upgrade a read. ``SQLITE_BUSY`` is retried until
  ``busy_timeout`` has passed, then reported as a :class:`~rexecutor.errors.BackendError`.
* **Times** are stored as integer microseconds since the Unix epoch (UTC), so they sort and compare
  as numbers in SQL and convert back exactly to aware UTC datetimes. "Now" comes from
  :func:`rexecutor._clock.now`, so tests can move time.
* **JSON** values (data, metadata) are stored as canonical text (sorted keys), so equality in a
  query is a text comparison that does not depend on key order. A value holding integral floats
  also gets an "equality text" (``data_eq``/``metadata_eq``) with them written as integers,
  because JSON equality, as the reference backend defines it, has 1 == 1.0 (and true != 1).
* **Wake-ups.** Writes that make a job ready notify local subscribers after the commit. Commits
  made by other processes are noticed by a watcher thread that reads ``PRAGMA data_version`` on a
  second connection every ``poll_interval`` seconds while anyone is subscribed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import queue
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar, cast

from rexecutor import _clock
from rexecutor._notify import Subscription, WakeHub
from rexecutor._payload import EARLIEST, LATEST, EncodedJob, storable_delay
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
    UNREADABLE_EARLY,
    UNREADABLE_LATE,
    RowReader,
    error_entry,
    poison_failure,
    schedulable,
    status_after_giving_back,
    storable_id,
    tally,
    validate_enqueuable,
    validate_update,
)
from rexecutor.errors import (
    BackendError,
    ConfigurationError,
    InvalidTransition,
    JobNotFound,
    SchemaVersionError,
    ValidationError,
)
from rexecutor.job import ErrorType, Job, JobError, JobId, JobStatus
from rexecutor.query import (
    And,
    DataEquals,
    ExecutorEquals,
    IdIn,
    MetadataEquals,
    Not,
    Or,
    QueryNode,
    ScheduledAt,
    StatusIn,
    TagsAllOf,
    TagsOneOf,
)

__all__ = ["SCHEMA_VERSION", "SqliteBackend"]

T = TypeVar("T")

_log = logging.getLogger("rexecutor")

# -- schema -------------------------------------------------------------------------------------

# Each entry migrates the file from version i to i + 1 (PRAGMA user_version). Append, never edit.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        # AUTOINCREMENT: ids are never reused, even after the newest jobs are pruned, so an id a
        # caller kept can never name a different job later.
        """
        CREATE TABLE jobs (
            id             INTEGER PRIMARY KEY AUTOINCREMENT,
            status         TEXT    NOT NULL CHECK (status IN ('scheduled', 'executing',
                               'retryable', 'complete', 'cancelled', 'discarded')),
            executor       TEXT    NOT NULL,
            data           TEXT    NOT NULL,
            metadata       TEXT    NOT NULL,
            -- The text that equality queries compare, when it differs from data/metadata:
            -- integral floats written as integers, because 1 and 1.0 are equal JSON numbers.
            data_eq        TEXT,
            metadata_eq    TEXT,
            attempt        INTEGER NOT NULL,
            max_attempts   INTEGER NOT NULL,
            priority       INTEGER NOT NULL,
            tags           TEXT    NOT NULL,
            errors         TEXT    NOT NULL,
            uniqueness_key INTEGER,
            inserted_at    INTEGER NOT NULL,
            scheduled_at   INTEGER NOT NULL,
            attempted_at   INTEGER,
            attempted_by   TEXT,
            completed_at   INTEGER,
            cancelled_at   INTEGER,
            discarded_at   INTEGER
        )
        """,
        # The claim walks this in claim order and stops after `limit` due rows; being partial,
        # it only ever holds waiting jobs, so finished history does not slow claims down.
        """
        CREATE INDEX jobs_ready ON jobs (executor, priority, scheduled_at, id)
            WHERE status IN ('scheduled', 'retryable')
        """,
        # next_scheduled_at (a MIN per executor) and uniqueness windows over waiting jobs.
        """
        CREATE INDEX jobs_due ON jobs (executor, scheduled_at)
            WHERE status IN ('scheduled', 'retryable')
        """,
        # Pruning by age or by count, newest finished first.
        """
        CREATE INDEX jobs_finished ON jobs (
            status, COALESCE(completed_at, cancelled_at, discarded_at, scheduled_at), id
        ) WHERE status IN ('complete', 'cancelled', 'discarded')
        """,
        "CREATE INDEX jobs_uniqueness ON jobs (uniqueness_key) WHERE uniqueness_key IS NOT NULL",
        # Rescue looks only at executing jobs.
        "CREATE INDEX jobs_executing ON jobs (attempted_by) WHERE status = 'executing'",
        """
        CREATE TABLE nodes (
            node_id      TEXT    PRIMARY KEY,
            host         TEXT    NOT NULL,
            pid          INTEGER NOT NULL,
            started_at   INTEGER NOT NULL,
            heartbeat_at INTEGER NOT NULL
        )
        """,
    ),
)

#: The schema version this library writes and understands (stored in ``PRAGMA user_version``).
SCHEMA_VERSION: Final[int] = len(_MIGRATIONS)

# RETURNING needs 3.35.
_MIN_SQLITE: Final = (3, 35, 0)

_COLUMNS: Final = (
    "id, status, executor, data, metadata, attempt, max_attempts, priority, tags, errors, "
    "inserted_at, scheduled_at, attempted_at, attempted_by, completed_at, cancelled_at, "
    "discarded_at"
)
# Written out literally (not bound) wherever a partial index should serve a query: SQLite uses a
# partial index only when the query repeats the index's WHERE term.
_READY_SQL: Final = "status IN ('scheduled', 'retryable')"
_FINISHED_SQL: Final = "COALESCE(completed_at, cancelled_at, discarded_at, scheduled_at)"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
#: The range of stored times Python can represent, and the narrower one enqueue accepts.
_MIN_US: Final = (UNREADABLE_EARLY - _EPOCH) // _MICROSECOND
_MAX_US: Final = (UNREADABLE_LATE - _EPOCH) // _MICROSECOND
_EARLIEST_US: Final = (EARLIEST - _EPOCH) // _MICROSECOND
_LATEST_US: Final = (LATEST - _EPOCH) // _MICROSECOND

_INSERT: Final = (
    "INSERT INTO jobs (status, executor, data, metadata, data_eq, metadata_eq, attempt, "
    "max_attempts, priority, tags, errors, uniqueness_key, inserted_at, scheduled_at) "
    "VALUES ('scheduled', ?, ?, ?, ?, ?, 0, ?, ?, ?, '[]', ?, ?, ?)"
)
_CLAIM: Final = (
    "UPDATE jobs SET status = 'executing', attempt = attempt + 1, attempted_at = ?, "
    "attempted_by = ? WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_ready "
    # Rows scheduled beyond what enqueue accepts cannot have been written by it: they are claimed
    # so that they are set aside (see _set_aside) instead of lying in wait.
    f"WHERE executor = ? AND {_READY_SQL} AND (scheduled_at <= ? OR scheduled_at > {_LATEST_US}) "
    f"ORDER BY priority, scheduled_at, id LIMIT ?) RETURNING {_COLUMNS}"
)
_HELD: Final = "id = ? AND status = 'executing' AND attempted_by = ? AND attempt = ?"
_COMPLETE: Final = f"UPDATE jobs SET status = 'complete', completed_at = ? WHERE {_HELD}"
_APPEND_ERROR: Final = "errors = json_insert(errors, '$[#]', json(?))"

_STATUS: Final = {s.value: s for s in JobStatus}

# Primary SQLite result codes (the low byte of an extended code).
_SQLITE_PERM: Final = 3
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6
_SQLITE_READONLY: Final = 8
_SQLITE_IOERR: Final = 10
_SQLITE_CORRUPT: Final = 11
_SQLITE_FULL: Final = 13
_SQLITE_CANTOPEN: Final = 14
_SQLITE_NOTADB: Final = 26


#: rexecutor._json.canonical (sorted keys, compact, not ASCII-escaped), with one encoder for
#: every value instead of one per call: it encodes the data and metadata of every job stored.
_canonical: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False
).encode


def _to_us(moment: datetime) -> int:
    """Integer microseconds since the epoch; exact for every aware datetime."""
    return (moment - _EPOCH) // _MICROSECOND


def _from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _opt_from_us(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def _clamped_from_us(value: int | None) -> datetime | None:
    """A stored time as a datetime, clamped to what Python can represent (for summaries)."""
    if value is None:
        return None
    return _from_us(min(max(int(value), _MIN_US), _MAX_US))


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
        status=_STATUS[row[1]],
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
        inserted_at=_from_us(row[10]),
        scheduled_at=_from_us(row[11]),
        attempted_at=_opt_from_us(row[12]),
        attempted_by=row[13],
        completed_at=_opt_from_us(row[14]),
        cancelled_at=_opt_from_us(row[15]),
        discarded_at=_opt_from_us(row[16]),
    )


def _read_job(row: tuple[Any, ...]) -> Job[Any, Any]:
    """Decode a row for a reader; a row that rexecutor could not have written still reads."""
    try:
        return _job_from_row(row)
    except _DECODE_ERRORS:
        return _read_defensively(row)[0]


class _InvalidUtf8(str):
    """Stored text that is not UTF-8, read with its bad bytes replaced (U+FFFD)."""

    __slots__ = ()


def _lenient_text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return _InvalidUtf8(raw.decode(errors="replace"))


def _is_undecodable(exc: sqlite3.Error) -> bool:
    # What sqlite3 raises when a TEXT value (written by another tool) is not UTF-8.
    return isinstance(exc, sqlite3.OperationalError) and "decode to UTF-8" in str(exc)


def _leniently(conn: sqlite3.Connection, run: Callable[[], T]) -> T:
    """``run()`` with text read by ``_lenient_text``: the default, C-speed text reading stays
    on every other call."""
    conn.text_factory = _lenient_text
    try:
        return run()
    finally:
        conn.text_factory = str


_COLUMN_NAMES: Final = tuple(_COLUMNS.split(", "))


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


def _read_claimed(row: tuple[Any, ...], lenient: bool) -> tuple[Job[Any, Any], RowReader | None]:
    """Decode a claimed row, with what makes it unfit to run (None: nothing).

    ``lenient``: text was read by ``_lenient_text`` (some row holds text that is not UTF-8).
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
            clamped = min(max(raw, _EARLIEST_US), _LATEST_US)
            reader.note(
                column, raw, f"({moment.isoformat()}) is outside what enqueue accepts", clamped
            )
    return job, reader


def _read_defensively(row: tuple[Any, ...]) -> tuple[Job[Any, Any], RowReader]:
    """Decode each column of a row on its own, noting (and standing in for) what is unreadable."""
    reader = RowReader()

    def moment(column: str, raw: Any) -> datetime | None:
        if raw is None and column not in ("inserted_at", "scheduled_at"):
            return None
        if isinstance(raw, int) and not isinstance(raw, bool):
            if raw > _MAX_US:
                reader.note(column, raw, "is after the latest time Python can hold", _LATEST_US)
                return UNREADABLE_LATE
            if raw < _MIN_US:
                reader.note(
                    column, raw, "is before the earliest time Python can hold", _EARLIEST_US
                )
                return UNREADABLE_EARLY
            if column in ("inserted_at", "scheduled_at") and not (
                _EARLIEST_US <= raw <= _LATEST_US
            ):
                reader.note(
                    column,
                    raw,
                    "is outside what enqueue accepts",
                    min(max(raw, _EARLIEST_US), _LATEST_US),
                )
            return _from_us(raw)
        reader.note(column, raw, "is not a time (integer microseconds since 1970)", _LATEST_US)
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
    )
    return job, reader


def _set_aside(conn: sqlite3.Connection, job: Job[Any, Any], reader: RowReader) -> None:
    """Discard a claimed job whose row cannot be read, writing readable stand-ins."""
    now = _clock.now()
    failure = poison_failure(reader.problems)
    entries = [e.to_json() for e in job.errors]
    entries.append(error_entry(job, failure, now).to_json())
    columns: dict[str, Any] = {
        "status": JobStatus.DISCARDED.value,
        "discarded_at": _to_us(now),
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


def _error_json(attempt: int, error: FailureRecord, now: datetime) -> str:
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


def _equality_text(value: Any) -> str:
    """The text an equality query compares with ``COALESCE(data_eq, data)``."""
    return _canonical(_normalise(value))


def _equality_text_if_needed(value: Any) -> str | None:
    """The equality text of a JSON value when it differs from its stored text."""
    return _equality_text(value) if _has_integral_float(value) else None


def _code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", -1)) & 0xFF


def _is_busy(exc: sqlite3.Error) -> bool:
    if _code(exc) in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return True
    text = str(exc)
    return "database is locked" in text or "database table is locked" in text


_BUSY_FIRST_SLEEP: Final = 0.0005
_BUSY_MAX_SLEEP: Final = 0.005


class _Busy:
    """How long a busy operation has waited, and until when it may."""

    __slots__ = ("deadline", "limit", "retries")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.deadline = time.monotonic() + limit
        self.retries = 0


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


# -- queries ------------------------------------------------------------------------------------


def _compile(node: QueryNode, params: list[Any]) -> str:
    """Translate a query tree into a parenthesised SQL condition, appending bound values."""
    match node:
        case And(children):
            if not children:
                return "1"
            return "(" + " AND ".join(_compile(c, params) for c in children) + ")"
        case Or(children):
            if not children:
                return "0"
            return "(" + " OR ".join(_compile(c, params) for c in children) + ")"
        case Not(child):
            return f"(NOT {_compile(child, params)})"
        case ExecutorEquals(executor):
            params.append(executor)
            return "(executor = ?)"
        case DataEquals(value):
            params.append(_equality_text(value))
            return "(COALESCE(data_eq, data) = ?)"
        case MetadataEquals(value):
            params.append(_equality_text(value))
            return "(COALESCE(metadata_eq, metadata) = ?)"
        case IdIn(ids):
            if not ids:
                return "0"
            # One JSON parameter however many ids: no limit on bound variables.
            params.append(json.dumps([int(i) for i in ids if storable_id(int(i))]))
            return "(id IN (SELECT value FROM json_each(?)))"
        case StatusIn(statuses):
            if not statuses:
                return "0"
            params.extend(JobStatus(s).value for s in statuses)
            return f"(status IN ({_placeholders(len(statuses))}))"
        case TagsAllOf(tags):
            if not tags:
                return "1"
            # One JSON parameter however many tags: no limit on bound variables or on the depth
            # of the expression tree.
            # The wanted list is the uncorrelated side, so SQLite builds its lookup once.
            wanted = sorted(set(tags))
            params.append(json.dumps(wanted, ensure_ascii=False))
            params.append(len(wanted))
            return (
                "((SELECT COUNT(DISTINCT t.value) FROM json_each(jobs.tags) AS t "
                "WHERE t.value IN (SELECT value FROM json_each(?))) = ?)"
            )
        case TagsOneOf(tags):
            if not tags:
                return "0"
            params.append(json.dumps(list(tags), ensure_ascii=False))
            return (
                "(EXISTS (SELECT 1 FROM json_each(jobs.tags) AS t "
                "WHERE t.value IN (SELECT value FROM json_each(?))))"
            )
        case ScheduledAt(op, moment):
            params.append(_to_us(moment))
            # Like the reference evaluation: anything but "<" and ">" means equality.
            sql_op = op if op in ("<", ">") else "="
            return f"(scheduled_at {sql_op} ?)"
    raise TypeError(f"unknown query node {node!r}")


# -- the database thread ------------------------------------------------------------------------

# An asyncio future with its loop, or a concurrent future (loop None) for a blocking caller.
_Call = tuple[
    Callable[[], Any],
    "asyncio.Future[Any] | concurrent.futures.Future[Any]",
    asyncio.AbstractEventLoop | None,
]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled; the work has happened regardless
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class _DbThread:
    """A thread that runs closures one at a time and hands the results back to their callers."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``fn``; the returned future (of the running loop) resolves with its outcome."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, future, loop))
        return future

    def call_blocking(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Queue ``fn`` for a caller that is a plain thread, not a coroutine."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((fn, future, None))
        return future

    def stop(self) -> None:
        """Let the thread finish the calls already queued, then exit."""
        self._queue.put(None)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, future, loop = item
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn()
            except BaseException as exc:  # handed to the caller, never lost
                error = exc
            if loop is None:
                assert isinstance(future, concurrent.futures.Future)
                if error is None:
                    future.set_result(result)
                else:
                    future.set_exception(error)
            else:
                assert isinstance(future, asyncio.Future)
                try:
                    loop.call_soon_threadsafe(_settle, future, result, error)
                except RuntimeError:  # the caller's loop has closed: nobody is waiting
                    pass
            del fn, future, loop, item, result, error


class _WatchedHub(WakeHub):
    """A wake hub that lets the data_version watcher sleep while nobody is subscribed."""

    def __init__(self) -> None:
        super().__init__()
        self.activity = threading.Condition()
        self._live: set[Subscription] = set()

    def subscribe(self, executors: Collection[str] | None = None) -> Subscription:
        sub = super().subscribe(executors)
        with self.activity:
            self._live.add(sub)
            self.activity.notify_all()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        super().unsubscribe(sub)
        with self.activity:
            self._live.discard(sub)

    @property
    def active(self) -> bool:
        return bool(self._live)


def _open_watch_connection(path: str, timeout: float) -> tuple[sqlite3.Connection, int]:
    """The watcher's connection and its current ``data_version``."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        return conn, int(conn.execute("PRAGMA data_version").fetchone()[0])
    except BaseException:
        conn.close()
        raise


class _Watcher:
    """Notices commits by other connections (other processes) through ``PRAGMA data_version``.

    Every ``interval`` seconds while anyone is subscribed, the watcher reads ``data_version`` on
    its own connection: a cheap read that touches neither the database thread nor the write
    lock, so an idle system makes no claim queries. That value also changes when this backend
    commits (its main connection is "another connection" to the watcher), and the backend's own
    writes already wake whom they concern; so on a change the watcher asks ``foreign`` (which
    reads ``data_version`` on the main connection, where the backend's own commits do not count)
    whether someone else committed, and only then wakes every subscriber.

    The baseline ``version`` is read during ``connect()`` and kept while nobody is subscribed, so
    a commit that lands after ``connect()`` returned is never absorbed into a baseline unseen,
    however soon it follows a ``subscribe()``.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        version: int,
        *,
        path: str,
        interval: float,
        timeout: float,
        hub: _WatchedHub,
        foreign: Callable[[], concurrent.futures.Future[bool]],
        wake: Callable[[], None],
    ) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._last = version
        self._path = path
        self._interval = interval
        self._timeout = timeout
        self._hub = hub
        self._foreign = foreign
        self._wake = wake
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"rexecutor-sqlite-watch:{path}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._hub.activity:
            self._hub.activity.notify_all()
        self._thread.join(max(5.0, self._interval * 4))

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                with self._hub.activity:
                    while not self._hub.active and not self._stopping.is_set():
                        self._hub.activity.wait()
                if self._stopping.is_set():
                    return
                self._poll()
                self._stopping.wait(self._interval)
        finally:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()

    def _poll(self) -> None:
        try:
            if self._conn is None:
                # After a failure: what happened meanwhile is unknown, so wake once more.
                self._conn, self._last = _open_watch_connection(self._path, self._timeout)
                self._wake()
                return
            version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            # Could not look: wake everyone so runners poll for themselves; start over.
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
            self._conn = None
            self._wake()
            return
        if version != self._last and self._ask_foreign():
            self._wake()
        self._last = version

    def _ask_foreign(self) -> bool:
        future = self._foreign()
        while True:
            try:
                return future.result(timeout=self._interval)
            except concurrent.futures.TimeoutError:
                if self._stopping.is_set():  # closing: the database thread may never answer
                    return False
            except Exception:
                return True  # cannot tell: a spurious wake-up is harmless, a missed one is not


# -- the backend --------------------------------------------------------------------------------


class SqliteBackend(Backend):
    """Jobs in one SQLite file: durable, and safe for several processes on one machine.

    Args:
        path: the database file; created (mode 0600) with its schema if missing. Its directory
            must exist and be writable, because SQLite keeps ``-wal`` and ``-shm`` files beside it.
        poll_interval: seconds between checks for commits by other processes while a runner is
            subscribed; runners also use it as their fallback wait.
        busy_timeout: how long an operation waits for another process's write lock before it
            fails with :class:`~rexecutor.errors.BackendError`.
        migrate: create or upgrade the schema on ``connect()``; with ``False`` a file whose
            schema is not current is refused instead.

    Example:
        >>> backend = SqliteBackend("jobs.db")
        >>> async with backend:                      # doctest: +SKIP
        ...     await backend.enqueue(EnqueuableJob("mailer", {"to": "a@example.com"}))
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        poll_interval: float = 0.05,
        busy_timeout: timedelta = timedelta(seconds=30),
        migrate: bool = True,
    ) -> None:
        super().__init__()
        if poll_interval <= 0:
            raise ConfigurationError(f"poll_interval must be positive, got {poll_interval}")
        if busy_timeout < timedelta(0):
            raise ConfigurationError(f"busy_timeout must not be negative, got {busy_timeout}")
        self._hub: _WatchedHub = _WatchedHub()
        self.poll_interval = float(poll_interval)
        self.busy_timeout = busy_timeout
        self._path = os.fspath(path)
        self._migrate = migrate
        self._db: _DbThread | None = None
        self._watcher: _Watcher | None = None
        # Touched only on the database thread:
        self._conn: sqlite3.Connection | None = None
        self._seen_version = 0  # main connection's data_version when last looked at
        self._watch_baseline: tuple[sqlite3.Connection, int] | None = None

    @property
    def path(self) -> str:
        """The database file, as given."""
        return self._path

    def __repr__(self) -> str:
        return f"SqliteBackend({self._path!r})"

    # -- lifecycle -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the file, create or migrate its schema, and start the watcher; idempotent."""
        if self._db is not None:
            return
        db = _DbThread(f"rexecutor-sqlite:{self._path}")
        # Set before awaiting so a concurrent connect() returns at once; its calls queue behind
        # the open on the same thread.
        self._db = db
        try:
            await db.call(self._open)
        except BaseException:
            # Also when cancelled: the open may still finish on the thread, so undo it there.
            self._db = None
            db.call_blocking(self._close_connection)
            db.stop()
            raise
        assert self._watch_baseline is not None  # set by _open
        watch_conn, watch_version = self._watch_baseline
        self._watch_baseline = None
        self._watcher = _Watcher(
            watch_conn,
            watch_version,
            path=self._path,
            interval=self.poll_interval,
            timeout=self._watch_timeout,
            hub=self._hub,
            foreign=lambda: db.call_blocking(self._foreign_commits),
            wake=self._foreign_commit,
        )

    async def close(self) -> None:
        """Stop the watcher, close the connection and end the database thread."""
        db, self._db = self._db, None
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            await asyncio.to_thread(watcher.stop)
        if db is not None:
            try:
                await db.call(self._close_connection)
            finally:
                db.stop()

    def _open(self) -> None:
        """Open and prepare the connection (on the database thread)."""
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise BackendError(
                f"SQLite {sqlite3.sqlite_version} is too old for SqliteBackend (it needs "
                f"{'.'.join(map(str, _MIN_SQLITE))} or newer); use a Python built with a newer "
                "SQLite"
            )
        self._check_path()
        try:
            conn = sqlite3.connect(
                self._path,
                # No SQLite busy handler: _wait_busy retries instead (see there for why).
                timeout=0,
                isolation_level=None,  # autocommit: transactions are explicit BEGIN IMMEDIATE
                check_same_thread=False,
                cached_statements=256,
            )
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        try:
            # Read the version before anything that could write: a file from a newer library
            # must be left exactly as it is.
            version = int(self._read(conn, _pragma, "user_version"))
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{self._path} has rexecutor schema version {version}, but this version of "
                    f"rexecutor knows only up to {SCHEMA_VERSION}: upgrade rexecutor, or use "
                    "another file. The file was not modified."
                )
            if version < SCHEMA_VERSION and not self._migrate:
                raise SchemaVersionError(
                    f"{self._path} has rexecutor schema version {version}, but this version "
                    f"needs {SCHEMA_VERSION}: connect once with migrate=True to upgrade it"
                )
            mode = str(self._read(conn, _pragma, "journal_mode=WAL"))
            if mode.lower() != "wal":
                raise BackendError(
                    f"cannot switch {self._path} to WAL mode (SQLite answered {mode!r}); "
                    "SqliteBackend needs a file on a local filesystem"
                )
            conn.execute("PRAGMA synchronous=FULL")
            if version < SCHEMA_VERSION:
                self._transaction(conn, self._apply_migrations)
            # Both baselines before connect() returns, the watcher's first: a commit between the
            # two reads predates connect() and is found by the first claim, not by a wake-up.
            watch = self._read(
                conn, lambda _: _open_watch_connection(self._path, self._watch_timeout)
            )
            try:
                self._seen_version = int(self._read(conn, _pragma, "data_version"))
            except BaseException:
                watch[0].close()
                raise
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._watch_baseline = watch

    @property
    def _watch_timeout(self) -> float:
        # data_version takes no lock; a short busy wait only covers a WAL recovery in progress.
        return min(self.busy_timeout.total_seconds(), 1.0)

    def _foreign_commits(self) -> bool:
        """Whether another connection committed since the last look (on the database thread).

        The main connection's ``data_version`` changes only for other connections' commits.
        """
        conn = self._conn
        if conn is None:
            return False
        version = int(self._read(conn, _pragma, "data_version"))
        changed = version != self._seen_version
        self._seen_version = version
        return changed

    def _check_path(self) -> None:
        """Turn the common set-up mistakes into messages that say what to do."""
        path = os.path.abspath(self._path)
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            raise BackendError(
                f"cannot open SQLite database {self._path}: directory {directory} does not "
                "exist. Create it first, or choose a path in an existing directory."
            )
        if os.path.isdir(path):
            raise BackendError(
                f"cannot open SQLite database {self._path}: it is a directory. "
                "Pass the path of a file (for example jobs.db inside it)."
            )
        if not os.access(directory, os.W_OK | os.X_OK):
            raise BackendError(
                f"cannot use SQLite database {self._path}: directory {directory} is not "
                "writable, and SQLite must create the -wal and -shm files beside the database. "
                "Make the directory writable by this process, or move the database."
            )
        if os.path.exists(path):
            if not os.access(path, os.R_OK | os.W_OK):
                raise BackendError(
                    f"cannot use SQLite database {self._path}: the file is read-only for this "
                    "process. Make it readable and writable (for example chmod 600 as its "
                    "owner), or use another file."
                )
            return
        try:
            # Create it ourselves so that job data is private to the owner (mode 0600).
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:  # another process created it first
            pass
        except OSError as exc:
            raise BackendError(
                f"cannot create SQLite database {self._path}: {exc.strerror}. Check that its "
                "directory is writable by this process."
            ) from exc

    def _apply_migrations(self, conn: sqlite3.Connection) -> None:
        # Re-read inside the write transaction: another process may have migrated meanwhile.
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self._path} has rexecutor schema version {version}, but this version of "
                f"rexecutor knows only up to {SCHEMA_VERSION}: upgrade rexecutor"
            )
        if version == 0:
            taken = [
                str(r[0])
                for r in conn.execute(
                    "SELECT name FROM sqlite_schema WHERE name IN ('jobs', 'nodes')"
                ).fetchall()
            ]
            if taken:
                raise BackendError(
                    f"{self._path} already holds tables that rexecutor did not create "
                    f"({', '.join(taken)}), so it is not a rexecutor database: point "
                    "SqliteBackend at a file of its own"
                )
        for statements in _MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        # PRAGMA takes no bound parameters; SCHEMA_VERSION is our own integer.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        watch, self._watch_baseline = self._watch_baseline, None
        if watch is not None:
            watch[0].close()

    # -- running SQL -----------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` on the database thread, inside a write transaction."""
        db = self._db
        if db is None:
            raise self._not_connected()
        return await db.call(lambda: self._transaction(self._connection(), fn, *args))

    async def _call_read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` on the database thread, outside any transaction."""
        db = self._db
        if db is None:
            raise self._not_connected()
        return await db.call(lambda: self._read(self._connection(), fn, *args))

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise self._not_connected()
        return self._conn

    def _not_connected(self) -> BackendError:
        return BackendError(
            f"SqliteBackend({self._path!r}) is not connected: call `await backend.connect()` "
            "or use `async with backend:` first"
        )

    def _transaction(self, conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` in one BEGIN IMMEDIATE transaction, retried while the file is busy.

        BEGIN IMMEDIATE takes the write lock up front, so two processes never both read and then
        both try to write (the case SQLite cannot resolve by waiting). Every attempt is rolled
        back on failure, so retrying is safe.
        """
        busy: _Busy | None = None
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn, *args)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
                return result
            except sqlite3.Error as exc:
                if _is_undecodable(exc) and conn.text_factory is not _lenient_text:
                    # Rolled back: run it again, reading text that is not UTF-8 leniently.
                    return _leniently(conn, lambda: self._transaction(conn, fn, *args))
                if not _is_busy(exc):
                    raise self._translate(exc) from exc
                busy = busy or _Busy(self.busy_timeout.total_seconds())
                self._wait_busy(busy, exc)

    def _read(self, conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` as autocommit reads, retried while the file is busy.

        WAL readers are not blocked by writers; they can still see SQLITE_BUSY briefly while
        another connection recovers or restarts the WAL.
        """
        busy: _Busy | None = None
        while True:
            try:
                return fn(conn, *args)
            except sqlite3.Error as exc:
                if _is_undecodable(exc) and conn.text_factory is not _lenient_text:
                    return _leniently(conn, lambda: self._read(conn, fn, *args))
                if not _is_busy(exc):
                    raise self._translate(exc) from exc
                busy = busy or _Busy(self.busy_timeout.total_seconds())
                self._wait_busy(busy, exc)

    def _wait_busy(self, busy: _Busy, exc: sqlite3.Error) -> None:
        """Sleep briefly before retrying a busy operation, or give up at the busy timeout.

        SQLite's built-in busy handler backs off to sleeps of 25-100 ms, and a process that
        writes in a tight loop then holds the lock at nearly every retry: measured with two
        processes claiming from one file, one of them sometimes got no job at all. Retrying
        every few milliseconds, with jitter so that competitors do not retry in lock-step,
        shares the lock far more evenly and bounds the wait by ``busy_timeout`` exactly.
        """
        remaining = busy.deadline - time.monotonic()
        if remaining <= 0:
            raise BackendError(
                f"SQLite database {self._path} stayed locked for longer than busy_timeout "
                f"({busy.limit:g} s): another connection or process held the write lock that "
                "long. Find and stop the long transaction, or pass a larger busy_timeout."
            ) from exc
        delay = min(_BUSY_MAX_SLEEP, _BUSY_FIRST_SLEEP * 2**busy.retries)
        busy.retries += 1
        time.sleep(min(remaining, delay * random.uniform(0.5, 1.5)))

    def _translate(self, exc: sqlite3.Error) -> BackendError:
        code = _code(exc)
        path = self._path
        if code == _SQLITE_NOTADB:
            message = (
                f"{path} is not a SQLite database (SQLite says: {exc}). Point SqliteBackend at "
                "a new file or at a rexecutor database."
            )
        elif code == _SQLITE_READONLY:
            message = (
                f"cannot write SQLite database {path}: {exc}. Make the file and its directory "
                "writable by this process (SQLite also writes the -wal and -shm files beside it)."
            )
        elif code in (_SQLITE_CANTOPEN, _SQLITE_PERM):
            message = (
                f"cannot open SQLite database {path}: {exc}. Check that its directory exists "
                "and that this process may read and write the file and the directory."
            )
        elif code == _SQLITE_CORRUPT:
            message = (
                f"SQLite database {path} is corrupt: {exc}. Restore it from a backup, or "
                "start over with a new file."
            )
        elif code == _SQLITE_FULL:
            message = f"cannot write SQLite database {path}: the disk is full ({exc})."
        elif code == _SQLITE_IOERR:
            message = f"I/O error on SQLite database {path}: {exc}."
        else:
            message = f"SQLite database {path} failed: {exc}"
        error = BackendError(message)
        error.__cause__ = exc
        return error

    # -- enqueue ---------------------------------------------------------------------------

    async def enqueue(self, job: EnqueuableJob, *, connection: Any = None) -> EnqueueResult:
        refuse_connection(self, connection)
        prepared = _Prepared(job, validate_enqueuable(job, self.max_payload_bytes))
        results, wake = await self._call(self._enqueue_tx, [prepared])
        self._wake_all(wake)
        return results[0]

    async def enqueue_many(
        self, jobs: Sequence[EnqueuableJob], *, connection: Any = None
    ) -> list[EnqueueResult]:
        refuse_connection(self, connection)
        limit = self.max_payload_bytes
        prepared = [_Prepared(job, validate_enqueuable(job, limit)) for job in jobs]
        if not prepared:
            return []
        results, wake = await self._call(self._enqueue_tx, prepared)
        self._wake_all(wake)
        return results

    def _enqueue_tx(
        self, conn: sqlite3.Connection, jobs: list[_Prepared]
    ) -> tuple[list[EnqueueResult], set[str]]:
        now = _clock.now()
        now_us = _to_us(now)
        results: list[EnqueueResult] = []
        wake: set[str] = set()
        for job in jobs:
            scheduled_us = now_us if job.scheduled_us is None else job.scheduled_us
            if job.source.uniqueness is not None:
                found = self._resolve_duplicate(conn, job, scheduled_us)
                if found is not None:
                    job_id, woken = found
                    if woken is not None:
                        wake.add(woken)
                    results.append(EnqueueResult(JobId(job_id), duplicate=True))
                    continue
            cursor = conn.execute(
                _INSERT,
                (
                    job.source.executor,
                    job.data,
                    job.metadata,
                    job.data_eq,
                    job.metadata_eq,
                    job.source.max_attempts,
                    job.source.priority,
                    job.tags,
                    job.key,
                    now_us,
                    scheduled_us,
                ),
            )
            assert cursor.lastrowid is not None
            results.append(EnqueueResult(JobId(cursor.lastrowid)))
            wake.add(job.source.executor)
        return results, wake

    def _resolve_duplicate(
        self, conn: sqlite3.Connection, job: _Prepared, scheduled_us: int
    ) -> tuple[int, str | None] | None:
        """The earliest stored job that ``job`` duplicates, after applying ``Replace``.

        Returns its id and the executor to wake (if the replacement left a ready job), or None
        when there is no conflict.
        """
        criteria = job.source.uniqueness
        assert criteria is not None
        where: list[str] = []
        params: list[Any] = []
        if criteria.key is not None:
            where.append("uniqueness_key = ?")
            params.append(criteria.key)
        if criteria.executor:
            where.append("executor = ?")
            params.append(job.source.executor)
        statuses = sorted(s.value for s in criteria.statuses)
        if criteria.statuses <= JobStatus.READY:
            where.append(_READY_SQL)  # lets the planner use the partial index jobs_due
        where.append(f"status IN ({_placeholders(len(statuses))})")
        params.extend(statuses)
        if criteria.window is not None:
            window = criteria.window // _MICROSECOND
            where.append("scheduled_at BETWEEN ? AND ?")
            params.extend((scheduled_us - window, scheduled_us + window))
        row = conn.execute(
            f"SELECT id, status, executor FROM jobs WHERE {' AND '.join(where)} "
            "ORDER BY id LIMIT 1",
            params,
        ).fetchone()
        if row is None:
            return None
        job_id, status, executor = int(row[0]), _STATUS[row[1]], str(row[2])
        replace = criteria.replace
        if replace is None or status not in replace.statuses:
            return job_id, None
        assignments: list[str] = []
        values: list[Any] = []
        for name, columns in (
            ("scheduled_at", {"scheduled_at": scheduled_us}),
            ("data", {"data": job.data, "data_eq": job.data_eq}),
            ("metadata", {"metadata": job.metadata, "metadata_eq": job.metadata_eq}),
            ("priority", {"priority": job.source.priority}),
            ("max_attempts", {"max_attempts": job.source.max_attempts}),
        ):
            if name in replace.fields:
                for column, value in columns.items():
                    assignments.append(f"{column} = ?")
                    values.append(value)
        if assignments:
            conn.execute(
                f"UPDATE jobs SET {', '.join(assignments)} WHERE id = ?", (*values, job_id)
            )
        return job_id, executor if status in JobStatus.READY else None

    def _foreign_commit(self) -> None:
        # Another process committed: new work may be ready, or a job we run was cancelled.
        self.notify()
        self.notify_cancellation()

    def _wake_all(self, executors: Collection[str]) -> None:
        for executor in executors:
            self.notify(executor)

    # -- claiming and transitions ------------------------------------------------------------

    async def claim_ready_jobs(
        self, executor: str, limit: int, node_id: str
    ) -> list[Job[Any, Any]]:
        if limit <= 0:
            return []
        db = self._db
        if db is None:
            raise self._not_connected()
        claim = db.call(
            lambda: self._transaction(self._connection(), self._claim_tx, executor, limit, node_id)
        )
        try:
            # Shielded: a cancelled caller must not lose the result of a claim that commits
            # anyway, or its jobs would stay executing on a live node that never runs them.
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            claim.add_done_callback(lambda done: self._give_back(db, done))
            raise

    def _give_back(self, db: _DbThread, claim: asyncio.Future[list[Job[Any, Any]]]) -> None:
        """Return the jobs of a claim whose caller was cancelled to the queue, attempts undone."""
        if claim.cancelled() or claim.exception() is not None or not claim.result():
            return
        jobs = claim.result()
        held = [(int(j.id), j.attempted_by or "", j.attempt) for j in jobs]
        done = db.call_blocking(lambda: self._transaction(self._connection(), _give_back_tx, held))
        done.add_done_callback(_log_failure)
        self._wake_all({j.executor for j in jobs})

    @staticmethod
    def _claim_tx(
        conn: sqlite3.Connection, executor: str, limit: int, node_id: str
    ) -> list[Job[Any, Any]]:
        now_us = _to_us(_clock.now())
        jobs: list[Job[Any, Any]] = []
        want = limit
        while True:
            rows = conn.execute(_CLAIM, (now_us, node_id, executor, now_us, want)).fetchall()
            unreadable = 0
            lenient = conn.text_factory is _lenient_text
            for row in rows:
                job, reader = _read_claimed(row, lenient)
                if reader is None:
                    jobs.append(job)
                else:
                    _set_aside(conn, job, reader)
                    unreadable += 1
            # Rows set aside must not take the places of the good jobs behind them; each round
            # discards what it could not read, so this ends.
            if unreadable == 0 or len(rows) < want:
                break
            want = unreadable
        # RETURNING yields rows in no promised order; callers get them in claim order.
        jobs.sort(key=lambda j: (j.priority, j.scheduled_at, j.id))
        return jobs

    async def next_scheduled_at(self, executors: Collection[str]) -> datetime | None:
        names = list(executors)
        if not names:
            return None
        value = await self._call_read(self._next_scheduled_at, json.dumps(names))
        return _clamped_from_us(value)

    @staticmethod
    def _next_scheduled_at(conn: sqlite3.Connection, names: str) -> int | None:
        # A correlated MIN per executor, each answered from the top of jobs_due.
        row = conn.execute(
            "SELECT MIN(m) FROM (SELECT (SELECT MIN(scheduled_at) FROM jobs "
            f"WHERE executor = e.value AND {_READY_SQL}) AS m FROM json_each(?) AS e)",
            (names,),
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    async def mark_job_complete(self, job_id: int, lease: Lease) -> bool:
        return await self._call(self._complete_tx, _job_key(job_id), lease)

    @staticmethod
    def _complete_tx(conn: sqlite3.Connection, job_id: int, lease: Lease) -> bool:
        now_us = _to_us(_clock.now())
        cursor = conn.execute(_COMPLETE, (now_us, job_id, lease.node_id, lease.attempt))
        if cursor.rowcount:
            return True
        _require_job(conn, job_id)
        return False

    async def complete_jobs(self, completions: Sequence[tuple[int, Lease]]) -> list[bool]:
        if not completions:
            return []
        pairs = [(_job_key(job_id), lease) for job_id, lease in completions]
        results, missing = await self._call(self._complete_many_tx, pairs)
        if missing is not None:
            raise JobNotFound(missing)
        return results

    @staticmethod
    def _complete_many_tx(
        conn: sqlite3.Connection, pairs: list[tuple[int, Lease]]
    ) -> tuple[list[bool], int | None]:
        # Like completing one by one: the completions before an unknown id are kept (committed)
        # and then JobNotFound is raised for it.
        now_us = _to_us(_clock.now())
        if len(pairs) > 1:
            # The common case, every completion applying, in one executemany; anything else
            # (a stale lease, a repeat, an unknown id) is undone and done one by one below.
            conn.execute("SAVEPOINT complete_many")
            cursor = conn.executemany(
                _COMPLETE,
                [(now_us, job_id, lease.node_id, lease.attempt) for job_id, lease in pairs],
            )
            if cursor.rowcount == len(pairs):
                conn.execute("RELEASE complete_many")
                return [True] * len(pairs), None
            conn.execute("ROLLBACK TO complete_many")
            conn.execute("RELEASE complete_many")
        results: list[bool] = []
        for job_id, lease in pairs:
            cursor = conn.execute(_COMPLETE, (now_us, job_id, lease.node_id, lease.attempt))
            if cursor.rowcount:
                results.append(True)
            elif _job_exists(conn, job_id):
                results.append(False)
            else:
                return results, job_id
        return results, None

    async def mark_job_retryable(
        self, job_id: int, lease: Lease, delay: timedelta, error: FailureRecord
    ) -> bool:
        executor = await self._call(self._retryable_tx, _job_key(job_id), lease, delay, error)
        if executor is None:
            return False
        self.notify(executor)
        return True

    @staticmethod
    def _retryable_tx(
        conn: sqlite3.Connection, job_id: int, lease: Lease, delay: timedelta, error: FailureRecord
    ) -> str | None:
        now = _clock.now()
        row = conn.execute(
            f"UPDATE jobs SET status = 'retryable', scheduled_at = ?, {_APPEND_ERROR} "
            f"WHERE {_HELD} RETURNING executor",
            (
                _to_us(now + storable_delay(delay)),
                _error_json(lease.attempt, error, now),
                job_id,
                lease.node_id,
                lease.attempt,
            ),
        ).fetchone()
        if row is None:
            _require_job(conn, job_id)
            return None
        return str(row[0])

    async def mark_job_discarded(self, job_id: int, lease: Lease, error: FailureRecord) -> bool:
        return await self._call(self._discarded_tx, _job_key(job_id), lease, error)

    @staticmethod
    def _discarded_tx(
        conn: sqlite3.Connection, job_id: int, lease: Lease, error: FailureRecord
    ) -> bool:
        now = _clock.now()
        cursor = conn.execute(
            f"UPDATE jobs SET status = 'discarded', discarded_at = ?, {_APPEND_ERROR} "
            f"WHERE {_HELD}",
            (
                _to_us(now),
                _error_json(lease.attempt, error, now),
                job_id,
                lease.node_id,
                lease.attempt,
            ),
        )
        if cursor.rowcount:
            return True
        _require_job(conn, job_id)
        return False

    async def mark_job_snoozed(
        self, job_id: int, lease: Lease, delay: timedelta, error: FailureRecord | None = None
    ) -> bool:
        executor = await self._call(self._snoozed_tx, _job_key(job_id), lease, delay, error)
        if executor is None:
            return False
        self.notify(executor)
        return True

    @staticmethod
    def _snoozed_tx(
        conn: sqlite3.Connection,
        job_id: int,
        lease: Lease,
        delay: timedelta,
        error: FailureRecord | None,
    ) -> str | None:
        now = _clock.now()
        # Where the fence matches, the stored attempt is lease.attempt, so the new values can be
        # computed here; the error records the attempt being given back.
        attempt = max(lease.attempt - 1, 0)
        status = status_after_giving_back(attempt).value
        due_us = _to_us(now + storable_delay(delay))
        if error is None:
            sql = (
                "UPDATE jobs SET status = ?, attempt = ?, scheduled_at = ? "
                f"WHERE {_HELD} RETURNING executor"
            )
            params: tuple[Any, ...] = (status, attempt, due_us)
        else:
            sql = (
                f"UPDATE jobs SET status = ?, attempt = ?, scheduled_at = ?, {_APPEND_ERROR} "
                f"WHERE {_HELD} RETURNING executor"
            )
            params = (status, attempt, due_us, _error_json(lease.attempt, error, now))
        row = conn.execute(sql, (*params, job_id, lease.node_id, lease.attempt)).fetchone()
        if row is None:
            _require_job(conn, job_id)
            return None
        return str(row[0])

    async def mark_job_cancelled(
        self, job_id: int, lease: Lease | None, error: FailureRecord
    ) -> bool:
        cancelled = await self._call(self._cancelled_tx, _job_key(job_id), lease, error)
        if cancelled and lease is None:
            self.notify_cancellation()
        return cancelled

    @staticmethod
    def _cancelled_tx(
        conn: sqlite3.Connection, job_id: int, lease: Lease | None, error: FailureRecord
    ) -> bool:
        row = conn.execute(
            "SELECT status, attempt, attempted_by FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        status, attempt, holder = _stored_status(row[0]), int(row[1]), row[2]
        if lease is not None and not (
            status is JobStatus.EXECUTING and holder == lease.node_id and attempt == lease.attempt
        ):
            return False
        if status.is_terminal:
            return False
        now = _clock.now()
        conn.execute(
            f"UPDATE jobs SET status = 'cancelled', cancelled_at = ?, {_APPEND_ERROR} WHERE id = ?",
            (_to_us(now), _error_json(attempt, error, now), job_id),
        )
        return True

    async def rerun_job(self, job_id: int) -> None:
        executor = await self._call(self._rerun_tx, _job_key(job_id))
        self.notify(executor)

    @staticmethod
    def _rerun_tx(conn: sqlite3.Connection, job_id: int) -> str:
        row = conn.execute(
            "SELECT status, attempt, max_attempts, executor FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        status, attempt, max_attempts = _stored_status(row[0]), int(row[1]), int(row[2])
        if status is JobStatus.EXECUTING:
            raise InvalidTransition(
                f"job {job_id} is executing and cannot be rerun; cancel it first, or wait "
                "for it to finish"
            )
        now_us = _to_us(_clock.now())
        if status.is_terminal:
            conn.execute(
                "UPDATE jobs SET status = ?, max_attempts = ?, scheduled_at = ?, "
                "completed_at = NULL, cancelled_at = NULL, discarded_at = NULL WHERE id = ?",
                (
                    status_after_giving_back(attempt).value,
                    attempt + 1 if attempt >= max_attempts else max_attempts,
                    now_us,
                    job_id,
                ),
            )
        else:
            conn.execute("UPDATE jobs SET scheduled_at = ? WHERE id = ?", (now_us, job_id))
        return str(row[3])

    async def update_job(self, job: Job[Any, Any]) -> None:
        try:
            encoded, scheduled_at = validate_update(job, self.max_payload_bytes)
        except ValidationError:
            await self.get_job(job.id)  # an unknown id is reported first, as on every backend
            raise
        values = (
            encoded.data,
            _equality_text_if_needed(job.data),
            encoded.metadata,
            _equality_text_if_needed(job.metadata),
            int(job.max_attempts),
            int(job.priority),
            encoded.tags,
            _to_us(scheduled_at),
        )
        woken = await self._call(self._update_tx, _job_key(job.id), values)
        if woken is not None:
            self.notify(woken)

    @staticmethod
    def _update_tx(conn: sqlite3.Connection, job_id: int, values: tuple[Any, ...]) -> str | None:
        row = conn.execute(
            "UPDATE jobs SET data = ?, data_eq = ?, metadata = ?, metadata_eq = ?, "
            "max_attempts = ?, priority = ?, tags = ?, scheduled_at = ? WHERE id = ? "
            "RETURNING status, executor",
            (*values, job_id),
        ).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return str(row[1]) if _stored_status(row[0]) in JobStatus.READY else None

    # -- reading and housekeeping ------------------------------------------------------------

    async def query(
        self,
        where: QueryNode,
        *,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[Job[Any, Any]]:
        params: list[Any] = []
        condition = _compile(where, params)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {_COLUMNS} FROM jobs WHERE {condition} ORDER BY id {order} LIMIT ? OFFSET ?"
        params.extend((-1 if limit is None else limit, offset))
        return await self._call_read(_select_jobs, sql, params)

    async def get_job(self, job_id: int) -> Job[Any, Any]:
        found = await self._call_read(
            _select_jobs, f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", [_job_key(job_id)]
        )
        if not found:
            raise JobNotFound(job_id)
        return found[0]

    async def prune_jobs(self, spec: PruneSpec, batch_size: int = 1000) -> int:
        where = ["status IN ('complete', 'cancelled', 'discarded')", "status = ?"]
        params: list[Any] = [JobStatus(spec.status).value]
        if spec.only is not None:
            if not spec.only:
                return 0
            where.append(f"executor IN ({_placeholders(len(spec.only))})")
            params.extend(sorted(spec.only))
        if spec.exclude:
            where.append(f"executor NOT IN ({_placeholders(len(spec.exclude))})")
            params.extend(sorted(spec.exclude))
        batch = max(int(batch_size), 1)
        if spec.max_length is not None:
            # Skip the newest max_length and take the next batch; repeat until none are left.
            select = (
                f"SELECT id FROM jobs WHERE {' AND '.join(where)} "
                f"ORDER BY {_FINISHED_SQL} DESC, id DESC LIMIT ? OFFSET ?"
            )
            params.extend((batch, spec.max_length))
        else:
            assert spec.max_age is not None
            where.append(f"{_FINISHED_SQL} < ?")
            params.append(_to_us(_clock.now() - spec.max_age))
            select = f"SELECT id FROM jobs WHERE {' AND '.join(where)} LIMIT ?"
            params.append(batch)
        sql = f"DELETE FROM jobs WHERE id IN ({select})"
        total = 0
        while True:
            # One transaction per batch, so other processes get the write lock in between.
            deleted = await self._call(_execute_rowcount, sql, params)
            total += deleted
            if deleted < batch:
                return total

    async def record_heartbeat(self, node: NodeInfo) -> None:
        await self._call(self._heartbeat_tx, node)

    @staticmethod
    def _heartbeat_tx(conn: sqlite3.Connection, node: NodeInfo) -> None:
        now_us = _to_us(_clock.now())
        conn.execute(
            "INSERT INTO nodes (node_id, host, pid, started_at, heartbeat_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (node_id) DO UPDATE SET "
            "host = excluded.host, pid = excluded.pid, heartbeat_at = excluded.heartbeat_at",
            (node.node_id, node.host, int(node.pid), now_us, now_us),
        )

    async def remove_node(self, node_id: str) -> None:
        await self._call(_execute_rowcount, "DELETE FROM nodes WHERE node_id = ?", [node_id])

    async def count_jobs(self) -> dict[tuple[str, JobStatus], int]:
        rows = await self._call_read(
            lambda conn: conn.execute(
                "SELECT executor, status, count(*) FROM jobs GROUP BY executor, status"
            ).fetchall()
        )
        return tally(rows)

    async def finished_per_minute(self, since: timedelta) -> list[tuple[datetime, JobStatus, int]]:
        minute = 60_000_000
        cutoff = _to_us(_clock.now() - since)
        rows = await self._call_read(
            lambda conn: conn.execute(
                f"SELECT (finished / {minute}) * {minute} AS bucket, status, count(*) FROM "
                "(SELECT status, COALESCE(completed_at, cancelled_at, discarded_at) AS finished "
                "FROM jobs WHERE status IN ('complete', 'cancelled', 'discarded')) "
                "WHERE finished >= ? GROUP BY bucket, status ORDER BY bucket, status",
                (cutoff,),
            ).fetchall()
        )
        return [
            (cast(datetime, _clamped_from_us(bucket)), _STATUS[status], int(n))
            for bucket, status, n in rows
        ]

    async def list_nodes(self) -> list[NodeInfo]:
        return await self._call_read(self._list_nodes)

    @staticmethod
    def _list_nodes(conn: sqlite3.Connection) -> list[NodeInfo]:
        # rowid breaks ties in first-heartbeat order, as the reference backend does.
        rows = conn.execute(
            "SELECT node_id, host, pid, started_at, heartbeat_at FROM nodes "
            "ORDER BY heartbeat_at DESC, rowid ASC"
        ).fetchall()
        return [
            NodeInfo(
                node_id=r[0],
                host=r[1],
                pid=int(r[2]),
                started_at=_from_us(r[3]),
                heartbeat_at=_from_us(r[4]),
            )
            for r in rows
        ]

    async def rescue_orphaned_jobs(self, dead_after: timedelta) -> list[JobId]:
        rescued, wake = await self._call(self._rescue_tx, dead_after)
        self._wake_all(wake)
        return rescued

    @staticmethod
    def _rescue_tx(conn: sqlite3.Connection, dead_after: timedelta) -> tuple[list[JobId], set[str]]:
        now = _clock.now()
        now_us = _to_us(now)
        cutoff = _to_us(now - dead_after)
        rows = conn.execute(
            "SELECT id, attempt, max_attempts, attempted_by, executor "
            "FROM jobs INDEXED BY jobs_executing WHERE status = 'executing' AND ("
            " attempted_by IN (SELECT node_id FROM nodes WHERE heartbeat_at < ?)"
            " OR (NOT EXISTS (SELECT 1 FROM nodes AS n WHERE n.node_id = jobs.attempted_by)"
            "     AND COALESCE(attempted_at, ?) < ?)"
            ") ORDER BY id",
            (cutoff, now_us, cutoff),
        ).fetchall()
        rescued: list[JobId] = []
        wake: set[str] = set()
        for job_id, attempt, max_attempts, holder, executor in rows:
            error = FailureRecord(
                ErrorType.ORPHANED,
                f"node {holder} stopped sending heartbeats while running this job",
            )
            entry = _error_json(attempt, error, now)
            if attempt >= max_attempts:
                conn.execute(
                    f"UPDATE jobs SET status = 'discarded', discarded_at = ?, {_APPEND_ERROR} "
                    "WHERE id = ?",
                    (now_us, entry, job_id),
                )
            else:
                conn.execute(
                    f"UPDATE jobs SET status = 'retryable', scheduled_at = ?, {_APPEND_ERROR} "
                    "WHERE id = ?",
                    (now_us, entry, job_id),
                )
                wake.add(executor)
            rescued.append(JobId(job_id))
        conn.execute("DELETE FROM nodes WHERE heartbeat_at < ?", (cutoff,))
        return rescued, wake

    async def lost_jobs(self, node_id: str, leases: dict[int, int]) -> list[int]:
        if not leases:
            return []
        held = await self._call_read(self._held_ids, node_id, json.dumps(list(leases)))
        return [job_id for job_id, attempt in leases.items() if held.get(job_id) != attempt]

    @staticmethod
    def _held_ids(conn: sqlite3.Connection, node_id: str, ids: str) -> dict[int, int]:
        """Of ``ids``, the jobs executing on ``node_id``, with their attempts."""
        rows = conn.execute(
            "SELECT id, attempt FROM jobs WHERE id IN (SELECT value FROM json_each(?)) "
            "AND status = 'executing' AND attempted_by = ?",
            (ids, node_id),
        ).fetchall()
        return {int(r[0]): int(r[1]) for r in rows}


class _Prepared:
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
        self.data, self.data_eq = encoded.data, _equality_text_if_needed(job.data)
        self.metadata = encoded.metadata
        self.metadata_eq = _equality_text_if_needed(job.metadata)
        self.tags = encoded.tags
        self.key = job.uniqueness.key if job.uniqueness is not None else None
        self.scheduled_us = None if encoded.scheduled_at is None else _to_us(encoded.scheduled_at)


def _select_jobs(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Job[Any, Any]]:
    return [_read_job(r) for r in conn.execute(sql, params).fetchall()]


def _execute_rowcount(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    return conn.execute(sql, params).rowcount


def _pragma(conn: sqlite3.Connection, pragma: str) -> Any:
    return conn.execute(f"PRAGMA {pragma}").fetchone()[0]


def _log_failure(done: concurrent.futures.Future[Any]) -> None:
    error = done.exception()
    if error is not None:
        _log.warning(
            "could not hand back jobs claimed for a cancelled caller (rescue will): %s", error
        )


def _give_back_tx(conn: sqlite3.Connection, held: list[tuple[int, str, int]]) -> None:
    for job_id, node_id, attempt in held:
        conn.execute(
            "UPDATE jobs SET attempt = ?, status = ? WHERE id = ? AND status = 'executing' "
            "AND attempted_by = ? AND attempt = ?",
            (
                attempt - 1,
                status_after_giving_back(attempt - 1).value,
                job_id,
                node_id,
                attempt,
            ),
        )


def _job_key(job_id: int) -> int:
    """A job id as SQLite binds it; an id no row can have is not found (not an OverflowError)."""
    key = int(job_id)
    if not storable_id(key):
        raise JobNotFound(key)
    return key


def _stored_status(value: Any) -> JobStatus:
    # An unknown status (a row rexecutor did not write) counts as discarded, as readers show it.
    return _STATUS.get(value, JobStatus.DISCARDED)


def _job_exists(conn: sqlite3.Connection, job_id: int) -> bool:
    return conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is not None


def _require_job(conn: sqlite3.Connection, job_id: int) -> None:
    if not _job_exists(conn, job_id):
        raise JobNotFound(job_id)
