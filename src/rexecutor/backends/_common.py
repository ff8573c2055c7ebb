"""Logic that every backend shares: uniqueness matching, query evaluation and transitions
computed in Python (the SQL backends mirror these rules in their statements)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rexecutor._payload import EncodedJob, check_job
from rexecutor.backend import EnqueuableJob, FailureRecord
from rexecutor.errors import ValidationError
from rexecutor.job import Job, JobError, JobStatus
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


def validate_enqueuable(job: EnqueuableJob, limit: int | None) -> EncodedJob:
    """Apply the payload rule (:func:`rexecutor._payload.check_job`) to a job to enqueue."""
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
    encoded = check_job(
        executor=job.executor,
        data=job.data,
        metadata=job.metadata,
        tags=job.tags,
        max_attempts=job.max_attempts,
        priority=job.priority,
        scheduled_at=job.scheduled_at,
        limit=limit,
    )
    if encoded.scheduled_at is None:
        raise ValidationError(f"scheduled_at of job {int(job.id)} must be a datetime, got None")
    return encoded, encoded.scheduled_at


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values: like ``==``, except that booleans never equal numbers."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(v, right[k]) for k, v in left.items())
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(map(json_equal, left, right))
    return bool(left == right)


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
    """Overwrite ``existing``'s fields as the criteria's ``Replace`` says; True if it did."""
    criteria = job.uniqueness
    if criteria is None or criteria.replace is None:
        return False
    if existing.status not in criteria.replace.statuses:
        return False
    fields = criteria.replace.fields
    if "scheduled_at" in fields:
        existing.scheduled_at = scheduled_at
    if "data" in fields:
        existing.data = job.data
    if "metadata" in fields:
        existing.metadata = job.metadata
    if "priority" in fields:
        existing.priority = job.priority
    if "max_attempts" in fields:
        existing.max_attempts = job.max_attempts
    return True


def matches(node: QueryNode, job: Job[Any, Any]) -> bool:
    """Evaluate a query tree against one job (the reference semantics)."""
    match node:
        case And(children):
            return all(matches(c, job) for c in children)
        case Or(children):
            return any(matches(c, job) for c in children)
        case Not(child):
            return not matches(child, job)
        case ExecutorEquals(executor):
            return job.executor == executor
        case DataEquals(value):
            return json_equal(job.data, value)
        case MetadataEquals(value):
            return json_equal(job.metadata, value)
        case IdIn(ids):
            return job.id in ids
        case StatusIn(statuses):
            return job.status in statuses
        case TagsAllOf(tags):
            return all(t in job.tags for t in tags)
        case TagsOneOf(tags):
            return any(t in job.tags for t in tags)
        case ScheduledAt(op, moment):
            if op == "<":
                return job.scheduled_at < moment
            if op == ">":
                return job.scheduled_at > moment
            return job.scheduled_at == moment
    raise TypeError(f"unknown query node {node!r}")


def error_entry(job: Job[Any, Any], error: FailureRecord, now: datetime) -> JobError:
    """The stored form of ``error`` for ``job``'s current attempt."""
    return JobError(job.attempt, error.error_type, error.details, now, error.name, error.traceback)


def status_after_giving_back(attempt: int) -> JobStatus:
    """The ready status of a job whose last attempt was given back (snooze, rerun)."""
    return JobStatus.SCHEDULED if attempt == 0 else JobStatus.RETRYABLE
