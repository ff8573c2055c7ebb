"""Queries over stored jobs: :class:`Where` builds a boolean tree that every backend evaluates
the same way.

Example:
    >>> q = Where.status_equals(JobStatus.SCHEDULED) & ~Where.tagged_by_one_of(["slow"])
    >>> isinstance(q.node, And)
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from rexecutor import _clock
from rexecutor._json import to_json_value
from rexecutor._payload import check_moment, check_text, encode_query_value
from rexecutor.errors import ValidationError
from rexecutor.job import JobStatus

__all__ = [
    "And",
    "DataEquals",
    "ExecutorEquals",
    "IdIn",
    "MetadataEquals",
    "Not",
    "Or",
    "QueryNode",
    "ScheduledAt",
    "StatusIn",
    "TagsAllOf",
    "TagsOneOf",
    "Where",
]

D = TypeVar("D")
M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class And:
    """All children match (an empty ``And`` matches everything)."""

    children: tuple[QueryNode, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one child matches (an empty ``Or`` matches nothing)."""

    children: tuple[QueryNode, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The child does not match."""

    child: QueryNode


@dataclass(frozen=True, slots=True)
class ExecutorEquals:
    """The job belongs to the named executor."""

    executor: str


@dataclass(frozen=True, slots=True)
class DataEquals:
    """The job's data equals this JSON value."""

    value: Any


@dataclass(frozen=True, slots=True)
class MetadataEquals:
    """The job's metadata equals this JSON value."""

    value: Any


@dataclass(frozen=True, slots=True)
class IdIn:
    """The job's id is one of these (an empty tuple matches nothing)."""

    ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StatusIn:
    """The job's status is one of these."""

    statuses: tuple[JobStatus, ...]


@dataclass(frozen=True, slots=True)
class TagsAllOf:
    """The job has every one of these tags (an empty tuple matches everything)."""

    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TagsOneOf:
    """The job has at least one of these tags (an empty tuple matches nothing)."""

    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ScheduledAt:
    """``scheduled_at`` compared with ``moment``: op is ``"<"``, ``">"`` or ``"="``."""

    op: str
    moment: datetime


QueryNode = (
    And
    | Or
    | Not
    | ExecutorEquals
    | DataEquals
    | MetadataEquals
    | IdIn
    | StatusIn
    | TagsAllOf
    | TagsOneOf
    | ScheduledAt
)


def _json_value(value: object, what: str) -> Any:
    encoded = to_json_value(value, what)
    encode_query_value(encoded, what)
    return encoded


def _ago(age: timedelta) -> datetime:
    try:
        moment = _clock.now() - age
    except OverflowError:
        raise ValidationError(
            f"an age of {age} reaches outside the datetimes Python can represent; use a shorter one"
        ) from None
    return check_moment(moment, "query datetime")


def _status(status: str) -> JobStatus:
    try:
        return JobStatus(status)
    except ValueError:
        raise ValidationError(
            f"{status!r} is not a job status; use one of {', '.join(JobStatus.ALL)}"
        ) from None


def _ids(values: Iterable[object]) -> tuple[int, ...]:
    ids: list[int] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValidationError(f"a job id must be an integer, got {value!r}")
        try:
            ids.append(int(value))
        except ValueError:
            raise ValidationError(f"a job id must be an integer, got {value!r}") from None
    return tuple(ids)


def _texts(values: Iterable[str], what: str) -> tuple[str, ...]:
    return tuple(check_text(v, f"{what}[{i}]") for i, v in enumerate(values))


@dataclass(frozen=True, slots=True)
class Where(Generic[D, M]):
    """A typed query over an executor's jobs; combine with ``&``, ``|`` and ``~``.

    Values are stored already encoded as JSON, and backends always bind them as parameters.
    """

    node: QueryNode

    @staticmethod
    def status_equals(status: JobStatus) -> Where[Any, Any]:
        """Jobs with this status."""
        return Where(StatusIn((_status(status),)))

    @staticmethod
    def data_equals(data: object) -> Where[Any, Any]:
        """Jobs whose data equals ``data`` (compared as JSON)."""
        return Where(DataEquals(_json_value(data, "query data")))

    @staticmethod
    def metadata_equals(metadata: object) -> Where[Any, Any]:
        """Jobs whose metadata equals ``metadata`` (compared as JSON)."""
        return Where(MetadataEquals(_json_value(metadata, "query metadata")))

    @staticmethod
    def id_equals(job_id: int) -> Where[Any, Any]:
        """The job with this id."""
        return Where(IdIn(_ids((job_id,))))

    @staticmethod
    def id_in(job_ids: Iterable[int]) -> Where[Any, Any]:
        """Jobs whose id is in ``job_ids``; an empty list matches nothing."""
        return Where(IdIn(_ids(job_ids)))

    @staticmethod
    def tagged_by_all_of(tags: Iterable[str]) -> Where[Any, Any]:
        """Jobs carrying every one of ``tags``."""
        return Where(TagsAllOf(_texts(tags, "query tag")))

    @staticmethod
    def tagged_by_one_of(tags: Iterable[str]) -> Where[Any, Any]:
        """Jobs carrying at least one of ``tags``."""
        return Where(TagsOneOf(_texts(tags, "query tag")))

    @staticmethod
    def scheduled_at_equals(moment: datetime) -> Where[Any, Any]:
        """Jobs scheduled exactly at ``moment`` (microsecond precision)."""
        return Where(ScheduledAt("=", check_moment(moment, "query datetime")))

    @staticmethod
    def scheduled_at_before(moment: datetime) -> Where[Any, Any]:
        """Jobs scheduled strictly before ``moment``."""
        return Where(ScheduledAt("<", check_moment(moment, "query datetime")))

    @staticmethod
    def scheduled_at_after(moment: datetime) -> Where[Any, Any]:
        """Jobs scheduled strictly after ``moment``."""
        return Where(ScheduledAt(">", check_moment(moment, "query datetime")))

    @staticmethod
    def scheduled_at_older_than(age: timedelta) -> Where[Any, Any]:
        """Jobs scheduled more than ``age`` ago (now is taken when the query is built)."""
        return Where(ScheduledAt("<", _ago(age)))

    @staticmethod
    def scheduled_at_within_the_last(age: timedelta) -> Where[Any, Any]:
        """Jobs scheduled less than ``age`` ago, or in the future."""
        return Where(ScheduledAt(">", _ago(age)))

    @staticmethod
    def executor_equals(name: str) -> Where[Any, Any]:
        """Jobs of the executor called ``name`` (used by untyped callers such as the CLI)."""
        return Where(ExecutorEquals(check_text(name, "query executor name")))

    @staticmethod
    def everything() -> Where[Any, Any]:
        """Every job."""
        return Where(And(()))

    def and_(self, other: Where[Any, Any]) -> Where[D, M]:
        """Both this and ``other`` match."""
        left = self.node.children if isinstance(self.node, And) else (self.node,)
        return Where(And((*left, other.node)))

    def or_(self, other: Where[Any, Any]) -> Where[D, M]:
        """This or ``other`` matches."""
        left = self.node.children if isinstance(self.node, Or) else (self.node,)
        return Where(Or((*left, other.node)))

    def not_(self) -> Where[D, M]:
        """This does not match."""
        return Where(Not(self.node))

    def __and__(self, other: Where[Any, Any]) -> Where[D, M]:
        return self.and_(other)

    def __or__(self, other: Where[Any, Any]) -> Where[D, M]:
        return self.or_(other)

    def __invert__(self) -> Where[D, M]:
        return self.not_()
