"""Reading job rows and writing values: the column order, JSON text, row decoding.

A job row is decoded positionally (the order of ``_COLUMN_NAMES``, Job's own field order) on
the hot path; a row rexecutor could not have written is decoded column by column instead,
noting what is unreadable, so that reading it never fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format

from rexecutor import _clock
from rexecutor.backend import EnqueuableJob, FailureRecord
from rexecutor.backends._common import (
    UNREADABLE_EARLY,
    UNREADABLE_LATE,
    RowReader,
    schedulable,
    validate_enqueuable,
)
from rexecutor.errors import ValidationError
from rexecutor.job import ErrorType, Job, JobError, JobId, JobProgress, JobStatus

Row = tuple[Any, ...]


_COLUMN_NAMES: Final = (
    "id",
    "status",
    "executor",
    "data",
    "metadata",
    "attempt",
    "max_attempts",
    "priority",
    "tags",
    "errors",
    "inserted_at",
    "scheduled_at",
    "attempted_at",
    "completed_at",
    "cancelled_at",
    "discarded_at",
    "attempted_by",
    "partition_key",
    "result",
    "progress",
    "workflow_id",
    "workflow_step",
    "blocked",
    "has_dependents",
)
_TIME_COLUMNS: Final = (
    "inserted_at",
    "scheduled_at",
    "attempted_at",
    "completed_at",
    "cancelled_at",
    "discarded_at",
)


_TAGS_TEXT: Final = json.JSONEncoder(ensure_ascii=False).encode
#: json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")), without
#: building an encoder for every value (json.dumps does, given any option).
_JSON_ENCODE: Final = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":")
).encode


def _json_text(value: Any, what: str) -> str:
    if value is None:
        return "null"
    try:
        return _JSON_ENCODE(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{what} cannot be stored in PostgreSQL as JSON: {exc}") from exc


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is UTC:
        return moment
    return moment.astimezone(UTC)


def _utc_required(moment: datetime) -> datetime:
    # psycopg already hands out UTC datetimes on a session whose time zone is UTC (ours).
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


_STATUSES: Final = {status.value: status for status in JobStatus}


def _job_from_row(row: Row) -> Job[Any, Any]:
    # Positional, in the order of _COLUMN_NAMES (Job's own field order): a job row is decoded
    # for every claimed job, so this is on the hot path.
    (
        job_id,
        status,
        executor,
        data,
        metadata,
        attempt,
        max_attempts,
        priority,
        tags,
        errors,
        inserted_at,
        scheduled_at,
        attempted_at,
        completed_at,
        cancelled_at,
        discarded_at,
        attempted_by,
        partition_key,
        result,
        progress,
        workflow_id,
        workflow_step,
        blocked,
        has_dependents,
    ) = row
    return Job(
        JobId(job_id),
        _STATUSES[status],
        executor,
        data,
        metadata,
        attempt,
        max_attempts,
        priority,
        list(tags),
        [JobError.from_json(entry) for entry in errors] if errors else [],
        inserted_at if inserted_at.tzinfo is UTC else inserted_at.astimezone(UTC),
        scheduled_at if scheduled_at.tzinfo is UTC else scheduled_at.astimezone(UTC),
        _utc(attempted_at),
        _utc(completed_at),
        _utc(cancelled_at),
        _utc(discarded_at),
        attempted_by,
        partition_key,
        result,
        None if progress is None else JobProgress.from_json(progress),
        workflow_id,
        workflow_step,
        blocked,
        has_dependents,
    )


class _JsonbBinaryLoader(Loader):
    """Binary jsonb to Python values, as psycopg's loader with ``json.loads`` does, faster.

    Three jsonb columns are decoded for every job read: the commonest values (JSON null, an
    empty list) are answered without the parser, and the rest is decoded as text, which
    spares ``json.loads`` guessing the encoding of bytes.
    """

    format = Format.BINARY

    def load(self, data: Buffer) -> Any:
        raw = bytes(data)
        if raw[:1] != b"\x01":
            raise psycopg.DataError(f"unknown jsonb binary format: {raw[:1]!r}")
        if raw == b"\x01null":
            return None
        if raw == b"\x01[]":
            return []
        text = raw[1:].decode()
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            # jsonb nests deeper than Python's parser goes: keep the text, so the job reads.
            return _UnreadableJson(text)


class _UnreadableJson(str):
    """The raw text of a stored JSON value that Python cannot decode."""

    __slots__ = ()


def _read_job(row: Row) -> Job[Any, Any]:
    """Decode a row for a reader; a row that rexecutor could not have written still reads."""
    try:
        return _job_from_row(row)
    except (ValueError, TypeError, KeyError, OverflowError):
        return _read_defensively(row)[0]


def _read_claimed(row: Row) -> tuple[Job[Any, Any], RowReader | None]:
    """Decode a claimed row, with what makes it unfit to run (None: nothing)."""
    try:
        job = _job_from_row(row)
    except (ValueError, TypeError, KeyError, OverflowError):
        return _read_defensively(row)
    if (
        schedulable(job.scheduled_at)
        and schedulable(job.inserted_at)
        and type(job.data) is not _UnreadableJson
        and type(job.metadata) is not _UnreadableJson
    ):
        return job, None
    return _read_defensively(row)


def _read_defensively(row: Row) -> tuple[Job[Any, Any], RowReader]:
    """Decode each column of a row on its own, noting (and standing in for) what is unreadable.

    Times arrive clamped (see ``_select_list``); ``_set_aside`` notes those outside what
    enqueue accepts, quoting the stored text.
    """
    reader = RowReader()
    values = dict(zip(_COLUMN_NAMES, row, strict=True))
    for name in ("data", "metadata"):
        if type(values[name]) is _UnreadableJson:
            reader.note(name, values[name], "is JSON nested too deeply to decode", None)
    errors = values["errors"]
    status = reader.status(values["status"])
    job: Job[Any, Any] = Job(
        JobId(values["id"]),
        status,
        reader.text("executor", values["executor"]),
        values["data"],
        values["metadata"],
        reader.integer("attempt", values["attempt"], 0),
        reader.integer("max_attempts", values["max_attempts"], 1),
        reader.integer("priority", values["priority"], 0),
        [str(tag) for tag in values["tags"] or ()],
        reader.explained(reader.errors(errors, errors)),
        _utc(values["inserted_at"]) or UNREADABLE_EARLY,
        _utc(values["scheduled_at"]) or UNREADABLE_LATE,
        _utc(values["attempted_at"]),
        _utc(values["completed_at"]),
        _utc(values["cancelled_at"]),
        _utc(values["discarded_at"]),
        values["attempted_by"],
        values["partition_key"],
        values["result"],
        None if values["progress"] is None else JobProgress.from_json(values["progress"]),
        values["workflow_id"],
        values["workflow_step"],
        bool(values["blocked"]),
        bool(values["has_dependents"]),
    )
    return job, reader


def _error_params(error: FailureRecord) -> dict[str, Any]:
    return {
        "error_type": ErrorType(error.error_type).value,
        "details": str(error.details),
        "error_name": error.name,
        "traceback": error.traceback,
    }


@dataclass(slots=True)
class _Prepared:
    """An enqueuable job with its values encoded for PostgreSQL."""

    job: EnqueuableJob
    data: str
    metadata: str
    tags: list[str]

    scheduled_at: datetime | None

    @classmethod
    def of(cls, job: EnqueuableJob, limit: int | None) -> _Prepared:
        encoded = validate_enqueuable(job, limit)
        return cls(job, encoded.data, encoded.metadata, list(job.tags), encoded.scheduled_at)

    def params(self) -> dict[str, Any]:
        job = self.job
        return {
            "executor": job.executor,
            "data": self.data,
            "metadata": self.metadata,
            "max_attempts": job.max_attempts,
            "priority": job.priority,
            "tags": self.tags,
            "scheduled_at": self.scheduled_at,
            "partition_key": job.partition_key,
        }


def _db_now() -> datetime | None:
    """The ``now`` parameter of every statement: the test clock's time while one is installed
    (so that ``FakeClock`` drives this backend as it drives the others), else ``None``, which
    the statements read as the database's ``now()``."""
    return _clock.now() if _clock.current_clock() is not None else None
