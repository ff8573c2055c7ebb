"""The SQL statements of the hot and fenced paths, written once and bound with parameters."""

from __future__ import annotations

from typing import Final

from rexecutor.backends.sqlite.codec import COLUMNS, LATEST_US

# Written out literally (not bound) wherever a partial index should serve a query: SQLite uses a
# partial index only when the query repeats the index's WHERE term.
READY_SQL: Final = "status IN ('scheduled', 'retryable')"
#: Ready and not waiting on a dependency: what a claim may take (the predicate of jobs_ready).
CLAIMABLE_SQL: Final = READY_SQL + " AND blocked = 0"
FINISHED_SQL: Final = "COALESCE(completed_at, cancelled_at, discarded_at, scheduled_at)"

INSERT: Final = (
    "INSERT INTO jobs (status, executor, data, metadata, data_eq, metadata_eq, attempt, "
    "max_attempts, priority, tags, errors, uniqueness_key, inserted_at, scheduled_at, "
    "partition_key, workflow_id, workflow_step, blocked) "
    "VALUES ('scheduled', ?, ?, ?, ?, ?, 0, ?, ?, ?, '[]', ?, ?, ?, ?, ?, ?, ?)"
)
CLAIM: Final = (
    "UPDATE jobs SET status = 'executing', attempt = attempt + 1, attempted_at = ?, "
    "attempted_by = ? WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_ready "
    # Rows scheduled beyond what enqueue accepts cannot have been written by it: they are claimed
    # so that they are set aside (see codec.set_aside) instead of lying in wait.
    f"WHERE executor = ? AND {CLAIMABLE_SQL} "
    f"AND (scheduled_at <= ? OR scheduled_at > {LATEST_US}) "
    f"ORDER BY priority, scheduled_at, id LIMIT ?) RETURNING {COLUMNS}"
)
#: The due jobs a limited claim may choose from, in claim order, at most ``:per_key`` per
#: partition key (all when NULL), skipping keys with no room (the JSON list ``:exclude``).
CANDIDATES: Final = (
    "SELECT id, partition_key FROM (SELECT id, partition_key, priority, scheduled_at, "
    "row_number() OVER (PARTITION BY partition_key ORDER BY priority, scheduled_at, id) AS n "
    "FROM jobs INDEXED BY jobs_ready "
    f"WHERE executor = :executor AND {CLAIMABLE_SQL} "
    f"AND (scheduled_at <= :now OR scheduled_at > {LATEST_US}) "
    "AND COALESCE(partition_key, '') NOT IN (SELECT value FROM json_each(:exclude))) "
    "WHERE :per_key IS NULL OR n <= :per_key ORDER BY priority, scheduled_at, id LIMIT :fetch"
)
#: Claims the chosen ids (a JSON list), as ``CLAIM`` does.
CLAIM_IDS: Final = (
    "UPDATE jobs SET status = 'executing', attempt = attempt + 1, attempted_at = ?, "
    f"attempted_by = ? WHERE id IN (SELECT value FROM json_each(?)) AND {CLAIMABLE_SQL} "
    f"RETURNING {COLUMNS}"
)
HELD: Final = "id = ? AND status = 'executing' AND attempted_by = ? AND attempt = ?"
#: ``lifecycle.completed()`` for a batch (``complete_jobs``), the runner's fast path.
COMPLETE: Final = f"UPDATE jobs SET status = 'complete', completed_at = ? WHERE {HELD}"
#: The same, storing the job's result (its JSON text) with the completion.
COMPLETE_WITH_RESULT: Final = (
    f"UPDATE jobs SET status = 'complete', completed_at = ?, result = ? WHERE {HELD}"
)
#: A running job's progress (``record_progress``), fenced by its lease like a completion.
PROGRESS: Final = f"UPDATE jobs SET progress = ? WHERE {HELD}"

# The status as readers show it: one rexecutor never writes reads as discarded (codec.STATUS),
# so a fence taken from a read job matches the row it was read from.
_STATUS_AS_READ: Final = (
    "CASE WHEN status IN ('scheduled', 'executing', 'retryable', 'complete', 'cancelled', "
    "'discarded') THEN status ELSE 'discarded' END"
)


def _stamp(column: str, status: str) -> str:
    # Reaching a finished status stamps its time; a reopened job has none.
    return (
        f"{column} = CASE WHEN :status = '{status}' THEN :now "
        f"WHEN :reopen THEN NULL ELSE {column} END"
    )


#: Any ``lifecycle.Transition`` under any ``lifecycle.Fence``, as one compare-and-set: the
#: fields a transition leaves unchanged are bound as NULL. Returns the job's executor.
APPLY: Final = (
    "UPDATE jobs SET status = :status, "
    "attempt = COALESCE(:attempt, attempt), "
    "scheduled_at = COALESCE(:scheduled_at, scheduled_at), "
    "errors = CASE WHEN :error IS NULL THEN errors "
    "ELSE json_insert(errors, '$[#]', json(:error)) END, "
    "max_attempts = MAX(max_attempts, COALESCE(:min_max_attempts, max_attempts)), "
    # A rerun starts afresh: no result, no progress; a completion may store a result.
    "result = CASE WHEN :reopen THEN NULL ELSE COALESCE(:result, result) END, "
    "progress = CASE WHEN :reopen THEN NULL ELSE progress END, "
    + ", ".join(
        _stamp(column, status)
        for column, status in (
            ("completed_at", "complete"),
            ("cancelled_at", "cancelled"),
            ("discarded_at", "discarded"),
        )
    )
    + f" WHERE id = :id AND {_STATUS_AS_READ} = :fence_status AND attempt = :fence_attempt "
    "AND (:fence_node IS NULL OR attempted_by = :fence_node) RETURNING executor, has_dependents"
)

#: Executing jobs whose node is silent since before ``:cutoff``, or unknown with an attempt
#: older than that.
ORPHANED: Final = (
    f"SELECT {COLUMNS} FROM jobs INDEXED BY jobs_executing WHERE status = 'executing' AND ("
    " attempted_by IN (SELECT node_id FROM nodes WHERE heartbeat_at < :cutoff)"
    " OR (NOT EXISTS (SELECT 1 FROM nodes AS n WHERE n.node_id = jobs.attempted_by)"
    "     AND COALESCE(attempted_at, :now) < :cutoff)"
    ") ORDER BY id"
)
FORGET_SILENT_NODES: Final = "DELETE FROM nodes WHERE heartbeat_at < :cutoff"
