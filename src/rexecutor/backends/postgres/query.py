"""Translation of a query tree (``rexecutor.query``) into a parameterised SQL condition."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from rexecutor.backends.postgres.codec import _in_int64, _json_text
from rexecutor.errors import ConfigurationError
from rexecutor.job import JobStatus
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


def _compile(node: QueryNode, params: list[Any]) -> sql.Composable:
    """Translate a query tree to a parenthesised SQL condition; values go to ``params``."""
    match node:
        case And(children):
            if not children:
                return sql.SQL("TRUE")
            return sql.SQL("({})").format(
                sql.SQL(" AND ").join([_compile(child, params) for child in children])
            )
        case Or(children):
            if not children:
                return sql.SQL("FALSE")
            return sql.SQL("({})").format(
                sql.SQL(" OR ").join([_compile(child, params) for child in children])
            )
        case Not(child):
            return sql.SQL("(NOT {})").format(_compile(child, params))
        case ExecutorEquals(executor):
            params.append(executor)
            return sql.SQL("(executor = %s)")
        case DataEquals(value):
            params.append(_json_text(value, "query data"))
            return sql.SQL("(data = %s::jsonb)")
        case MetadataEquals(value):
            params.append(_json_text(value, "query metadata"))
            return sql.SQL("(metadata = %s::jsonb)")
        case IdIn(ids):
            wanted = sorted({int(i) for i in ids if _in_int64(int(i))})
            if not wanted:
                return sql.SQL("FALSE")
            params.append(wanted)
            return sql.SQL("(id = ANY(%s::bigint[]))")
        case StatusIn(statuses):
            params.append(sorted({JobStatus(s).value for s in statuses}))
            return sql.SQL("(status = ANY(%s::text[]))")
        case TagsAllOf(tags):
            params.append([str(t) for t in tags])
            return sql.SQL("(tags @> %s::text[])")
        case TagsOneOf(tags):
            params.append([str(t) for t in tags])
            return sql.SQL("(tags && %s::text[])")
        case ScheduledAt(op, moment):
            if op not in ("<", ">", "="):
                raise ValueError(f"unknown scheduled_at comparison {op!r}")
            if moment.tzinfo is None:
                raise ConfigurationError("query datetimes must be timezone-aware (UTC)")
            params.append(moment)
            return sql.SQL("(scheduled_at {} %s::timestamptz)").format(sql.SQL(op))
    raise TypeError(f"unknown query node {node!r}")
