"""``PostgresBackend``: jobs in PostgreSQL, for production and for many nodes.

Built on psycopg 3 (async) and psycopg_pool. Every node that points at the same database and
schema shares one queue: claims use ``FOR UPDATE SKIP LOCKED``, every transition out of
executing is fenced by the claim's lease, and unique enqueues are serialised with transaction
advisory locks.

Schema
------
All objects live in one schema (``public`` unless told otherwise), created by versioned
migrations recorded in ``<schema>.rexecutor_migrations``:

``rexecutor_jobs``
    ``id`` (bigint identity), ``status`` (text, CHECKed against the six statuses),
    ``executor``, ``data`` and ``metadata`` (jsonb; ``None`` metadata is JSON null), ``attempt``,
    ``max_attempts``, ``priority``, ``tags`` (text[]), ``errors`` (jsonb array of
    ``JobError.to_json()``), ``uniqueness_key`` (bigint, NULL for jobs enqueued without a key),
    ``inserted_at``/``scheduled_at``/``attempted_at``/``completed_at``/``cancelled_at``/
    ``discarded_at`` (timestamptz) and ``attempted_by`` (text, the claiming node).
``rexecutor_nodes``
    ``node_id``, ``host``, ``pid``, ``started_at`` and ``heartbeat_at``.
``rexecutor_jobs_notify()``
    A statement-level ``AFTER INSERT`` / ``AFTER UPDATE`` trigger function that calls
    ``pg_notify('<schema>_rexecutor_jobs', executor)`` once per executor whose rows became (or
    stayed) scheduled or retryable in the statement.

Indexes and the queries they serve
----------------------------------
``rexecutor_jobs_ready_idx``
    ``(executor, priority, scheduled_at, id) WHERE status IN ('scheduled', 'retryable')``:
    the claim, which walks it in claim order and stops after ``limit`` rows. Finished jobs are
    not in it, so claiming stays fast however many of them pile up.
``rexecutor_jobs_executor_status_idx``
    ``(executor, status, scheduled_at)``: ``next_scheduled_at`` (one probe per executor and
    ready status), the duplicate probe of unique jobs whose criteria have an executor but no
    key, and queries that filter on executor and status.
``rexecutor_jobs_uniqueness_key_idx``
    ``(uniqueness_key, id) WHERE uniqueness_key IS NOT NULL``: the duplicate probe of keyed
    unique jobs (earliest match by id).
``rexecutor_jobs_finished_idx``
    ``(status, COALESCE(completed_at, cancelled_at, discarded_at, scheduled_at), id)`` over
    terminal jobs: pruning by age and by count, oldest first, in bounded batches.
``rexecutor_jobs_executing_idx``
    ``(attempted_by) WHERE status = 'executing'``: rescue of orphaned jobs.
Primary keys serve get_job, the fenced marks, ``complete_jobs``, ``lost_jobs``, ``IdIn`` and
the heartbeats.

Time
----
Every "now" is the database's ``now()``, and every timestamp is a ``timestamptz``; delays and
windows are shifted in UTC (``(t AT TIME ZONE 'UTC' + delay) AT TIME ZONE 'UTC'``) so that not
even daylight-saving changes of the session's time zone shift them. Datetimes come back
aware, in UTC.

Wake-ups
--------
Operations made through this backend wake the local subscribers directly. Other processes
learn about ready jobs through the trigger's notifications, received by a listener task on a
dedicated connection (started by the first ``subscribe()``), which reconnects with backoff and
wakes every subscriber after a reconnect. Notifications sent by this backend's own pool
connections are skipped (it already woke its subscribers), and payloads are only ever compared
as executor names. Polling every ``poll_interval`` seconds covers everything else.

Claims and uniqueness
---------------------
A claim is one statement: a ``MATERIALIZED`` CTE picks the first ``limit`` ready jobs in claim
order with ``FOR UPDATE SKIP LOCKED`` (so concurrent claimers never wait for, or get, the same
row), and the ``UPDATE`` makes them executing. A unique enqueue takes, inside its transaction,
the advisory locks named by ``UniquenessCriteria.lock_names`` (hashed with the schema name;
shared or exclusive, in sorted order), then probes for the earliest match and inserts or
replaces in one statement: every enqueue that could conflict with it waits for its commit.
This needs READ COMMITTED (the default), whose statements see what committed before them.

Transactional enqueue
---------------------
``enqueue(job, connection=conn)`` and ``enqueue_many(jobs, connection=conn)`` run on the
caller's psycopg connection inside its transaction: the job exists, and other nodes are
notified, only if that transaction commits.

Errors
------
Connection failures raise ``BackendError`` naming the server, database or role; missing
privileges raise ``BackendError`` saying which. Values PostgreSQL cannot store (NaN, NUL
characters, out-of-range integers) raise ``ValidationError``. Pool connections are checked
when handed out (with a round trip only when the socket shows the server closed them); reads
and fenced or idempotent writes that lose their connection midway run again on a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import select
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import psycopg
from psycopg import sql
from psycopg.abc import Buffer, Params
from psycopg.adapt import Loader
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import Format, TransactionStatus
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout
from psycopg_pool.abc import AsyncConninfoParam, AsyncKwargsParam

from rexecutor._json import stable_hash
from rexecutor._notify import Subscription
from rexecutor._payload import EARLIEST, LATEST, storable_delay
from rexecutor.backend import (
    Backend,
    EnqueuableJob,
    EnqueueResult,
    FailureRecord,
    Lease,
    NodeInfo,
    PruneSpec,
)
from rexecutor.backends._common import (
    UNREADABLE_EARLY,
    UNREADABLE_LATE,
    RowReader,
    poison_failure,
    schedulable,
    tally,
    validate_enqueuable,
    validate_update,
)
from rexecutor.errors import (
    BackendError,
    ConfigurationError,
    InvalidTransition,
    JobNotFound,
    RexecutorError,
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

__all__ = ["SCHEMA_VERSION", "PostgresBackend"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]
Row = tuple[Any, ...]
Query = str | bytes | sql.SQL | sql.Composed

#: The newest schema version this library knows how to use.
SCHEMA_VERSION: Final = 1

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
#: Longest schema name: a channel name ("<schema>_rexecutor_jobs") must fit in 63 bytes.
_MAX_SCHEMA_BYTES: Final = 48
#: Longest notification payload the listener accepts (the trigger sends '' beyond 1000 bytes).
_MAX_PAYLOAD: Final = 1000
_CONNECT_TIMEOUT: Final = 10
_LISTEN_PING: Final = 30.0
_LISTEN_BACKOFF: Final = (0.1, 5.0)

_READY_SQL: Final = "('scheduled', 'retryable')"
_TERMINAL_SQL: Final = "('complete', 'cancelled', 'discarded')"
_FINISHED_AT: Final = "COALESCE(completed_at, cancelled_at, discarded_at, scheduled_at)"
#: The database clock as ISO 8601 text in UTC, whatever the session's time zone.
_NOW_TEXT: Final = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
#: A JobError.to_json() object for the row being updated, from the named parameters
#: error_type, details, error_name and traceback.
_ERROR_ENTRY: Final = (
    "jsonb_build_array(jsonb_build_object('attempt', attempt, 'type', %(error_type)s::text, "
    "'details', %(details)s::text, 'at', " + _NOW_TEXT + ", 'name', %(error_name)s::text, "
    "'traceback', %(traceback)s::text))"
)


def _after(delay_param: str, base: str = "now()") -> str:
    """SQL for ``base + delay``, computed in UTC so that no session time zone changes it."""
    return f"((({base}) AT TIME ZONE 'UTC' + %({delay_param})s::interval) AT TIME ZONE 'UTC')"


def _before(delay_param: str, base: str = "now()") -> str:
    """SQL for ``base - delay``, computed in UTC."""
    return f"((({base}) AT TIME ZONE 'UTC' - %({delay_param})s::interval) AT TIME ZONE 'UTC')"


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
)
_TIME_COLUMNS: Final = (
    "inserted_at",
    "scheduled_at",
    "attempted_at",
    "completed_at",
    "cancelled_at",
    "discarded_at",
)
#: The range of timestamptz values Python can hold, and the narrower one enqueue accepts.
_READABLE: Final = ("'0001-01-01 00:00:00+00'", "'9999-12-31 23:59:59.999999+00'")
_ACCEPTED: Final = (f"'{EARLIEST.isoformat()}'", f"'{LATEST.isoformat()}'")
#: The times a job row must hold within ``_ACCEPTED`` to be claimed and run.
_SCHEDULING: Final = ("inserted_at", "scheduled_at")


def _clamped(column: str, bounds: tuple[str, str]) -> str:
    """SQL for ``column`` clamped into ``bounds`` (NULL stays NULL; infinities are clamped)."""
    low, high = (f"{bound}::timestamptz" for bound in bounds)
    return (
        f"CASE WHEN {column} > {high} THEN {high} WHEN {column} < {low} THEN {low} "
        f"ELSE {column} END"
    )


def _select_list(prefix: str) -> str:
    # A time no Python datetime can hold (a hand-written year 10000, 'infinity') is read
    # clamped, so that decoding a row never fails on it.
    return ", ".join(
        f"{_clamped(prefix + name, _READABLE)} AS {name}"
        if name in _TIME_COLUMNS
        else prefix + name
        for name in _COLUMN_NAMES
    )


_COLUMNS: Final = _select_list("")
_J_COLUMNS: Final = _select_list("j.")

# -- migrations ------------------------------------------------------------------------------

#: (version, description, statements). Placeholders: {schema}, {jobs}, {nodes}, {notify_fn}.
_MIGRATIONS: Final[tuple[tuple[int, str, tuple[str, ...]], ...]] = (
    (
        1,
        "jobs, nodes, indexes and the wake-up trigger",
        (
            """
            CREATE TABLE {jobs} (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                status text NOT NULL DEFAULT 'scheduled' CHECK (status IN
                    ('scheduled', 'executing', 'retryable', 'complete', 'cancelled',
                     'discarded')),
                executor text NOT NULL,
                data jsonb NOT NULL DEFAULT 'null',
                metadata jsonb NOT NULL DEFAULT 'null',
                attempt integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
                max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
                priority integer NOT NULL DEFAULT 0,
                tags text[] NOT NULL DEFAULT ARRAY[]::text[],
                errors jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(errors) = 'array'),
                uniqueness_key bigint,
                inserted_at timestamptz NOT NULL DEFAULT now(),
                scheduled_at timestamptz NOT NULL DEFAULT now(),
                attempted_at timestamptz,
                completed_at timestamptz,
                cancelled_at timestamptz,
                discarded_at timestamptz,
                attempted_by text
            )
            """,
            f"""
            CREATE INDEX rexecutor_jobs_ready_idx ON {{jobs}}
                (executor, priority, scheduled_at, id) WHERE status IN {_READY_SQL}
            """,
            """
            CREATE INDEX rexecutor_jobs_executor_status_idx ON {jobs}
                (executor, status, scheduled_at)
            """,
            """
            CREATE INDEX rexecutor_jobs_uniqueness_key_idx ON {jobs}
                (uniqueness_key, id) WHERE uniqueness_key IS NOT NULL
            """,
            f"""
            CREATE INDEX rexecutor_jobs_finished_idx ON {{jobs}}
                (status, ({_FINISHED_AT}), id) WHERE status IN {_TERMINAL_SQL}
            """,
            """
            CREATE INDEX rexecutor_jobs_executing_idx ON {jobs}
                (attempted_by) WHERE status = 'executing'
            """,
            """
            CREATE TABLE {nodes} (
                node_id text PRIMARY KEY,
                host text NOT NULL,
                pid bigint NOT NULL,
                started_at timestamptz NOT NULL DEFAULT now(),
                heartbeat_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            f"""
            CREATE FUNCTION {{notify_fn}}() RETURNS trigger
            LANGUAGE plpgsql
            SET search_path = pg_catalog, pg_temp
            AS $rexecutor$
            BEGIN
                PERFORM pg_notify(
                    TG_TABLE_SCHEMA || '_rexecutor_jobs',
                    CASE WHEN octet_length(ready.executor) <= {_MAX_PAYLOAD}
                         THEN ready.executor ELSE '' END)
                FROM (SELECT DISTINCT executor FROM rexecutor_new_rows
                      WHERE status IN {_READY_SQL}) AS ready;
                RETURN NULL;
            END
            $rexecutor$
            """,
            """
            CREATE TRIGGER rexecutor_jobs_notify_insert AFTER INSERT ON {jobs}
                REFERENCING NEW TABLE AS rexecutor_new_rows
                FOR EACH STATEMENT EXECUTE FUNCTION {notify_fn}()
            """,
            """
            CREATE TRIGGER rexecutor_jobs_notify_update AFTER UPDATE ON {jobs}
                REFERENCING NEW TABLE AS rexecutor_new_rows
                FOR EACH STATEMENT EXECUTE FUNCTION {notify_fn}()
            """,
        ),
    ),
)

assert _MIGRATIONS[-1][0] == SCHEMA_VERSION

# -- statements ------------------------------------------------------------------------------
# Placeholders in braces are identifiers, filled in once per backend; %(name)s are parameters.

_FENCE: Final = (
    "id = %(id)s AND status = 'executing' AND attempted_by = %(node)s AND attempt = %(attempt)s"
)


def _changed_or_exists(update: str) -> str:
    """Run ``update`` (RETURNING executor) and report (executor or NULL, whether the id exists).

    The existence check reads the snapshot from before the update, so a job that exists but
    was not changed reads as (NULL, true) and an unknown id as (NULL, false).
    """
    return (
        f"WITH changed AS ({update} RETURNING executor) "
        "SELECT (SELECT executor FROM changed), "
        "EXISTS (SELECT 1 FROM {jobs} WHERE id = %(id)s)"
    )


_STATEMENTS: Final[dict[str, str]] = {
    "insert": """
        INSERT INTO {jobs}
            (executor, data, metadata, max_attempts, priority, tags, uniqueness_key,
             scheduled_at)
        VALUES (%(executor)s, %(data)s::jsonb, %(metadata)s::jsonb, %(max_attempts)s,
                %(priority)s, %(tags)s::text[], NULL,
                COALESCE(%(scheduled_at)s::timestamptz, now()))
        RETURNING id
    """,
    "insert_many": """
        INSERT INTO {jobs}
            (executor, data, metadata, max_attempts, priority, tags, scheduled_at)
        SELECT u.executor, u.data::jsonb, u.metadata::jsonb, u.max_attempts, u.priority,
               ARRAY(SELECT t.tag
                     FROM jsonb_array_elements_text(u.tags::jsonb) WITH ORDINALITY
                          AS t(tag, n)
                     ORDER BY t.n),
               COALESCE(u.scheduled_at, now())
        FROM unnest(%(executor)b::text[], %(data)b::text[], %(metadata)b::text[],
                    %(max_attempts)b::integer[], %(priority)b::integer[], %(tags)b::text[],
                    %(scheduled_at)b::timestamptz[])
             WITH ORDINALITY
             AS u(executor, data, metadata, max_attempts, priority, tags, scheduled_at, ord)
        ORDER BY u.ord
        RETURNING id
    """,
    # The same without tags, the common case: no per-row array subquery, no tags parameter.
    "insert_many_untagged": """
        INSERT INTO {jobs}
            (executor, data, metadata, max_attempts, priority, scheduled_at)
        SELECT u.executor, u.data::jsonb, u.metadata::jsonb, u.max_attempts, u.priority,
               COALESCE(u.scheduled_at, now())
        FROM unnest(%(executor)b::text[], %(data)b::text[], %(metadata)b::text[],
                    %(max_attempts)b::integer[], %(priority)b::integer[],
                    %(scheduled_at)b::timestamptz[])
             WITH ORDINALITY
             AS u(executor, data, metadata, max_attempts, priority, scheduled_at, ord)
        ORDER BY u.ord
        RETURNING id
    """,
    "claim": f"""
        WITH picked AS MATERIALIZED (
            SELECT id FROM {{jobs}}
            WHERE executor = %(executor)s
              AND status IN {_READY_SQL}
              -- Rows scheduled beyond what enqueue accepts cannot have been written by it:
              -- they are claimed so that they are set aside instead of lying in wait.
              AND (scheduled_at <= now() OR scheduled_at > {_ACCEPTED[1]}::timestamptz)
            ORDER BY priority, scheduled_at, id
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        )
        UPDATE {{jobs}} AS j
        SET status = 'executing', attempt = j.attempt + 1, attempted_at = now(),
            attempted_by = %(node)s
        FROM picked
        WHERE j.id = picked.id
        RETURNING {_J_COLUMNS}
    """,
    "next_scheduled_at": f"""
        SELECT {_clamped("min(first.scheduled_at)", _READABLE)}
        FROM unnest(%(executors)s::text[]) AS e(executor)
        CROSS JOIN (VALUES ('scheduled'), ('retryable')) AS s(status)
        CROSS JOIN LATERAL (
            SELECT j.scheduled_at FROM {{jobs}} AS j
            WHERE j.executor = e.executor AND j.status = s.status
            ORDER BY j.scheduled_at
            LIMIT 1
        ) AS first
    """,
    "complete": _changed_or_exists(
        "UPDATE {jobs} SET status = 'complete', completed_at = now() WHERE " + _FENCE
    ),
    "retryable": _changed_or_exists(
        "UPDATE {jobs} SET status = 'retryable', scheduled_at = "
        + _after("delay")
        + ", errors = errors || "
        + _ERROR_ENTRY
        + " WHERE "
        + _FENCE
    ),
    "discarded": _changed_or_exists(
        "UPDATE {jobs} SET status = 'discarded', discarded_at = now(), errors = errors || "
        + _ERROR_ENTRY
        + " WHERE "
        + _FENCE
    ),
    "snoozed": _changed_or_exists(
        "UPDATE {jobs} SET attempt = GREATEST(attempt - 1, 0), "
        "status = CASE WHEN attempt <= 1 THEN 'scheduled' ELSE 'retryable' END, "
        "scheduled_at = " + _after("delay") + " WHERE " + _FENCE
    ),
    "snoozed_with_error": _changed_or_exists(
        "UPDATE {jobs} SET attempt = GREATEST(attempt - 1, 0), "
        "status = CASE WHEN attempt <= 1 THEN 'scheduled' ELSE 'retryable' END, "
        "scheduled_at = "
        + _after("delay")
        + ", errors = errors || "
        + _ERROR_ENTRY
        + " WHERE "
        + _FENCE
    ),
    "cancelled_fenced": _changed_or_exists(
        "UPDATE {jobs} SET status = 'cancelled', cancelled_at = now(), errors = errors || "
        + _ERROR_ENTRY
        + " WHERE "
        + _FENCE
    ),
    "cancelled": _changed_or_exists(
        "UPDATE {jobs} SET status = 'cancelled', cancelled_at = now(), errors = errors || "
        + _ERROR_ENTRY
        + f" WHERE id = %(id)s AND status NOT IN {_TERMINAL_SQL}"
    ),
    # One fenced completion per item, in one statement; an id that does not exist stops the
    # batch there, as completing one by one would (the items before it still complete). The
    # caller sends each (id, node, attempt) once.
    "complete_many": """
        WITH input AS (
            SELECT * FROM unnest(%(ids)s::bigint[], %(nodes)s::text[], %(attempts)s::integer[])
                WITH ORDINALITY AS i(id, node, attempt, ord)
        ),
        missing AS (
            -- one primary-key probe per item (a correlated subquery, never a scan)
            SELECT min(i.ord) AS ord FROM input AS i
            WHERE (SELECT j.id FROM {jobs} AS j WHERE j.id = i.id) IS NULL
        ),
        done AS (
            UPDATE {jobs} AS j SET status = 'complete', completed_at = now()
            FROM input AS i, missing AS m
            WHERE j.id = i.id AND j.status = 'executing' AND j.attempted_by = i.node
              AND j.attempt = i.attempt AND (m.ord IS NULL OR i.ord < m.ord)
            RETURNING i.ord
        )
        SELECT (SELECT ord FROM missing), ARRAY(SELECT ord FROM done)
    """,
    # The same for items that all hold leases of one node (a node's own batches).
    "complete_many_one_node": """
        WITH input AS (
            SELECT * FROM unnest(%(ids)s::bigint[], %(attempts)s::integer[])
                WITH ORDINALITY AS i(id, attempt, ord)
        ),
        missing AS (
            SELECT min(i.ord) AS ord FROM input AS i
            WHERE (SELECT j.id FROM {jobs} AS j WHERE j.id = i.id) IS NULL
        ),
        done AS (
            UPDATE {jobs} AS j SET status = 'complete', completed_at = now()
            FROM input AS i, missing AS m
            WHERE j.id = i.id AND j.status = 'executing' AND j.attempted_by = %(node)s
              AND j.attempt = i.attempt AND (m.ord IS NULL OR i.ord < m.ord)
            RETURNING i.ord
        )
        SELECT (SELECT ord FROM missing), ARRAY(SELECT ord FROM done)
    """,
    "rerun": f"""
        WITH changed AS (
            UPDATE {{jobs}} SET
                max_attempts = CASE
                    WHEN status IN {_TERMINAL_SQL} AND attempt >= max_attempts
                    THEN attempt + 1 ELSE max_attempts END,
                status = CASE
                    WHEN status IN {_TERMINAL_SQL}
                    THEN (CASE WHEN attempt = 0 THEN 'scheduled' ELSE 'retryable' END)
                    ELSE status END,
                completed_at = NULL, cancelled_at = NULL, discarded_at = NULL,
                scheduled_at = now()
            WHERE id = %(id)s AND status <> 'executing'
            RETURNING executor
        )
        SELECT (SELECT executor FROM changed),
               (SELECT status FROM {{jobs}} WHERE id = %(id)s)
    """,
    "update": """
        UPDATE {jobs} SET data = %(data)s::jsonb, metadata = %(metadata)s::jsonb,
            max_attempts = %(max_attempts)s, priority = %(priority)s, tags = %(tags)s::text[],
            scheduled_at = %(scheduled_at)s
        WHERE id = %(id)s
        RETURNING executor, status
    """,
    "exists": "SELECT EXISTS (SELECT 1 FROM {jobs} WHERE id = %(id)s)",
    "stored_times": "SELECT inserted_at::text, scheduled_at::text FROM {jobs} WHERE id = %(id)s",
    # A claimed job whose row cannot be read: discarded, its times made readable, unreadable
    # JSON replaced by its text (as a JSON string), the error list rewritten as read.
    "set_aside": "UPDATE {jobs} SET status = 'discarded', discarded_at = now(), "
    "errors = %(errors)s::jsonb || " + _ERROR_ENTRY + ", data = COALESCE(%(data)s::jsonb, data), "
    "metadata = COALESCE(%(metadata)s::jsonb, metadata), "
    + ", ".join(
        f"{name} = {_clamped(name, _ACCEPTED if name in _SCHEDULING else _READABLE)}"
        for name in _TIME_COLUMNS
        if name != "discarded_at"
    )
    + " WHERE "
    + _FENCE,
    "try_lock": "SELECT pg_try_advisory_xact_lock(%(key)s)",
    "heartbeat": """
        INSERT INTO {nodes} (node_id, host, pid, started_at, heartbeat_at)
        VALUES (%(node_id)s, %(host)s, %(pid)s, now(), now())
        ON CONFLICT (node_id) DO UPDATE
        SET host = EXCLUDED.host, pid = EXCLUDED.pid, heartbeat_at = now()
    """,
    "remove_node": "DELETE FROM {nodes} WHERE node_id = %(node_id)s",
    "count_jobs": "SELECT executor, status, count(*) FROM {jobs} GROUP BY executor, status",
    "finished_per_minute": f"""
        SELECT date_trunc('minute', finished) AS bucket, status, count(*) FROM (
            SELECT status,
                {_clamped("COALESCE(completed_at, cancelled_at, discarded_at)", _READABLE)}
                    AS finished
            FROM {{jobs}} WHERE status IN ('complete', 'cancelled', 'discarded')
        ) AS done
        WHERE finished >= now() - %(since)s
        GROUP BY bucket, status ORDER BY bucket, status
    """,
    "list_nodes": """
        SELECT node_id, host, pid, started_at, heartbeat_at FROM {nodes}
        ORDER BY heartbeat_at DESC, started_at, node_id
    """,
    "rescue": f"""
        WITH cutoff AS (SELECT {_before("dead_after")} AS at),
        dead AS (
            SELECT n.node_id FROM {{nodes}} AS n, cutoff AS c WHERE n.heartbeat_at < c.at
        ),
        rescued AS (
            UPDATE {{jobs}} AS j SET
                status = CASE WHEN j.attempt >= j.max_attempts
                              THEN 'discarded' ELSE 'retryable' END,
                discarded_at = CASE WHEN j.attempt >= j.max_attempts
                                    THEN now() ELSE j.discarded_at END,
                scheduled_at = CASE WHEN j.attempt >= j.max_attempts
                                    THEN j.scheduled_at ELSE now() END,
                errors = j.errors || jsonb_build_array(jsonb_build_object(
                    'attempt', j.attempt, 'type', %(error_type)s::text,
                    'details', 'node ' || COALESCE(j.attempted_by, 'None')
                               || ' stopped sending heartbeats while running this job',
                    'at', {_NOW_TEXT}, 'name', NULL::text, 'traceback', NULL::text))
            FROM cutoff AS c
            WHERE j.status = 'executing'
              AND (j.attempted_by IN (SELECT node_id FROM dead)
                   OR (NOT EXISTS (SELECT 1 FROM {{nodes}} AS n
                                   WHERE n.node_id = j.attempted_by)
                       AND j.attempted_at < c.at))
            RETURNING j.id, j.executor, j.status
        ),
        forgotten AS (
            DELETE FROM {{nodes}} WHERE node_id IN (SELECT node_id FROM dead)
        )
        SELECT id, executor, status FROM rescued ORDER BY id
    """,
    "give_back": """
        UPDATE {jobs} AS j
        SET attempt = j.attempt - 1,
            status = CASE WHEN j.attempt <= 1 THEN 'scheduled' ELSE 'retryable' END
        FROM unnest(%(ids)s::bigint[], %(attempts)s::integer[]) AS g(id, attempt)
        WHERE j.id = g.id AND j.status = 'executing' AND j.attempted_by = %(node)s
          AND j.attempt = g.attempt
    """,
    "lost_jobs": """
        SELECT l.id
        FROM unnest(%(ids)s::bigint[], %(attempts)s::integer[]) WITH ORDINALITY
             AS l(id, attempt, ord)
        WHERE NOT EXISTS (
            SELECT 1 FROM {jobs} AS j
            WHERE j.id = l.id AND j.status = 'executing' AND j.attempted_by = %(node)s
              AND j.attempt = l.attempt
        )
        ORDER BY l.ord
    """,
}


# -- helpers ---------------------------------------------------------------------------------


def _validate_schema(schema: object) -> str:
    if not isinstance(schema, str) or not schema:
        raise ConfigurationError("schema must be a non-empty string")
    if "\x00" in schema:
        raise ConfigurationError("schema must not contain NUL characters")
    if len(schema.encode()) > _MAX_SCHEMA_BYTES:
        raise ConfigurationError(
            f"schema name {schema!r} is too long: at most {_MAX_SCHEMA_BYTES} bytes, so that "
            "its notification channel name fits PostgreSQL's 63-byte identifier limit"
        )
    if schema.lower().startswith("pg_"):
        raise ConfigurationError(f"schema name {schema!r} is reserved by PostgreSQL (pg_*)")
    return schema


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


def _in_int64(value: int) -> bool:
    return _INT64_MIN <= value <= _INT64_MAX


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
    )
    return job, reader


def _error_params(error: FailureRecord) -> dict[str, Any]:
    return {
        "error_type": ErrorType(error.error_type).value,
        "details": str(error.details),
        "error_name": error.name,
        "traceback": error.traceback,
    }


async def _fetchall(
    conn: Conn, query: Query, params: Params | None = None, *, binary: bool = False
) -> list[Row]:
    # Binary results decode jobs noticeably faster (timestamps, arrays); used for job rows.
    async with conn.cursor(row_factory=tuple_row, binary=binary) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def _fetchone(conn: Conn, query: Query, params: Params | None = None) -> Row | None:
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


async def _execute(conn: Conn, query: Query, params: Params | None = None) -> int:
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query, params)
        return cur.rowcount


@contextlib.asynccontextmanager
async def _atomic(conn: Conn) -> AsyncIterator[None]:
    """Make the block atomic without taking a caller's transaction away from it.

    An autocommit connection outside a transaction gets its own transaction, committed at
    the end. A connection already in a transaction, or one in manual-commit mode, is used as
    it is: the block joins the transaction its owner commits or rolls back.
    """
    if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
        async with conn.transaction():
            yield
    else:
        yield


async def _check_connection(conn: Conn) -> None:
    """The pool's check of a connection it hands out, without a round trip when it can.

    An idle connection has nothing to read: when its socket is readable, the server closed it
    or sent why it is about to (a restart, ``pg_terminate_backend``), and the full check (an
    empty query) runs and fails, so the pool hands out another connection. Only then does the
    check cost a round trip, instead of on every checkout.
    """
    try:
        idle = conn.info.transaction_status == TransactionStatus.IDLE and not conn.broken
        if idle:
            poller = select.poll()
            poller.register(conn.fileno(), select.POLLIN)
            readable = bool(poller.poll(0))
        else:
            readable = True
    except (OSError, ValueError, psycopg.Error):
        idle, readable = False, True
    if not idle or readable:
        await AsyncConnectionPool.check_connection(conn)


def _is_connection_loss(exc: psycopg.OperationalError) -> bool:
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in {"57P01", "57P02", "57P03"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a connection goes, for error messages (never the password)."""

    host: str
    port: str
    dbname: str
    user: str

    @classmethod
    def parse(cls, conninfo: str, kwargs: dict[str, Any]) -> _Target:
        try:
            params = conninfo_to_dict(conninfo)
        except psycopg.Error:
            params = {}
        for name in ("host", "hostaddr", "port", "dbname", "user"):
            if kwargs.get(name) is not None:
                params[name] = kwargs[name]
        user = str(params.get("user") or os.environ.get("PGUSER") or _os_user())
        return cls(
            host=str(
                params.get("host")
                or params.get("hostaddr")
                or os.environ.get("PGHOST")
                or "localhost"
            ),
            port=str(params.get("port") or os.environ.get("PGPORT") or 5432),
            dbname=str(params.get("dbname") or os.environ.get("PGDATABASE") or user),
            user=user,
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _os_user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:
        return "the current user"


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
        }


# -- the backend -----------------------------------------------------------------------------


class PostgresBackend(Backend):
    """Jobs stored in PostgreSQL, shared by every node that uses the same database and schema.

    Args:
        url: a libpq connection string or URL, e.g.
            ``postgresql://user:secret@db.example.com:5432/app``.
        schema: the schema that holds rexecutor's tables (created by the migrations).
        min_size: connections the pool keeps open.
        max_size: the most connections the pool opens.
        poll_interval: seconds between polls for work no wake-up announced.
        migrate: apply pending migrations in ``connect()``; with False, ``connect()`` only
            checks that the schema is up to date.

    Example:
        >>> backend = PostgresBackend("postgresql://app@localhost/app", schema="jobs")
        >>> async def main() -> None:
        ...     async with backend:            # opens the pool, applies migrations
        ...         await backend.enqueue(EnqueuableJob("mailer", {"to": "a@example.com"}))
    """

    poll_interval = 1.0

    _conninfo: AsyncConninfoParam
    _kwargs: AsyncKwargsParam | None
    _min_size: int
    _max_size: int
    _owns_pool: bool
    _target: _Target

    def __init__(
        self,
        url: str,
        *,
        schema: str = "public",
        min_size: int = 1,
        max_size: int = 10,
        poll_interval: float = 1.0,
        migrate: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(url, str) or not url.strip():
            raise ConfigurationError("a PostgreSQL connection URL is required")
        if min_size < 0 or max_size < max(min_size, 1):
            raise ConfigurationError(
                f"pool sizes must satisfy 0 <= min_size <= max_size and max_size >= 1, got "
                f"min_size={min_size}, max_size={max_size}"
            )
        try:
            conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            from rexecutor._redact import mask_secrets  # psycopg quotes the bad part

            raise ConfigurationError(
                f"invalid PostgreSQL connection URL: {mask_secrets(str(exc))}"
            ) from None
        self._setup(schema, poll_interval, migrate)
        self._conninfo = url
        self._kwargs = None
        self._min_size = min_size
        self._max_size = max_size
        self._owns_pool = True
        self._target = _Target.parse(url, {})

    @classmethod
    def from_pool(
        cls,
        pool: AsyncConnectionPool[Any],
        *,
        schema: str = "public",
        poll_interval: float = 1.0,
        migrate: bool = True,
    ) -> PostgresBackend:
        """Use an existing ``psycopg_pool.AsyncConnectionPool``; ``close()`` leaves it open.

        The pool's connections may be in autocommit or manual-commit mode and use any session
        time zone; ``connect()`` opens the pool if needed and migrates through it. The wake-up
        listener (and :meth:`for_thread`) open connections of their own with the pool's
        conninfo and kwargs, without its ``configure`` callback.

        Example:
            >>> pool = AsyncConnectionPool("postgresql://app@localhost/app", open=False)
            >>> backend = PostgresBackend.from_pool(pool, schema="jobs")
        """
        backend = cls.__new__(cls)
        Backend.__init__(backend)
        backend._setup(schema, poll_interval, migrate)
        backend._conninfo = pool.conninfo
        backend._kwargs = pool.kwargs
        backend._min_size = pool.min_size
        backend._max_size = pool.max_size
        backend._owns_pool = False
        backend._pool = pool
        conninfo = pool.conninfo if isinstance(pool.conninfo, str) else ""
        kwargs = pool.kwargs if isinstance(pool.kwargs, dict) else {}
        backend._target = _Target.parse(conninfo, kwargs)
        return backend

    def _setup(self, schema: str, poll_interval: float, migrate: bool) -> None:
        self._schema = _validate_schema(schema)
        if not poll_interval > 0:
            raise ConfigurationError(f"poll_interval must be positive, got {poll_interval}")
        self.poll_interval = float(poll_interval)
        self._migrate_on_connect = migrate
        self._pool: AsyncConnectionPool[Any] | None = None
        self._connected = False
        self._connect_lock: asyncio.Lock | None = None
        self._channel = f"{self._schema}_rexecutor_jobs"
        self._cancel_channel = f"{self._schema}_rexecutor_cancel"
        self._own_conns: weakref.WeakSet[Conn] = weakref.WeakSet()
        self._listener_task: asyncio.Task[None] | None = None
        self._listener_loop: asyncio.AbstractEventLoop | None = None
        self._listener_pid: int | None = None
        self._listening = asyncio.Event()
        identifiers = {
            "schema": sql.Identifier(self._schema),
            "jobs": sql.Identifier(self._schema, "rexecutor_jobs"),
            "nodes": sql.Identifier(self._schema, "rexecutor_nodes"),
            "migrations": sql.Identifier(self._schema, "rexecutor_migrations"),
            "notify_fn": sql.Identifier(self._schema, "rexecutor_jobs_notify"),
        }
        self._identifiers = identifiers
        self._q = {name: self._render(text) for name, text in _STATEMENTS.items()}
        self._unique_cache: dict[tuple[Any, ...], bytes] = {}

    def _render(self, template: str) -> bytes:
        return sql.SQL(template).format(**self._identifiers).as_bytes(None)

    def _lock_key(self, *parts: str) -> int:
        return stable_hash(["rexecutor", self._schema, *parts])

    def __repr__(self) -> str:
        t = self._target
        return (
            f"PostgresBackend(host={t.host!r}, port={t.port}, dbname={t.dbname!r}, "
            f"schema={self._schema!r})"
        )

    @property
    def schema(self) -> str:
        """The schema that holds this backend's tables."""
        return self._schema

    # -- connections -------------------------------------------------------------------------

    def for_thread(self) -> PostgresBackend:
        """A new, unconnected backend on the same database and schema, for another thread.

        Its connections belong to the other thread's event loop: a small pool of its own
        (at most two connections), opened with the same connection parameters, and no
        migrations (it only checks the schema version). It shares no wake-ups with this one;
        they travel through the database like those of any other node.
        """
        clone = type(self).__new__(type(self))
        Backend.__init__(clone)
        clone._setup(self._schema, self.poll_interval, migrate=False)
        clone._conninfo = self._conninfo
        clone._kwargs = self._kwargs
        clone._min_size = 1
        clone._max_size = 2
        clone._owns_pool = True
        clone._target = self._target
        clone.max_payload_bytes = self.max_payload_bytes
        return clone

    async def _connect_params(self) -> tuple[str, dict[str, Any]]:
        """The conninfo and connection keyword arguments, resolving callables."""
        conninfo: Any = self._conninfo
        if callable(conninfo):
            conninfo = conninfo()
            if inspect.isawaitable(conninfo):
                conninfo = await conninfo
        kwargs: Any = self._kwargs or {}
        if callable(kwargs):
            kwargs = kwargs()
            if inspect.isawaitable(kwargs):
                kwargs = await kwargs
        return str(conninfo or ""), dict(kwargs or {})

    async def _pool_kwargs(self) -> dict[str, Any]:
        _, kwargs = await self._connect_params()
        return {**kwargs, "autocommit": True}

    async def _open_connection(self) -> Conn:
        """A new connection outside the pool (migrations before the pool opens, the listener)."""
        conninfo, kwargs = await self._connect_params()
        params = {**kwargs, "autocommit": True}
        try:
            has_timeout = "connect_timeout" in conninfo_to_dict(conninfo)
        except psycopg.Error:
            has_timeout = False
        if not has_timeout and "connect_timeout" not in params:
            params["connect_timeout"] = _CONNECT_TIMEOUT
        try:
            return await psycopg.AsyncConnection.connect(conninfo, **params)
        except psycopg.Error as exc:
            target = _Target.parse(conninfo, kwargs)
            raise BackendError(_describe_connect_failure(exc, target)) from exc

    async def _configure(self, conn: Conn) -> None:
        await conn.execute("SET TIME ZONE 'UTC'")
        conn.adapters.register_loader("jsonb", _JsonbBinaryLoader)

    async def connect(self) -> None:
        """Open the pool and apply pending migrations (or check the schema); idempotent.

        Raises:
            BackendError: the server is unreachable, refuses the credentials, has no such
                database, or the role lacks privileges; or, with ``migrate=False``, the schema
                is missing or out of date.
            SchemaVersionError: the schema is newer than this library understands.
        """
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if self._connected:
                return
            if self._owns_pool:
                conn = await self._open_connection()
                try:
                    await self._prepare_schema(conn)
                finally:
                    await conn.close()
                kwargs: AsyncKwargsParam = (
                    self._pool_kwargs
                    if callable(self._kwargs)
                    else {**(self._kwargs or {}), "autocommit": True}
                )
                pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                    self._conninfo,
                    kwargs=kwargs,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    open=False,
                    configure=self._configure,
                    check=_check_connection,
                    name=f"rexecutor-{self._schema}",
                )
                try:
                    await pool.open(wait=True, timeout=30.0)
                except PoolTimeout as exc:
                    await pool.close()
                    raise BackendError(
                        f"could not open {self._min_size} connection(s) to the PostgreSQL "
                        f"server at {self._target.address} within 30 s"
                    ) from exc
                self._pool = pool
            else:
                assert self._pool is not None
                try:
                    await self._pool.open()
                except PoolClosed as exc:
                    raise BackendError(
                        "the connection pool given to PostgresBackend.from_pool is closed"
                    ) from exc
                try:
                    await self._run(self._prepare_schema)
                except BackendError as exc:
                    if isinstance(exc.__cause__, PoolTimeout):
                        # Say why the pool could not connect, if a direct attempt can tell.
                        conn = await self._open_connection()
                        await conn.close()
                    raise
            self._connected = True
            if self._hub_has_subscribers():
                self._ensure_listener()

    def _hub_has_subscribers(self) -> bool:
        return bool(getattr(self._hub, "_subscribers", None))

    async def close(self) -> None:
        """Stop the listener and close the pool if this backend opened it; idempotent."""
        await self._stop_listener()
        self._connected = False
        self._connect_lock = None
        if self._owns_pool and self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def _require_pool(self) -> AsyncConnectionPool[Any]:
        if not self._connected or self._pool is None:
            raise BackendError(
                "the PostgreSQL backend is not connected: call `await backend.connect()` "
                "(or use `async with backend:`) first"
            )
        return self._pool

    async def _run(
        self,
        work: Callable[[Conn], Awaitable[T]],
        *,
        retry: bool = False,
        verify: bool | None = None,
    ) -> T:
        """Run ``work`` on a pool connection; errors become rexecutor errors.

        With ``retry`` (only for reads, and for writes that are idempotent or fenced), work
        that failed because its connection was lost runs again on another connection, until
        every connection the pool may hold has been tried: a caller's pool that does not
        check its connections may hand out several dead ones in a row.

        Work that cannot be retried gets a connection that has just answered an empty query
        (``verify``, the default without ``retry``): the pool's own check costs no round trip
        and can miss a connection the server closed a moment ago. The claim opts out: a dead
        connection cannot have claimed anything, and the runner claims again.
        """
        pool = self._pool
        if pool is None:
            pool = self._require_pool()
        attempts = (pool.max_size + 1) if retry else 1
        if verify is None:
            verify = not retry
        for attempt in range(attempts):
            try:
                # pool.connection(), without its context-manager machinery (a hot path):
                # commit or roll back as the block ends, then hand the connection back.
                conn = await (self._verified(pool) if verify else pool.getconn())
                try:
                    self._own_conns.add(conn)
                    async with conn:
                        return await work(conn)
                finally:
                    await pool.putconn(conn)
            except (PoolTimeout, PoolClosed) as exc:
                raise self._pool_error(exc) from exc
            except psycopg.OperationalError as exc:
                if attempt + 1 < attempts and _is_connection_loss(exc):
                    logger.warning(
                        "rexecutor: lost a PostgreSQL connection (%s); retrying",
                        _first_line(exc),
                    )
                    continue
                raise self._translate(exc) from exc
            except psycopg.Error as exc:
                raise self._translate(exc) from exc
            except UnicodeError as exc:
                raise ValidationError(f"a value cannot be encoded for PostgreSQL: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _verified(self, pool: AsyncConnectionPool[Any]) -> Conn:
        """A pool connection that has just answered an empty query (on our own pool)."""
        conn: Conn = await pool.getconn()
        if not self._owns_pool:
            return conn  # a caller's pool checks connections as its owner configured it
        for _ in range(pool.max_size + 1):
            try:
                await AsyncConnectionPool.check_connection(conn)
                return conn
            except psycopg.Error:
                await pool.putconn(conn)  # broken: the pool discards it
                conn = await pool.getconn()
        return conn

    def _pool_error(self, exc: Exception) -> BackendError:
        if isinstance(exc, PoolClosed):
            return BackendError(
                "the PostgreSQL backend is not connected (its pool is closed): call "
                "`await backend.connect()` first"
            )
        return BackendError(
            f"no PostgreSQL connection became available in time (pool max_size="
            f"{self._max_size}); the server at {self._target.address} may be unreachable or "
            f"the pool too small: {_first_line(exc)}"
        )

    def _translate(self, exc: psycopg.Error) -> RexecutorError:
        return _translate(exc, self._target, self._schema)

    # -- migrations --------------------------------------------------------------------------

    async def migrate(self) -> int:
        """Bring the schema up to date and return its version; safe to run from many nodes.

        Usable on its own, before (or without) ``connect()``. Runs in one transaction under an
        advisory lock, so concurrent migrations wait for each other and apply each step once.

        Raises:
            SchemaVersionError: the database was migrated by a newer version of rexecutor.
            BackendError: the database is unreachable or the role may not create the schema.
        """
        if self._connected and self._pool is not None:
            return await self._run(self._migrate_on)
        conn = await self._open_connection()
        try:
            return await self._migrate_on(conn)
        except psycopg.Error as exc:
            raise self._translate(exc) from exc
        finally:
            await conn.close()

    async def _prepare_schema(self, conn: Conn) -> None:
        try:
            if self._migrate_on_connect:
                await self._migrate_on(conn)
            else:
                await self._check_version(conn)
        except psycopg.Error as exc:
            raise self._translate(exc) from exc

    async def _stored_version(self, conn: Conn) -> int | None:
        """The schema's version, or None when it has no migrations table."""
        name = self._identifiers["migrations"].as_string(None)
        row = await _fetchone(conn, "SELECT to_regclass(%s) IS NOT NULL", [name])
        if row is None or not row[0]:
            return None
        query = sql.SQL("SELECT COALESCE(max(version), 0) FROM {}").format(
            self._identifiers["migrations"]
        )
        row = await _fetchone(conn, query)
        return int(row[0]) if row is not None else 0

    def _too_new(self, version: int) -> SchemaVersionError:
        return SchemaVersionError(
            f"the rexecutor schema {self._schema!r} in database {self._target.dbname!r} is at "
            f"version {version}, but this version of rexecutor only knows versions up to "
            f"{SCHEMA_VERSION}: upgrade rexecutor on this node"
        )

    async def _check_version(self, conn: Conn) -> None:
        version = await self._stored_version(conn)
        if version is None or version < SCHEMA_VERSION:
            found = "no rexecutor tables" if version is None else f"version {version}"
            raise BackendError(
                f"schema {self._schema!r} in database {self._target.dbname!r} has {found}, but "
                f"this rexecutor needs version {SCHEMA_VERSION}: run `await backend.migrate()` "
                "or connect with migrate=True"
            )
        if version > SCHEMA_VERSION:
            raise self._too_new(version)

    async def _migrate_on(self, conn: Conn) -> int:
        ids = self._identifiers
        async with _atomic(conn):
            await _execute(conn, "SELECT pg_advisory_xact_lock(%s)", [self._lock_key("migrate")])
            row = await _fetchone(
                conn,
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)",
                [self._schema],
            )
            if not (row and row[0]):
                await _execute(conn, sql.SQL("CREATE SCHEMA {}").format(ids["schema"]))
            version = await self._stored_version(conn)
            if version is None:
                await _execute(
                    conn,
                    sql.SQL(
                        "CREATE TABLE {} (version integer PRIMARY KEY, description text NOT "
                        "NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                    ).format(ids["migrations"]),
                )
                version = 0
            if version > SCHEMA_VERSION:
                raise self._too_new(version)
            for number, description, statements in _MIGRATIONS:
                if number <= version:
                    continue
                for statement in statements:
                    await _execute(conn, self._render(statement))
                await _execute(
                    conn,
                    sql.SQL("INSERT INTO {} (version, description) VALUES (%s, %s)").format(
                        ids["migrations"]
                    ),
                    [number, description],
                )
                logger.info(
                    "rexecutor: migrated schema %r to version %d (%s)",
                    self._schema,
                    number,
                    description,
                )
            return max(version, SCHEMA_VERSION)

    # -- wake-ups ----------------------------------------------------------------------------

    def subscribe(self, executors: Collection[str] | None = None) -> Subscription:
        """Register for wake-ups and make sure the notification listener runs on this loop."""
        sub = super().subscribe(executors)
        self._ensure_listener()
        return sub

    def _ensure_listener(self) -> None:
        if not self._connected:
            return
        loop = asyncio.get_running_loop()
        task = self._listener_task
        if task is not None and not task.done():
            if self._listener_loop is loop:
                return
            old = self._listener_loop
            if old is not None and not old.is_closed():
                with contextlib.suppress(RuntimeError):
                    old.call_soon_threadsafe(task.cancel)
        self._listening = asyncio.Event()
        self._listener_loop = loop
        self._listener_task = loop.create_task(
            self._listen(), name=f"rexecutor-listener-{self._schema}"
        )

    async def _stop_listener(self) -> None:
        task, self._listener_task = self._listener_task, None
        if task is None or task.done():
            return
        loop = self._listener_loop
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - close() is async, so a loop runs
            current = None
        if loop is current:
            task.cancel()
            await asyncio.wait([task])
        elif loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)

    async def _listen(self) -> None:
        """LISTEN forever, reconnecting with backoff; wake everyone after each reconnect."""
        delay = _LISTEN_BACKOFF[0]
        connected_before = False
        missed = False
        while True:
            conn: Conn | None = None
            try:
                conn = await self._open_connection()
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                await conn.execute(
                    sql.SQL("LISTEN {}").format(sql.Identifier(self._cancel_channel))
                )
                self._listener_pid = conn.info.backend_pid
                if connected_before or missed:
                    self.notify()  # catch up on whatever happened while nobody listened
                connected_before, missed = True, False
                delay = _LISTEN_BACKOFF[0]
                self._listening.set()
                while True:
                    async for note in conn.notifies(timeout=_LISTEN_PING):
                        if note.channel == self._cancel_channel:
                            if note.pid not in self._own_pids():
                                self.notify_cancellation()
                        else:
                            self._on_notification(note.payload, note.pid)
                    await conn.execute("SELECT 1")  # detect a silently dead connection
            except Exception as exc:
                missed = True
                logger.warning(
                    "rexecutor: the notification listener of schema %r lost its connection "
                    "(%s); reconnecting in %.1f s",
                    self._schema,
                    _first_line(exc),
                    delay,
                )
            finally:
                self._listening.clear()
                self._listener_pid = None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LISTEN_BACKOFF[1])

    def _on_notification(self, payload: object, pid: int) -> None:
        """Handle one notification: an untrusted hint, compared only as an executor name."""
        if not isinstance(payload, str) or len(payload) > _MAX_PAYLOAD:
            return
        if pid in self._own_pids():
            return  # this backend already woke its subscribers
        self.notify(payload or None)

    def _own_pids(self) -> set[int]:
        pids = set()
        for conn in list(self._own_conns):
            if not conn.closed:
                with contextlib.suppress(Exception):
                    pids.add(conn.info.backend_pid)
        return pids

    def _wake(self, executors: Collection[str]) -> None:
        for executor in set(executors):
            self.notify(executor)

    # -- enqueue -----------------------------------------------------------------------------

    async def enqueue(
        self, job: EnqueuableJob, *, connection: psycopg.AsyncConnection[Any] | None = None
    ) -> EnqueueResult:
        """Store ``job``, or resolve its uniqueness conflict; atomic and concurrency-safe.

        Args:
            job: the job to store.
            connection: run the insert on this connection, inside its current transaction:
                the job exists only if that transaction commits, and other nodes are woken
                when it does. A connection in autocommit mode outside a transaction commits
                at once. Unique jobs need READ COMMITTED (the default isolation level).

        Example:
            >>> async with await psycopg.AsyncConnection.connect(url) as conn:
            ...     async with conn.transaction():
            ...         await conn.execute("INSERT INTO orders (id) VALUES (%s)", [42])
            ...         await backend.enqueue(
            ...             EnqueuableJob("ship", {"order": 42}), connection=conn
            ...         )
        """
        [result] = await self._enqueue_batch([job], connection)
        return result

    async def enqueue_many(
        self,
        jobs: Sequence[EnqueuableJob],
        *,
        connection: psycopg.AsyncConnection[Any] | None = None,
    ) -> list[EnqueueResult]:
        """Store many jobs in one transaction; results come back in the order of ``jobs``.

        Jobs without uniqueness criteria go in with one multi-row INSERT; unique ones are
        resolved one by one, in order, against the stored jobs and the earlier jobs of the
        batch. ``connection`` works as for :meth:`enqueue`.
        """
        return await self._enqueue_batch(jobs, connection)

    async def _enqueue_batch(
        self, jobs: Sequence[EnqueuableJob], connection: Conn | None
    ) -> list[EnqueueResult]:
        limit = self.max_payload_bytes
        prepared = [_Prepared.of(job, limit) for job in jobs]
        if not prepared:
            return []

        async def work(conn: Conn) -> tuple[list[EnqueueResult], set[str]]:
            return await self._enqueue_on(conn, prepared)

        if connection is None:
            results, wakes = await self._run(work)
            self._wake(wakes)
            return results
        try:
            results, _ = await work(connection)
        except psycopg.Error as exc:
            raise self._translate(exc) from exc
        except UnicodeError as exc:
            raise ValidationError(f"a value cannot be encoded for PostgreSQL: {exc}") from exc
        return results

    async def _enqueue_on(
        self, conn: Conn, prepared: list[_Prepared]
    ) -> tuple[list[EnqueueResult], set[str]]:
        wakes: set[str] = set()
        if all(p.job.uniqueness is None for p in prepared):
            ids = await self._insert_plain(conn, prepared)
            wakes.update(p.job.executor for p in prepared)
            return [EnqueueResult(JobId(i)) for i in ids], wakes
        if conn.isolation_level in (
            psycopg.IsolationLevel.REPEATABLE_READ,
            psycopg.IsolationLevel.SERIALIZABLE,
        ):
            raise ConfigurationError(
                "unique jobs can only be enqueued on a READ COMMITTED connection: under "
                f"{conn.isolation_level.name} the duplicate check could miss jobs committed "
                "by other transactions"
            )
        results: list[EnqueueResult] = []
        async with _atomic(conn):
            await self._take_unique_locks(conn, prepared)
            run: list[_Prepared] = []
            for item in [*prepared, None]:
                if item is not None and item.job.uniqueness is None:
                    run.append(item)
                    continue
                if run:
                    ids = await self._insert_plain(conn, run)
                    results.extend(EnqueueResult(JobId(i)) for i in ids)
                    wakes.update(p.job.executor for p in run)
                    run = []
                if item is not None:
                    result, wake = await self._insert_unique(conn, item)
                    results.append(result)
                    if wake is not None:
                        wakes.add(wake)
        return results, wakes

    async def _insert_plain(self, conn: Conn, prepared: list[_Prepared]) -> list[int]:
        if len(prepared) == 1:
            row = await _fetchone(conn, self._q["insert"], prepared[0].params())
            assert row is not None
            return [int(row[0])]
        params = {
            "executor": [p.job.executor for p in prepared],
            "data": [p.data for p in prepared],
            "metadata": [p.metadata for p in prepared],
            "max_attempts": [p.job.max_attempts for p in prepared],
            "priority": [p.job.priority for p in prepared],
            "scheduled_at": [p.scheduled_at for p in prepared],
        }
        if any(p.tags for p in prepared):
            params["tags"] = [_TAGS_TEXT(p.tags) if p.tags else "[]" for p in prepared]
            statement = self._q["insert_many"]
        else:
            statement = self._q["insert_many_untagged"]
        rows = await _fetchall(conn, statement, params)
        # Identities are drawn in the order of the SELECT (ordered by position), so sorting the
        # ids restores the order of the batch.
        return sorted(int(r[0]) for r in rows)

    async def _take_unique_locks(self, conn: Conn, prepared: list[_Prepared]) -> None:
        """Take the advisory locks of every unique job, sorted by name, exclusive when any
        job needs it exclusive."""
        wanted: dict[str, bool] = {}
        for p in prepared:
            criteria = p.job.uniqueness
            if criteria is None:
                continue
            for name, exclusive in criteria.lock_names(p.job.executor):
                wanted[name] = wanted.get(name, False) or exclusive
        calls = [
            sql.SQL(
                "pg_advisory_xact_lock(%s)" if wanted[name] else "pg_advisory_xact_lock_shared(%s)"
            )
            for name in sorted(wanted)
        ]
        keys = [self._lock_key("unique", name) for name in sorted(wanted)]
        await _execute(conn, sql.SQL("SELECT ") + sql.SQL(", ").join(calls), keys)

    def _unique_statement(self, job: EnqueuableJob) -> bytes:
        criteria = job.uniqueness
        assert criteria is not None
        replace_fields = (
            tuple(sorted(criteria.replace.fields)) if criteria.replace is not None else None
        )
        shape = (
            criteria.key is not None,
            criteria.executor,
            criteria.window is not None,
            replace_fields,
        )
        cached = self._unique_cache.get(shape)
        if cached is not None:
            return cached
        filters = ""
        if criteria.key is not None:
            filters += " AND j.uniqueness_key = %(key)s"
        if criteria.executor:
            filters += " AND j.executor = %(executor)s"
        if criteria.window is not None:
            filters += (
                f" AND j.scheduled_at BETWEEN {_before('window', 'new.at')}"
                f" AND {_after('window', 'new.at')}"
            )
        values = {
            "scheduled_at": "new.at",
            "data": "%(data)s::jsonb",
            "metadata": "%(metadata)s::jsonb",
            "priority": "%(priority)s",
            "max_attempts": "%(max_attempts)s",
        }
        if replace_fields:
            sets = ", ".join(f"{field} = {values[field]}" for field in replace_fields)
            replaced = f"""
                replaced AS (
                    UPDATE {{jobs}} AS j SET {sets}
                    FROM found, new
                    WHERE j.id = found.id AND found.status = ANY(%(replace_statuses)s::text[])
                    RETURNING j.id, j.status, j.executor
                ),"""
            tail = """
                SELECT found.id, true, replaced.status, replaced.executor
                FROM found LEFT JOIN replaced ON replaced.id = found.id"""
        else:
            replaced = ""
            tail = "SELECT found.id, true, NULL::text, NULL::text FROM found"
        template = f"""
            WITH new AS (SELECT COALESCE(%(scheduled_at)s::timestamptz, now()) AS at),
            found AS (
                SELECT j.id, j.status FROM {{jobs}} AS j, new
                WHERE j.status = ANY(%(statuses)s::text[]){filters}
                ORDER BY j.id
                LIMIT 1
                FOR UPDATE OF j
            ),{replaced}
            inserted AS (
                INSERT INTO {{jobs}}
                    (executor, data, metadata, max_attempts, priority, tags, uniqueness_key,
                     scheduled_at)
                SELECT %(executor)s, %(data)s::jsonb, %(metadata)s::jsonb, %(max_attempts)s,
                       %(priority)s, %(tags)s::text[], %(key)s::bigint, new.at
                FROM new
                WHERE NOT EXISTS (SELECT 1 FROM found)
                RETURNING id, status, executor
            )
            SELECT id, false, status, executor FROM inserted
            UNION ALL
            {tail}
        """
        statement = self._render(template)
        self._unique_cache[shape] = statement
        return statement

    async def _insert_unique(self, conn: Conn, item: _Prepared) -> tuple[EnqueueResult, str | None]:
        criteria = item.job.uniqueness
        assert criteria is not None
        params = item.params()
        params["key"] = criteria.key
        params["statuses"] = sorted(JobStatus(s).value for s in criteria.statuses)
        params["window"] = criteria.window
        if criteria.replace is not None:
            params["replace_statuses"] = sorted(
                JobStatus(s).value for s in criteria.replace.statuses
            )
        row = await _fetchone(conn, self._unique_statement(item.job), params)
        assert row is not None
        job_id, duplicate, status, executor = row
        wake = executor if status in JobStatus.READY else None
        return EnqueueResult(JobId(job_id), duplicate=bool(duplicate)), wake

    # -- claiming and transitions ------------------------------------------------------------

    async def claim_ready_jobs(
        self, executor: str, limit: int, node_id: str
    ) -> list[Job[Any, Any]]:
        """Claim up to ``limit`` due jobs of ``executor`` in one statement (SKIP LOCKED).

        Cancelling the caller cannot strand jobs: the claim runs to its end shielded, and
        whatever it claimed is handed straight back (attempt given back, still due).
        """
        if limit <= 0:
            return []
        jobs: list[Job[Any, Any]] = []
        held: list[Row] = []  # the rows of ``jobs``, handed back if the caller goes away
        want = int(limit)
        while True:
            params = {"executor": executor, "limit": want, "node": node_id}

            async def work(conn: Conn, params: dict[str, Any] = params) -> list[Row]:
                return await _fetchall(conn, self._q["claim"], params, binary=True)

            claim = asyncio.ensure_future(self._run(work, verify=False))
            try:
                rows = await asyncio.shield(claim)
            except asyncio.CancelledError:
                await self._give_back(claim, node_id, held)
                raise
            unreadable: list[tuple[Row, Job[Any, Any], RowReader]] = []
            for row in rows:
                job, reader = _read_claimed(row)
                if reader is None:
                    jobs.append(job)
                    held.append(row)
                else:
                    unreadable.append((row, job, reader))
            if not unreadable:
                break
            poison = [(job, reader) for _, job, reader in unreadable]
            aside = asyncio.ensure_future(self._set_aside(poison, node_id))
            try:
                await asyncio.shield(aside)
            except BaseException:
                # Whatever was claimed goes back; the unreadable rows are set aside next time.
                await asyncio.wait([aside])
                await self._give_back(None, node_id, [*held, *(r for r, _, _ in unreadable)])
                raise
            # Rows set aside must not take the places of the good jobs behind them; each round
            # discards what it could not read, so this ends.
            if len(rows) < want:
                break
            want = len(unreadable)
        jobs.sort(key=lambda j: (j.priority, j.scheduled_at, j.id))
        return jobs

    async def _set_aside(self, items: list[tuple[Job[Any, Any], RowReader]], node_id: str) -> None:
        """Discard claimed jobs whose rows cannot be read, writing readable stand-ins."""

        async def work(conn: Conn) -> None:
            for job, reader in items:
                stored = await _fetchone(conn, self._q["stored_times"], {"id": int(job.id)})
                assert stored is not None
                for name, text in zip(("inserted_at", "scheduled_at"), stored, strict=True):
                    moment = job.inserted_at if name == "inserted_at" else job.scheduled_at
                    if not schedulable(moment):
                        reader.note(name, text, "is outside what enqueue accepts", None)
                repairs = {
                    name: _JSON_ENCODE(str(getattr(job, name)))
                    if type(getattr(job, name)) is _UnreadableJson
                    else None
                    for name in ("data", "metadata")
                }
                params = {
                    "id": int(job.id),
                    "node": node_id,
                    "attempt": job.attempt,
                    "errors": _JSON_ENCODE([e.to_json() for e in job.errors]),
                    **repairs,
                    **_error_params(poison_failure(reader.problems)),
                }
                await _execute(conn, self._q["set_aside"], params)
                logger.warning(
                    "rexecutor: job %s of executor %r cannot be read and was discarded: %s",
                    int(job.id),
                    job.executor,
                    "; ".join(reader.problems),
                )

        await self._run(work)

    async def _give_back(
        self, claim: asyncio.Future[list[Row]] | None, node_id: str, earlier: list[Row]
    ) -> None:
        """Undo a claim whose caller was cancelled, once the claim itself has finished.

        ``earlier``: rows claimed before by the same call, handed back with it.
        """
        rows = list(earlier)
        if claim is not None:
            await asyncio.wait([claim])
            if not claim.cancelled() and claim.exception() is None:
                rows.extend(claim.result())
        if not rows:
            return
        at_id, at_attempt, at_executor = (
            _COLUMN_NAMES.index(name) for name in ("id", "attempt", "executor")
        )
        params = {
            "ids": [row[at_id] for row in rows],
            "attempts": [row[at_attempt] for row in rows],
            "node": node_id,
        }

        async def work(conn: Conn) -> int:
            return await _execute(conn, self._q["give_back"], params)

        try:
            await self._run(work, retry=True)
        except RexecutorError as exc:  # pragma: no cover - the rescue takes over
            logger.warning(
                "rexecutor: could not hand back the jobs %s of a cancelled claim: %s",
                params["ids"],
                exc,
            )
            return
        self._wake([row[at_executor] for row in rows])

    async def next_scheduled_at(self, executors: Collection[str]) -> datetime | None:
        """The earliest ``scheduled_at`` of a scheduled or retryable job of ``executors``."""
        names = sorted(set(executors))
        if not names:
            return None

        async def work(conn: Conn) -> Row | None:
            return await _fetchone(conn, self._q["next_scheduled_at"], {"executors": names})

        row = await self._run(work, retry=True)
        return _utc(row[0]) if row is not None else None

    async def _fenced(
        self, statement: str, job_id: int, params: dict[str, Any], *, wake: bool
    ) -> bool:
        job_id = int(job_id)
        if not _in_int64(job_id):
            raise JobNotFound(job_id)
        params = {**params, "id": job_id}

        async def work(conn: Conn) -> Row | None:
            return await _fetchone(conn, self._q[statement], params)

        row = await self._run(work, retry=True)
        assert row is not None
        executor, exists = row
        if executor is not None:
            if wake:
                self.notify(executor)
            return True
        if not exists:
            raise JobNotFound(job_id)
        return False

    @staticmethod
    def _lease(lease: Lease) -> dict[str, Any]:
        return {"node": lease.node_id, "attempt": int(lease.attempt)}

    async def mark_job_complete(self, job_id: int, lease: Lease) -> bool:
        """Executing → complete, fenced by ``lease``."""
        return await self._fenced("complete", job_id, self._lease(lease), wake=False)

    async def complete_jobs(self, completions: Sequence[tuple[int, Lease]]) -> list[bool]:
        """Complete many executing jobs with one statement, each fenced by its own lease.

        Like completing them one by one: an unknown id raises ``JobNotFound`` after the
        completions before it took effect, and a completion repeated in the batch applies
        once (the repeat reports False, the job being complete already).
        """
        if not completions:
            return []
        firsts: dict[tuple[int, str, int], int] = {}  # each distinct item -> its ordinal
        ordinals: list[int] = []  # the ordinal of every position's item
        repeats = False
        for job_id, lease in completions:
            item = (int(job_id), lease.node_id, int(lease.attempt))
            if not _in_int64(item[0]):
                raise JobNotFound(item[0])
            ordinal = firsts.get(item)
            if ordinal is None:
                ordinal = firsts[item] = len(firsts) + 1
            else:
                repeats = True
            ordinals.append(ordinal)
        items = list(firsts)
        nodes = {node for _, node, _ in items}
        params: dict[str, Any] = {
            "ids": [job_id for job_id, _, _ in items],
            "attempts": [attempt for _, _, attempt in items],
        }
        if len(nodes) == 1:
            statement = self._q["complete_many_one_node"]
            params["node"] = items[0][1]
        else:
            statement = self._q["complete_many"]
            params["nodes"] = [node for _, node, _ in items]

        async def work(conn: Conn) -> Row | None:
            return await _fetchone(conn, statement, params)

        row = await self._run(work, retry=True)
        assert row is not None
        missing, done = row
        if missing is not None:
            raise JobNotFound(items[missing - 1][0])
        done_set = set(done or ())
        if not repeats:
            return [ordinal in done_set for ordinal in ordinals]
        seen: set[int] = set()
        results = []
        for ordinal in ordinals:
            results.append(ordinal in done_set and ordinal not in seen)
            seen.add(ordinal)
        return results

    async def mark_job_retryable(
        self, job_id: int, lease: Lease, delay: timedelta, error: FailureRecord
    ) -> bool:
        """Executing → retryable at now + ``delay``, appending ``error``; fenced."""
        params = {**self._lease(lease), **_error_params(error), "delay": storable_delay(delay)}
        return await self._fenced("retryable", job_id, params, wake=True)

    async def mark_job_discarded(self, job_id: int, lease: Lease, error: FailureRecord) -> bool:
        """Executing → discarded, appending ``error``; fenced."""
        params = {**self._lease(lease), **_error_params(error)}
        return await self._fenced("discarded", job_id, params, wake=False)

    async def mark_job_snoozed(
        self, job_id: int, lease: Lease, delay: timedelta, error: FailureRecord | None = None
    ) -> bool:
        """Executing → scheduled/retryable at now + ``delay``, giving the attempt back; fenced."""
        params: dict[str, Any] = {**self._lease(lease), "delay": storable_delay(delay)}
        if error is None:
            return await self._fenced("snoozed", job_id, params, wake=True)
        params.update(_error_params(error))
        return await self._fenced("snoozed_with_error", job_id, params, wake=True)

    async def mark_job_cancelled(
        self, job_id: int, lease: Lease | None, error: FailureRecord
    ) -> bool:
        """→ cancelled, appending ``error``: fenced with a lease, any unfinished job without."""
        if lease is None:
            cancelled = await self._fenced("cancelled", job_id, _error_params(error), wake=False)
            if cancelled:
                # Nodes running the job learn of the cancel from this notification at once,
                # not at their next periodic check.
                channel = self._cancel_channel

                async def announce(conn: Conn) -> None:
                    await conn.execute("SELECT pg_notify(%s, '')", (channel,))

                await self._run(announce)
                self.notify_cancellation()
            return cancelled
        params = {**self._lease(lease), **_error_params(error)}
        return await self._fenced("cancelled_fenced", job_id, params, wake=False)

    async def rerun_job(self, job_id: int) -> None:
        """Run a job again now (see :meth:`Backend.rerun_job`)."""
        job_id = int(job_id)
        if not _in_int64(job_id):
            raise JobNotFound(job_id)

        async def work(conn: Conn) -> Row | None:
            return await _fetchone(conn, self._q["rerun"], {"id": job_id})

        row = await self._run(work)
        assert row is not None
        executor, status = row
        if executor is not None:
            self.notify(executor)
            return
        if status is None:
            raise JobNotFound(job_id)
        raise InvalidTransition(
            f"job {job_id} is executing and cannot be rerun; cancel it first, or wait for it "
            "to finish"
        )

    async def _exists(self, job_id: int) -> bool:
        if not _in_int64(job_id):
            return False

        async def work(conn: Conn) -> Row | None:
            return await _fetchone(conn, self._q["exists"], {"id": job_id})

        row = await self._run(work, retry=True)
        return bool(row and row[0])

    async def update_job(self, job: Job[Any, Any]) -> None:
        """Write data, metadata, max_attempts, priority, tags and scheduled_at; nothing else."""
        job_id = int(job.id)
        try:
            encoded, scheduled_at = validate_update(job, self.max_payload_bytes)
        except ValidationError:
            if not await self._exists(job_id):
                raise JobNotFound(job_id) from None
            raise
        if not _in_int64(job_id):
            raise JobNotFound(job_id)
        params = {
            "id": job_id,
            "data": encoded.data,
            "metadata": encoded.metadata,
            "max_attempts": job.max_attempts,
            "priority": job.priority,
            "tags": list(job.tags),
            "scheduled_at": scheduled_at,
        }

        async def work(conn: Conn) -> Row | None:
            return await _fetchone(conn, self._q["update"], params)

        row = await self._run(work, retry=True)
        if row is None:
            raise JobNotFound(job_id)
        executor, status = row
        if status in JobStatus.READY:
            self.notify(executor)

    # -- reading and housekeeping ------------------------------------------------------------

    async def query(
        self,
        where: QueryNode,
        *,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[Job[Any, Any]]:
        """Jobs matching ``where``, oldest first by id (or newest first), with paging."""
        params: list[Any] = []
        condition = _compile(where, params)
        statement = sql.SQL(
            "SELECT {columns} FROM {jobs} WHERE {condition} ORDER BY id {direction} "
            "LIMIT %s OFFSET %s"
        ).format(
            columns=sql.SQL(_COLUMNS),
            jobs=self._identifiers["jobs"],
            condition=condition,
            direction=sql.SQL("DESC" if newest_first else "ASC"),
        )
        params.extend([limit, offset])

        async def work(conn: Conn) -> list[Row]:
            return await _fetchall(conn, statement, params, binary=True)

        return [_read_job(row) for row in await self._run(work, retry=True)]

    async def get_job(self, job_id: int) -> Job[Any, Any]:
        """The job with this id, or ``JobNotFound``."""
        job_id = int(job_id)
        if not _in_int64(job_id):
            raise JobNotFound(job_id)
        found = await self.query(IdIn((job_id,)))
        if not found:
            raise JobNotFound(job_id)
        return found[0]

    async def prune_jobs(self, spec: PruneSpec, batch_size: int = 1000) -> int:
        """Delete what ``spec`` selects, oldest first, ``batch_size`` rows per transaction.

        One node prunes at a time: each batch takes a transaction advisory lock with
        ``pg_try_advisory_xact_lock``, and when another node holds it this call stops and
        returns what it deleted so far (0 if nothing).
        """
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be at least 1, got {batch_size}")
        status = JobStatus(spec.status)
        extra = ""
        params: dict[str, Any] = {"batch": batch_size, "lock": self._lock_key("prune")}
        if spec.only is not None:
            extra += " AND executor = ANY(%(only)s::text[])"
            params["only"] = sorted(spec.only)
        if spec.exclude:
            extra += " AND NOT (executor = ANY(%(exclude)s::text[]))"
            params["exclude"] = sorted(spec.exclude)
        selected = f"status = {sql.Literal(status.value).as_string(None)}{extra}"
        if spec.max_length is not None:
            params["keep"] = spec.max_length
            boundary_query = self._render(
                f"SELECT {_FINISHED_AT}, id FROM {{jobs}} WHERE {selected} "
                f"ORDER BY {_FINISHED_AT} DESC, id DESC OFFSET %(keep)s LIMIT 1"
            )
            condition = f"({_FINISHED_AT}, id) <= (%(b_at)s, %(b_id)s)"
        else:
            assert spec.max_age is not None
            params["age"] = spec.max_age
            boundary_query = None
            condition = f"{_FINISHED_AT} < {_before('age')}"
        delete = self._render(
            f"DELETE FROM {{jobs}} WHERE id IN ("
            f"SELECT id FROM {{jobs}} WHERE {selected} AND {condition} "
            f"ORDER BY {_FINISHED_AT}, id LIMIT %(batch)s) AND {selected}"
        )
        boundary: Row | None = None

        async def batch(conn: Conn) -> int | None:
            nonlocal boundary
            async with _atomic(conn):
                row = await _fetchone(conn, self._q["try_lock"], {"key": params["lock"]})
                if not (row and row[0]):
                    return None
                if boundary_query is not None and boundary is None:
                    boundary = await _fetchone(conn, boundary_query, params)
                    if boundary is None:
                        return 0
                    params["b_at"], params["b_id"] = boundary
                return await _execute(conn, delete, params)

        total = 0
        while True:
            deleted = await self._run(batch)
            if deleted is None:
                return total
            total += deleted
            if deleted < batch_size:
                return total

    async def record_heartbeat(self, node: NodeInfo) -> None:
        """Record that ``node`` is alive now (inserting it on its first beat)."""
        params = {"node_id": node.node_id, "host": node.host, "pid": int(node.pid)}

        async def work(conn: Conn) -> int:
            return await _execute(conn, self._q["heartbeat"], params)

        await self._run(work, retry=True)

    async def remove_node(self, node_id: str) -> None:
        """Forget a node that stopped cleanly."""

        async def work(conn: Conn) -> int:
            return await _execute(conn, self._q["remove_node"], {"node_id": node_id})

        await self._run(work, retry=True)

    async def count_jobs(self) -> dict[tuple[str, JobStatus], int]:
        """How many jobs each executor has in each status."""

        async def work(conn: Conn) -> list[Row]:
            return await _fetchall(conn, self._q["count_jobs"])

        rows = await self._run(work, retry=True)
        return tally(rows)

    async def finished_per_minute(self, since: timedelta) -> list[tuple[datetime, JobStatus, int]]:
        """Jobs finished within the last ``since``, per minute and terminal status."""

        async def work(conn: Conn) -> list[Row]:
            return await _fetchall(conn, self._q["finished_per_minute"], {"since": since})

        rows = await self._run(work, retry=True)
        return [(_utc_required(bucket), JobStatus(status), int(n)) for bucket, status, n in rows]

    async def list_nodes(self) -> list[NodeInfo]:
        """Nodes that have recorded a heartbeat, most recent first."""

        async def work(conn: Conn) -> list[Row]:
            return await _fetchall(conn, self._q["list_nodes"])

        return [
            NodeInfo(
                node_id=node_id,
                host=host,
                pid=int(pid),
                started_at=_utc(started_at),
                heartbeat_at=_utc(heartbeat_at),
            )
            for node_id, host, pid, started_at, heartbeat_at in await self._run(work, retry=True)
        ]

    async def rescue_orphaned_jobs(self, dead_after: timedelta) -> list[JobId]:
        """Hand back the jobs of nodes silent for longer than ``dead_after``.

        One node rescues at a time (``pg_try_advisory_xact_lock``); while another node does,
        this returns ``[]``.
        """
        params = {
            "dead_after": dead_after,
            "error_type": ErrorType.ORPHANED.value,
            "key": self._lock_key("rescue"),
        }

        async def work(conn: Conn) -> list[Row]:
            async with _atomic(conn):
                row = await _fetchone(conn, self._q["try_lock"], {"key": params["key"]})
                if not (row and row[0]):
                    return []
                return await _fetchall(conn, self._q["rescue"], params)

        rows = await self._run(work)
        self._wake([executor for _, executor, status in rows if status in JobStatus.READY])
        return [JobId(job_id) for job_id, _, _ in rows]

    async def lost_jobs(self, node_id: str, leases: dict[int, int]) -> list[int]:
        """Of the jobs ``node_id`` runs (id → attempt), those it no longer holds."""
        if not leases:
            return []
        lost = [job_id for job_id in leases if not _in_int64(int(job_id))]
        items = [(int(j), int(a)) for j, a in leases.items() if _in_int64(int(j))]
        params = {
            "ids": [j for j, _ in items],
            "attempts": [a for _, a in items],
            "node": node_id,
        }

        async def work(conn: Conn) -> list[Row]:
            return await _fetchall(conn, self._q["lost_jobs"], params)

        found = {int(row[0]) for row in await self._run(work, retry=True)}
        return [job_id for job_id in leases if int(job_id) in found or job_id in lost]


# -- query translation -----------------------------------------------------------------------


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


# -- errors ----------------------------------------------------------------------------------


def _describe_connect_failure(exc: psycopg.Error, target: _Target) -> str:
    """A clear message for a failed connection attempt, naming what went wrong."""
    text = str(exc)
    lowered = text.lower()
    where = f"the PostgreSQL server at {target.address}"
    if "database" in lowered and "does not exist" in lowered:
        return (
            f'database "{target.dbname}" does not exist on {where}: create it, or fix the '
            "database name in the connection URL"
        )
    if "role" in lowered and "does not exist" in lowered:
        return (
            f'role "{target.user}" does not exist on {where}: fix the user name in the '
            "connection URL"
        )
    if "password authentication failed" in lowered or "authentication failed" in lowered:
        return (
            f'authentication failed for role "{target.user}" on {where}: check the user name '
            "and password"
        )
    if "no password supplied" in lowered or "password is required" in lowered:
        return f'{where} requires a password for role "{target.user}", and none was given'
    if "permission denied for database" in lowered or "not permitted to log in" in lowered:
        return (
            f'insufficient privileges: role "{target.user}" may not connect to database '
            f'"{target.dbname}" on {where} ({_first_line(exc)})'
        )
    if "no pg_hba.conf entry" in lowered:
        return (
            f'{where} refuses connections from this host for role "{target.user}" '
            f"(pg_hba.conf): {_first_line(exc)}"
        )
    reasons = (
        "connection refused",
        "could not connect",
        "timeout expired",
        "timed out",
        "failed to resolve host",
        "could not translate host name",
        "name or service not known",
        "no route to host",
        "network is unreachable",
        "server closed the connection",
        "no such file or directory",
    )
    detail = " ".join(line.strip() for line in text.splitlines() if line.strip())
    if any(reason in lowered for reason in reasons):
        return f"cannot reach {where}: {detail}"
    return f"cannot connect to {where}: {detail}"


def _translate(exc: psycopg.Error, target: _Target, schema: str) -> RexecutorError:
    """Turn a psycopg error into the rexecutor error a caller can act on."""
    if isinstance(exc, (psycopg.DataError, psycopg.IntegrityError)):
        detail = getattr(getattr(exc, "diag", None), "message_detail", None)
        extra = f" ({detail})" if detail else ""
        return ValidationError(f"PostgreSQL rejected a value: {_first_line(exc)}{extra}")
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return BackendError(
            f'insufficient privileges for role "{target.user}" in database "{target.dbname}" '
            f"on {target.address}: {_first_line(exc)}. The role needs USAGE on schema "
            f'"{schema}" and SELECT, INSERT, UPDATE and DELETE on its rexecutor tables (and '
            "CREATE on the schema, or on the database, to run migrations)"
        )
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return BackendError(
            f'the rexecutor tables are missing from schema "{schema}" in database '
            f'"{target.dbname}": run `await backend.migrate()` ({_first_line(exc)})'
        )
    if isinstance(exc, psycopg.OperationalError) and _is_connection_loss(exc):
        return BackendError(
            f"lost the connection to the PostgreSQL server at {target.address}: {_first_line(exc)}"
        )
    state = f" ({exc.sqlstate})" if exc.sqlstate else ""
    return BackendError(f"PostgreSQL error{state}: {_first_line(exc)}")
