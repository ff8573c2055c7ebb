"""Query trees (``rexecutor.query``) written as parameterised PostgreSQL conditions; what a
tree means is decided by ``backends._query.compile_where``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import sql

from rexecutor.backends._query import QueryDialect, compile_where
from rexecutor.backends.postgres.codec import _json_text
from rexecutor.job import JobStatus
from rexecutor.query import QueryNode


def _compile(node: QueryNode, params: list[Any]) -> sql.Composable:
    """Translate a query tree to a parenthesised SQL condition; values go to ``params``."""
    return compile_where(node, _PostgresDialect(params))


class _PostgresDialect(QueryDialect[sql.Composable]):
    """Parenthesised PostgreSQL conditions; each hook appends its values to ``params`` in the
    order its placeholders appear. Lists are bound as one array each."""

    def __init__(self, params: list[Any]) -> None:
        self.params = params

    def always(self) -> sql.Composable:
        return sql.SQL("TRUE")

    def never(self) -> sql.Composable:
        return sql.SQL("FALSE")

    def all_of(self, parts: Sequence[sql.Composable]) -> sql.Composable:
        return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))

    def any_of(self, parts: Sequence[sql.Composable]) -> sql.Composable:
        return sql.SQL("({})").format(sql.SQL(" OR ").join(parts))

    def negate(self, part: sql.Composable) -> sql.Composable:
        return sql.SQL("(NOT {})").format(part)

    def executor_is(self, executor: str) -> sql.Composable:
        self.params.append(executor)
        return sql.SQL("(executor = %s)")

    def data_is(self, value: Any) -> sql.Composable:
        self.params.append(_json_text(value, "query data"))
        return sql.SQL("(data = %s::jsonb)")

    def metadata_is(self, value: Any) -> sql.Composable:
        self.params.append(_json_text(value, "query metadata"))
        return sql.SQL("(metadata = %s::jsonb)")

    def id_in(self, ids: Sequence[int]) -> sql.Composable:
        self.params.append(list(ids))
        return sql.SQL("(id = ANY(%s::bigint[]))")

    def status_in(self, statuses: Sequence[JobStatus]) -> sql.Composable:
        self.params.append([s.value for s in statuses])
        return sql.SQL("(status = ANY(%s::text[]))")

    def tags_all_of(self, tags: Sequence[str]) -> sql.Composable:
        self.params.append(list(tags))
        return sql.SQL("(tags @> %s::text[])")

    def tags_one_of(self, tags: Sequence[str]) -> sql.Composable:
        self.params.append(list(tags))
        return sql.SQL("(tags && %s::text[])")

    def scheduled_at(self, op: str, moment: datetime) -> sql.Composable:
        self.params.append(moment)
        return sql.SQL("(scheduled_at {} %s::timestamptz)").format(sql.SQL(op))
