"""The SQL of every operation, as templates rendered once per backend.

Placeholders in braces are identifiers (``{jobs}``, ``{nodes}``), filled in per schema, and
``{live}``: in the partitioned layout, a condition that every live job meets (its partition
key is NULL), which lets PostgreSQL look in the live partition alone instead of probing every
day's; empty otherwise. ``%(name)s`` are parameters. Every statement that needs the time
takes it from the ``now`` parameter (``_NOW``): the test clock's time while one is installed,
else NULL, which reads as the database's ``now()`` (one value per transaction).
"""

from __future__ import annotations

from typing import Final

from rexecutor._payload import EARLIEST, LATEST
from rexecutor.backends.postgres.codec import _COLUMN_NAMES, _TIME_COLUMNS

#: Longest notification payload the listener accepts (the trigger sends '' beyond 1000 bytes).
_MAX_PAYLOAD: Final = 1000
#: Longest payload of a "jobs finished" notification (ids, comma-separated), below NOTIFY's
#: limit of 8000 bytes.
_MAX_FINISHED_PAYLOAD: Final = 7900

_READY_SQL: Final = "('scheduled', 'retryable')"
_TERMINAL_SQL: Final = "('complete', 'cancelled', 'discarded')"
_FINISHED_AT: Final = "COALESCE(completed_at, cancelled_at, discarded_at, scheduled_at)"
#: "Now": the test clock's time when one is installed (the ``now`` parameter), else the
#: database clock. A stable expression, so the claim's index condition still uses it.
_NOW: Final = "COALESCE(%(now)s::timestamptz, now())"
#: The same as ISO 8601 text in UTC, whatever the session's time zone.
_NOW_TEXT: Final = (
    "to_char(" + _NOW + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
)


def _error_entry(attempt: str) -> str:
    """SQL for a one-element jsonb array holding a ``JobError.to_json()`` object stamped with
    ``attempt`` (SQL) and now, from the parameters error_type, details, error_name and
    traceback."""
    return (
        f"jsonb_build_array(jsonb_build_object('attempt', {attempt}, "
        "'type', %(error_type)s::text, 'details', %(details)s::text, 'at', "
        + _NOW_TEXT
        + ", 'name', %(error_name)s::text, 'traceback', %(traceback)s::text))"
    )


def _after(delay_param: str, base: str = _NOW) -> str:
    """SQL for ``base + delay``, computed in UTC so that no session time zone changes it."""
    return f"((({base}) AT TIME ZONE 'UTC' + %({delay_param})s::interval) AT TIME ZONE 'UTC')"


def _before(delay_param: str, base: str = _NOW) -> str:
    """SQL for ``base - delay``, computed in UTC."""
    return f"((({base}) AT TIME ZONE 'UTC' - %({delay_param})s::interval) AT TIME ZONE 'UTC')"


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


# -- statements ------------------------------------------------------------------------------

#: The fence of a claimed job (the set-aside of an unreadable row, fenced by its claim).
_HELD: Final = (
    "id = %(id)s AND status = 'executing' AND attempted_by = %(node)s AND attempt = %(attempt)s"
)


def _stamp(column: str, status: str) -> str:
    """SQL for a finished-time ``column`` after a transition: now when the new status is
    ``status``, cleared on a reopen, else unchanged."""
    return (
        f"{column} = CASE WHEN %(status)s::text = '{status}' THEN {_NOW} "
        f"WHEN %(reopen)s::boolean THEN NULL ELSE {column} END"
    )


#: Ids per "jobs finished" payload written by SQL: a bigint has at most 19 digits, so this
#: many (with their commas) stay within ``_MAX_FINISHED_PAYLOAD``.
_IDS_PER_NOTICE: Final = _MAX_FINISHED_PAYLOAD // 20


def _complete_many(*, one_node: bool, with_result: bool) -> str:
    """Fenced completions of many jobs in one statement; an id that does not exist stops the
    batch there, as completing one by one would (the items before it still complete). The
    caller sends each (id, node, attempt) once. The completed ids are announced to the
    waiters of other processes as ``notify_finished`` does (parameters channel, waiters).

    ``one_node``: every item holds a lease of one node (a node's own batches), bound once as
    ``%(node)s``. ``with_result``: items carry their results' JSON texts (``%(results)s``,
    NULL for none); a batch without any keeps the narrower statement.
    """
    columns, arrays = ["id", "attempt"], ["%(ids)s::bigint[]", "%(attempts)s::integer[]"]
    if not one_node:
        columns.append("node")
        arrays.append("%(nodes)s::text[]")
    if with_result:
        columns.append("result")
        arrays.append("%(results)s::text[]")
    node = "%(node)s" if one_node else "i.node"
    stored = ", result = i.result::jsonb" if with_result else ""
    return f"""
        WITH input AS (
            SELECT * FROM unnest({", ".join(arrays)})
                WITH ORDINALITY AS i({", ".join(columns)}, ord)
        ),
        missing AS (
            -- one primary-key probe per item (a correlated subquery, never a scan); in the
            -- partitioned layout the live partition first, every partition only for an id
            -- not there
            SELECT min(i.ord) AS ord FROM input AS i
            WHERE CASE WHEN EXISTS (SELECT FROM {{jobs}} AS j WHERE j.id = i.id{{live}})
                       THEN false
                       ELSE NOT EXISTS (SELECT FROM {{jobs}} AS j WHERE j.id = i.id) END
        ),
        done AS (
            UPDATE {{jobs}} AS j SET status = 'complete', completed_at = {_NOW}{stored}
            FROM input AS i, missing AS m
            WHERE j.id = i.id AND j.status = 'executing' AND j.attempted_by = {node}
              AND j.attempt = i.attempt AND (m.ord IS NULL OR i.ord < m.ord){{live}}
            RETURNING i.ord, j.id, j.has_dependents
        ),
        announced AS (
            -- notify_finished folded in (no second statement, no pipeline): the completed
            -- ids, {_IDS_PER_NOTICE} per payload, only while a waiting process holds the lock
            SELECT pg_notify(%(channel)s::text, string_agg(d.id::text, ',')) FROM (
                SELECT id, (row_number() OVER () - 1) / {_IDS_PER_NOTICE} AS chunk FROM done
            ) AS d
            WHERE NOT (SELECT pg_try_advisory_xact_lock(%(waiters)s::bigint))
            GROUP BY d.chunk
        )
        SELECT (SELECT ord FROM missing), ARRAY(SELECT ord FROM done),
               ARRAY(SELECT id FROM done WHERE has_dependents),
               (SELECT count(*) FROM announced)
    """


_STATEMENTS: Final[dict[str, str]] = {
    "insert": f"""
        INSERT INTO {{jobs}}
            (executor, data, metadata, max_attempts, priority, tags, uniqueness_key,
             inserted_at, scheduled_at, partition_key)
        VALUES (%(executor)s, %(data)s::jsonb, %(metadata)s::jsonb, %(max_attempts)s,
                %(priority)s, %(tags)s::text[], NULL,
                {_NOW}, COALESCE(%(scheduled_at)s::timestamptz, {_NOW}), %(partition_key)s)
        RETURNING id
    """,
    # With tags or partition keys (the untagged form below is the common case).
    "insert_many": f"""
        INSERT INTO {{jobs}}
            (executor, data, metadata, max_attempts, priority, tags, inserted_at,
             scheduled_at, partition_key)
        SELECT u.executor, u.data::jsonb, u.metadata::jsonb, u.max_attempts, u.priority,
               ARRAY(SELECT t.tag
                     FROM jsonb_array_elements_text(u.tags::jsonb) WITH ORDINALITY
                          AS t(tag, n)
                     ORDER BY t.n),
               {_NOW}, COALESCE(u.scheduled_at, {_NOW}), u.partition_key
        FROM unnest(%(executor)b::text[], %(data)b::text[], %(metadata)b::text[],
                    %(max_attempts)b::integer[], %(priority)b::integer[], %(tags)b::text[],
                    %(scheduled_at)b::timestamptz[], %(partition_key)b::text[])
             WITH ORDINALITY
             AS u(executor, data, metadata, max_attempts, priority, tags, scheduled_at,
                  partition_key, ord)
        ORDER BY u.ord
        RETURNING id
    """,
    # The same without tags or partition keys, the common case: no per-row array subquery.
    "insert_many_untagged": f"""
        INSERT INTO {{jobs}}
            (executor, data, metadata, max_attempts, priority, inserted_at, scheduled_at)
        SELECT u.executor, u.data::jsonb, u.metadata::jsonb, u.max_attempts, u.priority,
               {_NOW}, COALESCE(u.scheduled_at, {_NOW})
        FROM unnest(%(executor)b::text[], %(data)b::text[], %(metadata)b::text[],
                    %(max_attempts)b::integer[], %(priority)b::integer[],
                    %(scheduled_at)b::timestamptz[])
             WITH ORDINALITY
             AS u(executor, data, metadata, max_attempts, priority, scheduled_at, ord)
        ORDER BY u.ord
        RETURNING id
    """,
    # Bulk enqueue by COPY: the identities are drawn first (COPY cannot return them), in one
    # statement that also reads "now" for the rows' inserted_at and default scheduled_at.
    "reserve_ids": f"""
        WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence(%(jobs)s, 'id')::regclass AS seq)
        SELECT array_agg(nextval(s.seq)), {_NOW} FROM s, generate_series(1, %(n)s)
    """,
    "copy_jobs": """
        COPY {jobs} (id, executor, data, metadata, max_attempts, priority, tags, inserted_at,
                     scheduled_at, partition_key)
        FROM STDIN (FORMAT BINARY)
    """,
    "claim": f"""
        WITH picked AS MATERIALIZED (
            SELECT id FROM {{jobs}}
            WHERE executor = %(executor)s
              AND status IN {_READY_SQL} AND NOT blocked{{live}}
              -- Rows scheduled beyond what enqueue accepts cannot have been written by it:
              -- they are claimed so that they are set aside instead of lying in wait.
              AND (scheduled_at <= {_NOW} OR scheduled_at > {_ACCEPTED[1]}::timestamptz)
              AND NOT EXISTS (SELECT 1 FROM {{executors}} AS e
                              WHERE e.name = %(executor)s AND e.paused)
            ORDER BY priority, scheduled_at, id
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        )
        UPDATE {{jobs}} AS j
        SET status = 'executing', attempt = j.attempt + 1, attempted_at = {_NOW},
            attempted_by = %(node)s
        FROM picked
        WHERE j.id = picked.id{{live}}
        RETURNING {_J_COLUMNS}
    """,
    "next_scheduled_at": f"""
        SELECT {_clamped("min(first.scheduled_at)", _READABLE)}
        FROM unnest(%(executors)s::text[]) AS e(executor)
        CROSS JOIN (VALUES ('scheduled'), ('retryable')) AS s(status)
        CROSS JOIN LATERAL (
            SELECT j.scheduled_at FROM {{jobs}} AS j
            WHERE j.executor = e.executor AND j.status = s.status AND NOT j.blocked{{live}}
            ORDER BY j.scheduled_at
            LIMIT 1
        ) AS first
    """,
    # Every lifecycle transition, stored only while the job matches the fence (status,
    # attempt, and node unless NULL): compare-and-set in one statement. Reports (the executor
    # if it changed, else NULL; whether the id exists, from the snapshot before the update).
    # The cancellation hint for the other nodes is sent from here when asked (a job taken
    # from an executing node), so that it goes out exactly when the change commits.
    "transition": f"""
        WITH changed AS (
            UPDATE {{jobs}} SET
                status = %(status)s::text,
                attempt = COALESCE(%(new_attempt)s::integer, attempt),
                scheduled_at = CASE WHEN %(run_in)s::interval IS NULL THEN scheduled_at
                                    ELSE {_after("run_in")} END,
                errors = CASE WHEN %(error_type)s::text IS NULL THEN errors
                              ELSE errors || {_error_entry("%(attempt)s::integer")} END,
                max_attempts = GREATEST(max_attempts,
                                        COALESCE(%(min_max_attempts)s::integer, max_attempts)),
                -- A rerun starts afresh: no result, no progress; a completion may store one.
                result = CASE WHEN %(reopen)s::boolean THEN NULL
                              ELSE COALESCE(%(result)s::jsonb, result) END,
                progress = CASE WHEN %(reopen)s::boolean THEN NULL ELSE progress END,
                {_stamp("completed_at", "complete")},
                {_stamp("cancelled_at", "cancelled")},
                {_stamp("discarded_at", "discarded")}
            WHERE id = %(id)s AND status = %(fence_status)s::text
              AND attempt = %(attempt)s::integer
              AND (%(node)s::text IS NULL OR attempted_by = %(node)s::text)
            RETURNING executor, has_dependents
        ),
        hinted AS (
            SELECT pg_notify(%(cancel_channel)s::text, '') FROM changed
            WHERE %(hint)s::boolean
        )
        SELECT (SELECT executor FROM changed),
               EXISTS (SELECT 1 FROM {{jobs}} WHERE id = %(id)s),
               (SELECT count(*) FROM hinted),
               (SELECT has_dependents FROM changed)
    """,
    # A running job's progress, fenced by its lease like a completion.
    "record_progress": """
        WITH changed AS (
            UPDATE {jobs} SET progress = %(progress)s::jsonb WHERE """
    + _HELD
    + """ RETURNING id
        )
        SELECT EXISTS (SELECT 1 FROM changed), EXISTS (SELECT 1 FROM {jobs} WHERE id = %(id)s)
    """,
    # One fenced completion per item, in one statement (see _complete_many).
    "complete_many": _complete_many(one_node=False, with_result=False),
    "complete_many_one_node": _complete_many(one_node=True, with_result=False),
    "complete_many_result": _complete_many(one_node=False, with_result=True),
    "complete_many_one_node_result": _complete_many(one_node=True, with_result=True),
    "update": """
        UPDATE {jobs} SET data = %(data)s::jsonb, metadata = %(metadata)s::jsonb,
            max_attempts = %(max_attempts)s, priority = %(priority)s, tags = %(tags)s::text[],
            scheduled_at = %(scheduled_at)s
        WHERE id = %(id)s
        RETURNING executor, status
    """,
    "exists": "SELECT EXISTS (SELECT 1 FROM {jobs} WHERE id = %(id)s)",
    # Jobs that finished, announced to the waiters of every process: one notification per
    # payload (comma-separated ids, each within NOTIFY's 8000-byte limit), sent only when the
    # advisory lock that waiting processes hold shared cannot be taken (someone waits, or
    # another writer holds it just now).
    "notify_finished": """
        SELECT count(pg_notify(%(channel)s::text, p)) FROM unnest(%(payloads)s::text[]) AS p
        WHERE NOT (SELECT pg_try_advisory_xact_lock(%(waiters)s::bigint))
    """,
    "stored_times": "SELECT inserted_at::text, scheduled_at::text FROM {jobs} WHERE id = %(id)s",
    # A claimed job whose row cannot be read: discarded, its times made readable, unreadable
    # JSON replaced by its text (as a JSON string), the error list rewritten as read.
    "set_aside": "UPDATE {jobs} SET status = 'discarded', discarded_at = "
    + _NOW
    + ", errors = %(errors)s::jsonb || "
    + _error_entry("attempt")
    + ", data = COALESCE(%(data)s::jsonb, data), "
    "metadata = COALESCE(%(metadata)s::jsonb, metadata), "
    + ", ".join(
        f"{name} = {_clamped(name, _ACCEPTED if name in _SCHEDULING else _READABLE)}"
        for name in _TIME_COLUMNS
        if name != "discarded_at"
    )
    + " WHERE "
    + _HELD,
    "try_lock": "SELECT pg_try_advisory_xact_lock(%(key)s)",
    "heartbeat": f"""
        INSERT INTO {{nodes}} (node_id, host, pid, started_at, heartbeat_at)
        VALUES (%(node_id)s, %(host)s, %(pid)s, {_NOW}, {_NOW})
        ON CONFLICT (node_id) DO UPDATE
        SET host = EXCLUDED.host, pid = EXCLUDED.pid, heartbeat_at = {_NOW}
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
        WHERE finished >= {_NOW} - %(since)s
        GROUP BY bucket, status ORDER BY bucket, status
    """,
    "list_nodes": """
        SELECT node_id, host, pid, started_at, heartbeat_at FROM {nodes}
        ORDER BY heartbeat_at DESC, started_at, node_id
    """,
    # The executing jobs of nodes silent since the cutoff (or of unknown nodes, attempted
    # before it); the silent nodes are forgotten. Every part of the statement reads the same
    # snapshot, so a node deleted here still counts as known for the NOT EXISTS.
    "orphaned": f"""
        WITH cutoff AS (SELECT {_before("dead_after")} AS at),
        dead AS (
            SELECT n.node_id FROM {{nodes}} AS n, cutoff AS c WHERE n.heartbeat_at < c.at
        ),
        forgotten AS (
            DELETE FROM {{nodes}} WHERE node_id IN (SELECT node_id FROM dead)
        )
        SELECT {_J_COLUMNS} FROM {{jobs}} AS j, cutoff AS c
        WHERE j.status = 'executing'
          AND (j.attempted_by IN (SELECT node_id FROM dead)
               OR (NOT EXISTS (SELECT 1 FROM {{nodes}} AS n WHERE n.node_id = j.attempted_by)
                   AND j.attempted_at < c.at))
        ORDER BY j.id
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
    # -- run-time control and limited claims (see rexecutor.limits) -------------------------
    # Serialises the claims of a limited executor on every node: the row stays locked until
    # the claim's transaction ends.
    "lock_executor": "SELECT paused FROM {executors} WHERE name = %(executor)s FOR UPDATE",
    "ensure_executor": """
        INSERT INTO {executors} (name) VALUES (%(executor)s) ON CONFLICT (name) DO NOTHING
    """,
    "is_paused": "SELECT paused FROM {executors} WHERE name = %(executor)s",
    # The time is read after this statement's snapshot was taken: the claim stamps it as
    # attempted_at, so a job started in a place that a completion (committed before the
    # snapshot, so stamped before it) just freed never looks, from the rows, as if both ran.
    "executing_counts": """
        WITH counted AS (
            SELECT CASE WHEN %(partitioned)s::boolean THEN partition_key END AS k,
                   count(*) AS n
            FROM {jobs} WHERE executor = %(executor)s AND status = 'executing'
            GROUP BY 1
        )
        SELECT clock_timestamp(), ARRAY(SELECT k FROM counted), ARRAY(SELECT n FROM counted)
    """,
    "forget_starts": f"""
        DELETE FROM {{starts}}
        WHERE executor = %(executor)s AND started_at <= {_before("period")}
    """,
    "started_counts": """
        SELECT CASE WHEN %(per_partition)s::boolean THEN partition_key END, count(*)
        FROM {starts} WHERE executor = %(executor)s GROUP BY 1
    """,
    # The due jobs a partitioned claim may choose from, in claim order, at most ``per_key``
    # per partition key, leaving out keys with no room ('' stands for no key).
    "candidates": f"""
        SELECT id, partition_key FROM (
            SELECT id, partition_key, priority, scheduled_at,
                   row_number() OVER (PARTITION BY partition_key
                                      ORDER BY priority, scheduled_at, id) AS n
            FROM {{jobs}}
            WHERE executor = %(executor)s AND status IN {_READY_SQL} AND NOT blocked{{live}}
              AND (scheduled_at <= {_NOW} OR scheduled_at > {_ACCEPTED[1]}::timestamptz)
              AND COALESCE(partition_key, '') <> ALL(%(exclude)s::text[])
        ) AS c
        WHERE n <= %(per_key)s
        ORDER BY priority, scheduled_at, id
        LIMIT %(fetch)s
    """,
    "claim_ids": f"""
        UPDATE {{jobs}} AS j
        SET status = 'executing', attempt = j.attempt + 1, attempted_at = {_NOW},
            attempted_by = %(node)s
        WHERE j.id = ANY(%(ids)s::bigint[]) AND j.status IN {_READY_SQL} AND NOT j.blocked{{live}}
        RETURNING {_J_COLUMNS}
    """,
    "record_starts": f"""
        INSERT INTO {{starts}} (executor, partition_key, started_at)
        SELECT %(executor)s, k, {_NOW} FROM unnest(%(keys)s::text[]) AS k
    """,
    "waiting": f"""
        SELECT count(*) FROM (
            SELECT 1 FROM {{jobs}}
            WHERE executor = %(executor)s AND status IN {_READY_SQL} AND NOT blocked{{live}}
              AND scheduled_at <= {_NOW}
            LIMIT %(cap)s
        ) AS w
    """,
    "executor_states": f"""
        SELECT e.name, e.paused, e.max_concurrency, e.global_max_concurrency,
               e.partition_max_concurrency, e.rate_allowed, e.rate_period,
               e.rate_per_partition, e.updated_at,
               (SELECT count(*) FROM {{starts}} AS s
                WHERE e.rate_period IS NOT NULL AND s.executor = e.name
                  AND s.started_at > {_NOW} - e.rate_period)
        FROM {{executors}} AS e
        WHERE %(names)s::text[] IS NULL OR e.name = ANY(%(names)s::text[])
        ORDER BY e.name
    """,
    # A resume or scale wakes the runners of every node (the jobs channel, which the trigger
    # also uses) as it commits.
    "change_executor": f"""
        WITH changed AS (
            INSERT INTO {{executors}} AS e (name, paused, max_concurrency, updated_at)
            VALUES (%(name)s, COALESCE(%(paused)s::boolean, false),
                    CASE WHEN %(scale)s::boolean THEN %(max)s::integer END, {_NOW})
            ON CONFLICT (name) DO UPDATE SET
                paused = COALESCE(%(paused)s::boolean, e.paused),
                max_concurrency = CASE WHEN %(scale)s::boolean THEN %(max)s::integer
                                       ELSE e.max_concurrency END,
                updated_at = {_NOW}
            RETURNING e.paused
        )
        SELECT pg_notify(%(channel)s::text, %(wake)s::text) FROM changed WHERE NOT paused
    """,
    "declare_limits": f"""
        INSERT INTO {{executors}} AS e (name, global_max_concurrency,
            partition_max_concurrency, rate_allowed, rate_period, rate_per_partition,
            updated_at)
        VALUES (%(name)s, %(global_max)s, %(partition_max)s, %(rate_allowed)s,
                %(rate_period)s::interval, %(rate_per_partition)s, {_NOW})
        ON CONFLICT (name) DO UPDATE SET
            global_max_concurrency = EXCLUDED.global_max_concurrency,
            partition_max_concurrency = EXCLUDED.partition_max_concurrency,
            rate_allowed = EXCLUDED.rate_allowed, rate_period = EXCLUDED.rate_period,
            rate_per_partition = EXCLUDED.rate_per_partition, updated_at = {_NOW}
    """,
    # -- workflows (see rexecutor.dependencies) ------------------------------------------------
    "insert_workflow_job": f"""
        INSERT INTO {{jobs}}
            (executor, data, metadata, max_attempts, priority, tags, uniqueness_key,
             inserted_at, scheduled_at, partition_key, workflow_id, workflow_step, blocked)
        VALUES (%(executor)s, %(data)s::jsonb, %(metadata)s::jsonb, %(max_attempts)s,
                %(priority)s, %(tags)s::text[], NULL,
                {_NOW}, COALESCE(%(scheduled_at)s::timestamptz, {_NOW}), %(partition_key)s,
                %(workflow_id)s, %(workflow_step)s, %(blocked)s)
        RETURNING id
    """,
    # A workflow's jobs without uniqueness, in one statement (ids come back in input order).
    "insert_workflow_many": f"""
        INSERT INTO {{jobs}}
            (executor, data, metadata, max_attempts, priority, tags, inserted_at,
             scheduled_at, partition_key, workflow_id, workflow_step, blocked,
             on_failed_dependency)
        SELECT u.executor, u.data::jsonb, u.metadata::jsonb, u.max_attempts, u.priority,
               ARRAY(SELECT t.tag
                     FROM jsonb_array_elements_text(u.tags::jsonb) WITH ORDINALITY
                          AS t(tag, n)
                     ORDER BY t.n),
               {_NOW}, COALESCE(u.scheduled_at, {_NOW}), u.partition_key, u.workflow_id,
               u.workflow_step, u.blocked, u.policy
        FROM unnest(%(executor)s::text[], %(data)s::text[], %(metadata)s::text[],
                    %(max_attempts)s::integer[], %(priority)s::integer[], %(tags)s::text[],
                    %(scheduled_at)s::timestamptz[], %(partition_key)s::text[],
                    %(workflow_id)s::text[], %(workflow_step)s::text[], %(blocked)s::boolean[],
                    %(policy)s::text[])
             WITH ORDINALITY
             AS u(executor, data, metadata, max_attempts, priority, tags, scheduled_at,
                  partition_key, workflow_id, workflow_step, blocked, policy, ord)
        ORDER BY u.ord
        RETURNING id
    """,
    "link_many": """
        WITH edges AS (
            INSERT INTO {dependencies} (job_id, depends_on)
            SELECT * FROM unnest(%(jobs)s::bigint[], %(on)s::bigint[])
            ON CONFLICT DO NOTHING
        )
        UPDATE {jobs} SET has_dependents = true
        WHERE id = ANY(%(on)s::bigint[]) AND NOT has_dependents
    """,
    "mark_workflow_job": """
        UPDATE {jobs} SET workflow_id = %(workflow_id)s, workflow_step = %(workflow_step)s,
            blocked = %(blocked)s
        WHERE id = %(id)s
    """,
    "set_policy": "UPDATE {jobs} SET on_failed_dependency = %(policy)s WHERE id = %(id)s",
    "dependents": """
        SELECT j.id, j.status, j.attempt, j.blocked, j.on_failed_dependency,
               j.errors -> -1 ->> 'name',
               ARRAY(SELECT d.depends_on FROM {dependencies} AS d
                     WHERE d.job_id = j.id ORDER BY d.depends_on),
               ARRAY(SELECT COALESCE(p.status, 'complete') FROM {dependencies} AS d
                     LEFT JOIN {jobs} AS p ON p.id = d.depends_on
                     WHERE d.job_id = j.id ORDER BY d.depends_on)
        FROM {jobs} AS j
        WHERE j.id IN (SELECT job_id FROM {dependencies} WHERE depends_on = ANY(%(ids)s::bigint[]))
        ORDER BY j.id
    """,
    "set_blocked": """
        UPDATE {jobs} SET blocked = %(blocked)s WHERE id = ANY(%(ids)s::bigint[])
        RETURNING executor
    """,
    "dependencies_of": """
        SELECT job_id, depends_on FROM {dependencies} WHERE job_id = ANY(%(ids)s::bigint[])
        ORDER BY job_id, depends_on
    """,
    "workflow_jobs": f"SELECT {_COLUMNS} FROM {{jobs}} WHERE workflow_id = %(workflow_id)s "
    "ORDER BY id",
    # The finished dependencies of blocked jobs (gone ones too): only these can settle one.
    "blocked_dependencies": f"""
        SELECT DISTINCT d.depends_on FROM {{dependencies}} AS d
        JOIN {{jobs}} AS j ON j.id = d.job_id
        LEFT JOIN {{jobs}} AS p ON p.id = d.depends_on
        WHERE j.blocked AND (p.id IS NULL OR p.status IN {_TERMINAL_SQL})
    """,
    "blocked_state": "SELECT id, status, blocked FROM {jobs} WHERE blocked OR id = ANY(%(ids)s)",
}
