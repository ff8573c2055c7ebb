"""Query trees (``rexecutor.query``) written as SQLite conditions with bound values; what a
tree means is decided by ``backends._query.compile_where``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rexecutor.backends._query import QueryDialect, compile_where
from rexecutor.backends.sqlite.codec import equality_text, to_us
from rexecutor.job import JobStatus
from rexecutor.query import QueryNode


def placeholders(count: int) -> str:
    """``count`` positional placeholders, comma separated."""
    return ", ".join("?" * count)


def compile_query(node: QueryNode, params: list[Any]) -> str:
    """Translate a query tree into a parenthesised SQL condition, appending bound values."""
    return compile_where(node, _SqliteDialect(params))


class _SqliteDialect(QueryDialect[str]):
    """Parenthesised SQLite conditions; each hook appends its values to ``params`` in the
    order its placeholders appear."""

    def __init__(self, params: list[Any]) -> None:
        self.params = params

    def always(self) -> str:
        return "1"

    def never(self) -> str:
        return "0"

    def all_of(self, parts: Sequence[str]) -> str:
        return "(" + " AND ".join(parts) + ")"

    def any_of(self, parts: Sequence[str]) -> str:
        return "(" + " OR ".join(parts) + ")"

    def negate(self, part: str) -> str:
        return f"(NOT {part})"

    def executor_is(self, executor: str) -> str:
        self.params.append(executor)
        return "(executor = ?)"

    def data_is(self, value: Any) -> str:
        self.params.append(equality_text(value))
        return "(COALESCE(data_eq, data) = ?)"

    def metadata_is(self, value: Any) -> str:
        self.params.append(equality_text(value))
        return "(COALESCE(metadata_eq, metadata) = ?)"

    def id_in(self, ids: Sequence[int]) -> str:
        # One JSON parameter however many ids: no limit on bound variables.
        self.params.append(json.dumps(list(ids)))
        return "(id IN (SELECT value FROM json_each(?)))"

    def status_in(self, statuses: Sequence[JobStatus]) -> str:
        self.params.extend(s.value for s in statuses)
        return f"(status IN ({placeholders(len(statuses))}))"

    def tags_all_of(self, tags: Sequence[str]) -> str:
        # One JSON parameter however many tags: no limit on bound variables or on the depth
        # of the expression tree. The wanted list is the uncorrelated side, so SQLite builds
        # its lookup once; the tags come without repeats, so counting distinct hits works.
        self.params.append(json.dumps(list(tags), ensure_ascii=False))
        self.params.append(len(tags))
        return (
            "((SELECT COUNT(DISTINCT t.value) FROM json_each(jobs.tags) AS t "
            "WHERE t.value IN (SELECT value FROM json_each(?))) = ?)"
        )

    def tags_one_of(self, tags: Sequence[str]) -> str:
        self.params.append(json.dumps(list(tags), ensure_ascii=False))
        return (
            "(EXISTS (SELECT 1 FROM json_each(jobs.tags) AS t "
            "WHERE t.value IN (SELECT value FROM json_each(?))))"
        )

    def scheduled_at(self, op: str, moment: datetime) -> str:
        self.params.append(to_us(moment))
        return f"(scheduled_at {op} ?)"
