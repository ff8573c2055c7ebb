"""Logic that every backend shares: the payload checks, uniqueness matching, error entries and
the reading of rows that cannot be read (queries are walked once, in ``backends._query``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from rexecutor._payload import EARLIEST, LATEST, EncodedJob, check_job
from rexecutor.backend import EnqueuableJob, FailureRecord
from rexecutor.errors import ValidationError
from rexecutor.job import ErrorType, Job, JobError, JobStatus
from rexecutor.limits import check_partition_key


def validate_enqueuable(job: EnqueuableJob | Job[Any, Any], limit: int | None) -> EncodedJob:
    """Apply the payload rule (:func:`rexecutor._payload.check_job`) to a job to enqueue (or
    to the edited values of a stored one), and the partition key's rule."""
    if job.partition_key is not None:
        check_partition_key(job.partition_key)
    return check_job(
        executor=job.executor,
        data=job.data,
        metadata=job.metadata,
        tags=job.tags,
        max_attempts=job.max_attempts,
        priority=job.priority,
        scheduled_at=job.scheduled_at,
        limit=limit,
    )


def validate_update(job: Job[Any, Any], limit: int | None) -> tuple[EncodedJob, datetime]:
    """Apply the payload rule to the edited values of ``update_job``, as ``enqueue`` does;
    returns the encoded values and the new ``scheduled_at`` in UTC."""
    encoded = validate_enqueuable(job, limit)
    if encoded.scheduled_at is None:
        raise ValidationError(f"scheduled_at of job {int(job.id)} must be a datetime, got None")
    return encoded, encoded.scheduled_at


_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def storable_id(job_id: int) -> bool:
    """Whether ``job_id`` fits the 64-bit integer every backend stores ids as."""
    return _INT64_MIN <= job_id <= _INT64_MAX


def unique_match(
    job: EnqueuableJob,
    key: int | None,
    candidate: Job[Any, Any],
    ckey: int | None,
    scheduled_at: datetime,
) -> bool:
    """Whether stored ``candidate`` (with uniqueness key ``ckey``) conflicts with ``job``."""
    criteria = job.uniqueness
    assert criteria is not None
    if key is not None and ckey != key:
        return False
    if criteria.executor and candidate.executor != job.executor:
        return False
    if candidate.status not in criteria.statuses:
        return False
    return criteria.window is None or abs(candidate.scheduled_at - scheduled_at) <= criteria.window


def apply_replace(job: EnqueuableJob, existing: Job[Any, Any], scheduled_at: datetime) -> bool:
    """Overwrite ``existing``'s fields as the criteria's replace plan says; True if it did."""
    assert job.uniqueness is not None
    plan = job.uniqueness.replace_plan()
    if plan is None or not plan.applies_to(existing.status):
        return False
    values = {
        "scheduled_at": scheduled_at,
        "data": job.data,
        "metadata": job.metadata,
        "priority": job.priority,
        "max_attempts": job.max_attempts,
    }
    for name in plan.fields:
        setattr(existing, name, values[name])
    return True


def error_entry(job: Job[Any, Any], error: FailureRecord, now: datetime) -> JobError:
    """The stored form of ``error`` for ``job``'s current attempt."""
    return JobError(job.attempt, error.error_type, error.details, now, error.name, error.traceback)


# -- rows that cannot be read -------------------------------------------------------------------

#: What a reader shows for a stored time it cannot represent (too early, too late, not a time).
UNREADABLE_EARLY: Final = datetime.min.replace(tzinfo=UTC)
UNREADABLE_LATE: Final = datetime.max.replace(tzinfo=UTC)
_STATUS_VALUES: Final = frozenset(s.value for s in JobStatus)
#: How much of an unreadable stored value an error quotes.
_RAW_QUOTE: Final = 300


def quote_raw(value: object) -> str:
    """A stored value as an error quotes it: its repr, cut to a few hundred characters."""
    text = repr(value)
    return text if len(text) <= _RAW_QUOTE else text[:_RAW_QUOTE] + "...(cut)"


def schedulable(moment: datetime) -> bool:
    """Whether a stored time is one that enqueue would accept (a row outside is poison)."""
    return EARLIEST <= moment <= LATEST


class RowReader:
    """Reads the columns of one stored job row that the fast decoder failed on.

    Every column is decoded on its own; what cannot be read is replaced by a stand-in
    (times clamped to ``UNREADABLE_EARLY``/``UNREADABLE_LATE``, JSON kept as its raw text) and
    noted in :attr:`problems`, with the stored value the backend should write instead in
    :attr:`repairs` (column → value) when the row is set aside.
    """

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.repairs: dict[str, Any] = {}
        self._explain: JobError | None = None

    def note(self, column: str, raw: object, why: str, repair: Any) -> None:
        """Record that ``column`` held ``raw``, unreadable because ``why``."""
        self.problems.append(f"{column} {why} (stored value: {quote_raw(raw)})")
        self.repairs[column] = repair

    def status(self, raw: object) -> JobStatus:
        """The stored status; an unknown one reads as discarded (nothing runs it)."""
        if isinstance(raw, str) and raw in _STATUS_VALUES:
            return JobStatus(raw)
        self.note("status", raw, "is not a job status", JobStatus.DISCARDED.value)
        self._explain = JobError(0, ErrorType.INVALID_DATA, self.problems[-1], UNREADABLE_EARLY)
        return JobStatus.DISCARDED

    def explained(self, errors: list[JobError]) -> list[JobError]:
        """``errors``, with an entry saying why the job reads as discarded when its stored
        status is unknown (call after :meth:`status`)."""
        return errors if self._explain is None else [*errors, self._explain]

    def integer(self, column: str, raw: object, default: int) -> int:
        """An integer column; anything else reads as ``default``."""
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        self.note(column, raw, "is not an integer", default)
        return default

    def text(self, column: str, raw: object) -> str:
        """A text column; anything else reads as its ``str``."""
        if isinstance(raw, str):
            return raw
        self.note(column, raw, "is not text", str(raw))
        return str(raw)

    def errors(self, entries: object, raw: object) -> list[JobError]:
        """The stored error list; an entry that cannot be read becomes an INVALID_DATA entry."""
        if not isinstance(entries, list):
            self.note("errors", raw, "is not a JSON list of errors", [])
            return [unreadable_error_entry(raw)]
        found: list[JobError] = []
        broken = False
        for entry in entries:
            try:
                if not isinstance(entry, dict):
                    raise TypeError("not an object")
                found.append(JobError.from_json(entry))
            except (KeyError, TypeError, ValueError, OverflowError):
                broken = True
                found.append(unreadable_error_entry(entry))
        if broken:
            self.note("errors", raw, "holds entries that are not errors", found)
        return found


def unreadable_error_entry(raw: object) -> JobError:
    """A stand-in for a stored error entry that cannot be read, quoting it."""
    return JobError(
        0, ErrorType.INVALID_DATA, f"stored error entry unreadable: {quote_raw(raw)}", EARLIEST
    )


def poison_failure(problems: Sequence[str]) -> FailureRecord:
    """The error recorded on a claimed job whose stored row cannot be read."""
    return FailureRecord(
        ErrorType.INVALID_DATA,
        "the stored job could not be read, so it was discarded without running: "
        + "; ".join(problems)
        + ". Unreadable values were reset so that the job can be listed; fix the row and "
        "rerun it, or enqueue the job again",
        name="UnreadableJob",
    )


def tally(rows: Iterable[Sequence[Any]]) -> dict[tuple[str, JobStatus], int]:
    """``count_jobs`` from (executor, stored status, count) rows; an unknown status counts as
    discarded, as the job itself reads."""
    counts: Counter[tuple[str, JobStatus]] = Counter()
    for executor, status, n in rows:
        known = JobStatus(status) if status in _STATUS_VALUES else JobStatus.DISCARDED
        counts[str(executor), known] += int(n)
    return dict(counts)
