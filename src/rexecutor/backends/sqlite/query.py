"""Query trees (``rexecutor.query``) compiled to SQLite conditions with bound values."""

from __future__ import annotations

import json
from typing import Any

from rexecutor.backends._common import storable_id
from rexecutor.backends.sqlite.codec import equality_text, to_us
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


def placeholders(count: int) -> str:
    return ", ".join("?" * count)


def compile_query(node: QueryNode, params: list[Any]) -> str:
    """Translate a query tree into a parenthesised SQL condition, appending bound values."""
    match node:
        case And(children):
            if not children:
                return "1"
            return "(" + " AND ".join(compile_query(c, params) for c in children) + ")"
        case Or(children):
            if not children:
                return "0"
            return "(" + " OR ".join(compile_query(c, params) for c in children) + ")"
        case Not(child):
            return f"(NOT {compile_query(child, params)})"
        case ExecutorEquals(executor):
            params.append(executor)
            return "(executor = ?)"
        case DataEquals(value):
            params.append(equality_text(value))
            return "(COALESCE(data_eq, data) = ?)"
        case MetadataEquals(value):
            params.append(equality_text(value))
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
            return f"(status IN ({placeholders(len(statuses))}))"
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
            params.append(to_us(moment))
            # Like the reference evaluation: anything but "<" and ">" means equality.
            sql_op = op if op in ("<", ">") else "="
            return f"(scheduled_at {sql_op} ?)"
    raise TypeError(f"unknown query node {node!r}")
