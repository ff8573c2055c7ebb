"""The one walk of a query tree (``rexecutor.query``) that every backend uses.

:func:`compile_where` decides what a tree means: how ``And``/``Or``/``Not`` combine, what an
empty list matches (``IdIn``, ``StatusIn`` and ``TagsOneOf`` of nothing match nothing,
``TagsAllOf`` of nothing matches everything), which ids can match at all, and which
``ScheduledAt`` comparisons and times are valid. A backend only says how to write each
decided condition, through a :class:`QueryDialect`: the SQL backends write SQL with bound
values, and :class:`PythonDialect` writes a predicate for the in-memory backend.
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final, Generic, TypeVar

from rexecutor._payload import check_moment
from rexecutor.backends._common import storable_id
from rexecutor.errors import ValidationError
from rexecutor.job import Job, JobStatus
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

__all__ = ["SCHEDULED_AT_OPS", "PythonDialect", "QueryDialect", "compile_where", "json_equal"]

T = TypeVar("T")

#: The comparisons a ``ScheduledAt`` node may make.
SCHEDULED_AT_OPS: Final = ("<", ">", "=")


class QueryDialect(ABC, Generic[T]):
    """How one backend writes the conditions :func:`compile_where` decided on.

    Every hook gets values already checked and normalised: lists are non-empty, sorted and
    without repeats, ids fit 64 bits, and times are aware and in UTC.
    """

    @abstractmethod
    def always(self) -> T:
        """A condition every job meets."""

    @abstractmethod
    def never(self) -> T:
        """A condition no job meets."""

    @abstractmethod
    def all_of(self, parts: Sequence[T]) -> T:
        """Every one of ``parts`` (at least two) holds."""

    @abstractmethod
    def any_of(self, parts: Sequence[T]) -> T:
        """At least one of ``parts`` (at least two) holds."""

    @abstractmethod
    def negate(self, part: T) -> T:
        """``part`` does not hold."""

    @abstractmethod
    def executor_is(self, executor: str) -> T:
        """The job belongs to ``executor``."""

    @abstractmethod
    def data_is(self, value: Any) -> T:
        """The job's data equals the JSON ``value``."""

    @abstractmethod
    def metadata_is(self, value: Any) -> T:
        """The job's metadata equals the JSON ``value``."""

    @abstractmethod
    def id_in(self, ids: Sequence[int]) -> T:
        """The job's id is one of ``ids``."""

    @abstractmethod
    def status_in(self, statuses: Sequence[JobStatus]) -> T:
        """The job's status is one of ``statuses``."""

    @abstractmethod
    def tags_all_of(self, tags: Sequence[str]) -> T:
        """The job carries every one of ``tags``."""

    @abstractmethod
    def tags_one_of(self, tags: Sequence[str]) -> T:
        """The job carries at least one of ``tags``."""

    @abstractmethod
    def scheduled_at(self, op: str, moment: datetime) -> T:
        """``scheduled_at`` compared with ``moment``; ``op`` is one of :data:`SCHEDULED_AT_OPS`."""


def compile_where(node: QueryNode, dialect: QueryDialect[T]) -> T:
    """The condition ``node`` stands for, written in ``dialect``.

    Raises ``ValidationError`` for a ``ScheduledAt`` with an unknown comparison or a time no
    backend stores, and ``TypeError`` for something that is not a query node.
    """
    match node:
        case And(children):
            return _combine(children, dialect, dialect.always, dialect.all_of)
        case Or(children):
            return _combine(children, dialect, dialect.never, dialect.any_of)
        case Not(child):
            return dialect.negate(compile_where(child, dialect))
        case ExecutorEquals(executor):
            return dialect.executor_is(executor)
        case DataEquals(value):
            return dialect.data_is(value)
        case MetadataEquals(value):
            return dialect.metadata_is(value)
        case IdIn(ids):
            # An id no backend can store matches no job, so it is dropped rather than bound.
            wanted = sorted({int(i) for i in ids if storable_id(int(i))})
            return dialect.id_in(wanted) if wanted else dialect.never()
        case StatusIn(statuses):
            found = sorted({JobStatus(s) for s in statuses}, key=lambda s: s.value)
            return dialect.status_in(found) if found else dialect.never()
        case TagsAllOf(tags):
            return dialect.tags_all_of(sorted(set(tags))) if tags else dialect.always()
        case TagsOneOf(tags):
            return dialect.tags_one_of(sorted(set(tags))) if tags else dialect.never()
        case ScheduledAt(op, moment):
            if op not in SCHEDULED_AT_OPS:
                raise ValidationError(
                    f"unknown scheduled_at comparison {op!r}; use one of "
                    + ", ".join(repr(o) for o in SCHEDULED_AT_OPS)
                )
            return dialect.scheduled_at(op, check_moment(moment, "query datetime"))
    raise TypeError(f"unknown query node {node!r}")


def _combine(
    children: Sequence[QueryNode],
    dialect: QueryDialect[T],
    empty: Callable[[], T],
    many: Callable[[Sequence[T]], T],
) -> T:
    parts = [compile_where(child, dialect) for child in children]
    if not parts:
        return empty()
    return parts[0] if len(parts) == 1 else many(parts)


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values: like ``==``, except that booleans never equal numbers."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(v, right[k]) for k, v in left.items())
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(map(json_equal, left, right))
    return bool(left == right)


Predicate = Callable[[Job[Any, Any]], bool]

_COMPARE: Final[dict[str, Callable[[datetime, datetime], bool]]] = {
    "<": operator.lt,
    ">": operator.gt,
    "=": operator.eq,
}


class PythonDialect(QueryDialect[Predicate]):
    """Conditions as predicates over a :class:`~rexecutor.job.Job` (the in-memory backend)."""

    def always(self) -> Predicate:
        return lambda job: True

    def never(self) -> Predicate:
        return lambda job: False

    def all_of(self, parts: Sequence[Predicate]) -> Predicate:
        return lambda job: all(part(job) for part in parts)

    def any_of(self, parts: Sequence[Predicate]) -> Predicate:
        return lambda job: any(part(job) for part in parts)

    def negate(self, part: Predicate) -> Predicate:
        return lambda job: not part(job)

    def executor_is(self, executor: str) -> Predicate:
        return lambda job: job.executor == executor

    def data_is(self, value: Any) -> Predicate:
        return lambda job: json_equal(job.data, value)

    def metadata_is(self, value: Any) -> Predicate:
        return lambda job: json_equal(job.metadata, value)

    def id_in(self, ids: Sequence[int]) -> Predicate:
        wanted = frozenset(ids)
        return lambda job: job.id in wanted

    def status_in(self, statuses: Sequence[JobStatus]) -> Predicate:
        wanted = frozenset(statuses)
        return lambda job: job.status in wanted

    def tags_all_of(self, tags: Sequence[str]) -> Predicate:
        wanted = frozenset(tags)
        return lambda job: wanted.issubset(job.tags)

    def tags_one_of(self, tags: Sequence[str]) -> Predicate:
        wanted = frozenset(tags)
        return lambda job: not wanted.isdisjoint(job.tags)

    def scheduled_at(self, op: str, moment: datetime) -> Predicate:
        compare = _COMPARE[op]
        return lambda job: compare(job.scheduled_at, moment)
