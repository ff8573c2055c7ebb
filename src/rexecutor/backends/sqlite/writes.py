"""The write transactions of a job's life: enqueue (with uniqueness), claim, the batched
completion, the fenced transition, and the selection of orphaned jobs. Each runs on the
database thread inside the transaction the backend opened for it."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from typing import Any

from rexecutor import _clock, dependencies, lifecycle
from rexecutor._payload import storable_delay
from rexecutor.backend import Completion, EnqueueResult
from rexecutor.backends.sqlite import dependencies as workflow
from rexecutor.backends.sqlite.codec import (
    MICROSECOND,
    STATUS,
    Prepared,
    error_json,
    lenient_text,
    read_claimed,
    read_job,
    set_aside,
    to_us,
)
from rexecutor.backends.sqlite.control import (
    admitted_ids,
    is_paused,
    record_starts,
    report_waiting,
)
from rexecutor.backends.sqlite.query import placeholders
from rexecutor.backends.sqlite.statements import (
    APPLY,
    CLAIM,
    CLAIM_IDS,
    COMPLETE,
    COMPLETE_WITH_RESULT,
    FORGET_SILENT_NODES,
    INSERT,
    ORPHANED,
    READY_SQL,
)
from rexecutor.errors import JobNotFound
from rexecutor.job import Job, JobId, JobStatus
from rexecutor.lifecycle import Fence, Transition
from rexecutor.limits import ClaimLimits, ClaimReport


def enqueue_tx(
    conn: sqlite3.Connection, jobs: list[Prepared]
) -> tuple[list[EnqueueResult], set[str]]:
    now = _clock.now()
    now_us = to_us(now)
    results: list[EnqueueResult] = []
    wake: set[str] = set()
    waited_on: set[int] = set()
    for job in jobs:
        scheduled_us = now_us if job.scheduled_us is None else job.scheduled_us
        if job.source.uniqueness is not None:
            found = _resolve_duplicate(conn, job, scheduled_us)
            if found is not None:
                job_id, woken = found
                if woken is not None:
                    wake.add(woken)
                results.append(EnqueueResult(JobId(job_id), duplicate=True))
                continue
        cursor = conn.execute(
            INSERT,
            (
                job.source.executor,
                job.data,
                job.metadata,
                job.data_eq,
                job.metadata_eq,
                job.source.max_attempts,
                job.source.priority,
                job.tags,
                job.key,
                now_us,
                scheduled_us,
                job.source.partition_key,
                job.source.workflow_id,
                job.source.workflow_step,
                int(bool(job.source.depends_on)),
            ),
        )
        assert cursor.lastrowid is not None
        results.append(EnqueueResult(JobId(cursor.lastrowid)))
        wake.add(job.source.executor)
        if job.source.depends_on:
            on = [int(results[p].job_id) for p in job.source.depends_on]
            workflow.link(conn, cursor.lastrowid, on, job.source.on_failed_dependency)
            waited_on.update(on)
    if waited_on:
        # Dependencies that had already finished release (or cancel) at once.
        workflow.walk(conn, dependencies.propagate(sorted(waited_on)), _applied, wake)
    return results, wake


def _resolve_duplicate(
    conn: sqlite3.Connection, job: Prepared, scheduled_us: int
) -> tuple[int, str | None] | None:
    """The earliest stored job that ``job`` duplicates, after applying ``Replace``.

    Returns its id and the executor to wake (if the replacement left a ready job), or None
    when there is no conflict.
    """
    criteria = job.source.uniqueness
    assert criteria is not None
    where: list[str] = []
    params: list[Any] = []
    if criteria.key is not None:
        where.append("uniqueness_key = ?")
        params.append(criteria.key)
    if criteria.executor:
        where.append("executor = ?")
        params.append(job.source.executor)
    statuses = sorted(s.value for s in criteria.statuses)
    if criteria.statuses <= JobStatus.READY:
        where.append(READY_SQL)  # lets the planner use the partial index jobs_due
    where.append(f"status IN ({placeholders(len(statuses))})")
    params.extend(statuses)
    if criteria.window is not None:
        window = criteria.window // MICROSECOND
        where.append("scheduled_at BETWEEN ? AND ?")
        params.extend((scheduled_us - window, scheduled_us + window))
    row = conn.execute(
        f"SELECT id, status, executor FROM jobs WHERE {' AND '.join(where)} ORDER BY id LIMIT 1",
        params,
    ).fetchone()
    if row is None:
        return None
    job_id, status, executor = int(row[0]), STATUS[row[1]], str(row[2])
    plan = criteria.replace_plan()
    if plan is None or not plan.applies_to(status):
        return job_id, None
    # data and metadata keep their equality text beside them (see codec.equality_text).
    columns: dict[str, dict[str, Any]] = {
        "scheduled_at": {"scheduled_at": scheduled_us},
        "data": {"data": job.data, "data_eq": job.data_eq},
        "metadata": {"metadata": job.metadata, "metadata_eq": job.metadata_eq},
        "priority": {"priority": job.source.priority},
        "max_attempts": {"max_attempts": job.source.max_attempts},
    }
    assignments: list[str] = []
    values: list[Any] = []
    for name in plan.fields:
        for column, value in columns[name].items():
            assignments.append(f"{column} = ?")
            values.append(value)
    conn.execute(f"UPDATE jobs SET {', '.join(assignments)} WHERE id = ?", (*values, job_id))
    return job_id, executor if status in JobStatus.READY else None


def claim_tx(
    conn: sqlite3.Connection,
    executor: str,
    limit: int,
    node_id: str,
    limits: ClaimLimits | None = None,
    report: ClaimReport | None = None,
    aside: list[int] | None = None,
) -> list[Job[Any, Any]]:
    """Claim up to ``limit`` due jobs; the ids of those set aside are appended to ``aside``."""
    if is_paused(conn, executor):
        if report is not None:
            report.paused = True
        return []
    now_us = to_us(_clock.now())
    jobs: list[Job[Any, Any]] = []
    limited = limits is not None and limits.any
    chosen: list[int] | None = None
    want = limit
    if limited:
        assert limits is not None
        chosen, want = admitted_ids(conn, executor, limit, limits)
    while want > 0:
        if chosen is None:
            rows = conn.execute(CLAIM, (now_us, node_id, executor, now_us, want)).fetchall()
        else:
            rows = conn.execute(CLAIM_IDS, (now_us, node_id, json.dumps(chosen))).fetchall()
        unreadable = 0
        lenient = conn.text_factory is lenient_text
        for row in rows:
            job, reader = read_claimed(row, lenient)
            if reader is None:
                jobs.append(job)
            else:
                set_aside(conn, job, reader)
                unreadable += 1
                if aside is not None:
                    aside.append(int(job.id))
        # Rows set aside must not take the places of the good jobs behind them; each round
        # discards what it could not read, so this ends. (A limited claim takes one round:
        # what it chose is what it may start.)
        if unreadable == 0 or len(rows) < want or chosen is not None:
            break
        want = unreadable
    if limited:
        assert limits is not None
        record_starts(conn, executor, limits, [job.partition_key for job in jobs])
        if report is not None and len(jobs) < limit:
            report_waiting(conn, executor, report)
    # RETURNING yields rows in no promised order; callers get them in claim order.
    jobs.sort(key=lambda j: (j.priority, j.scheduled_at, j.id))
    return jobs


def complete_many_tx(
    conn: sqlite3.Connection, completions: list[Completion]
) -> tuple[list[bool], int | None, set[str]]:
    results, missing = _complete_many(conn, completions)
    released: set[str] = set()
    done = [item.job_id for item, applied in zip(completions, results, strict=False) if applied]
    settle_completed(conn, done, released)
    return results, missing, released


def _complete_many(
    conn: sqlite3.Connection, completions: list[Completion]
) -> tuple[list[bool], int | None]:
    # Like completing one by one: the completions before an unknown id are kept (committed)
    # and then JobNotFound is raised for it.
    now_us = to_us(_clock.now())
    # Most jobs have no result: their batch keeps the statement that writes none.
    with_result = any(item.result is not None for item in completions)
    statement = COMPLETE_WITH_RESULT if with_result else COMPLETE

    def bound(item: Completion) -> tuple[Any, ...]:
        job_id, lease, result = item
        if with_result:
            return (now_us, result, job_id, lease.node_id, lease.attempt)
        return (now_us, job_id, lease.node_id, lease.attempt)

    if len(completions) > 1:
        # The common case, every completion applying, in one executemany; anything else
        # (a stale lease, a repeat, an unknown id) is undone and done one by one below.
        conn.execute("SAVEPOINT complete_many")
        cursor = conn.executemany(statement, [bound(item) for item in completions])
        if cursor.rowcount == len(completions):
            conn.execute("RELEASE complete_many")
            return [True] * len(completions), None
        conn.execute("ROLLBACK TO complete_many")
        conn.execute("RELEASE complete_many")
    results: list[bool] = []
    for item in completions:
        cursor = conn.execute(statement, bound(item))
        if cursor.rowcount:
            results.append(True)
        elif _job_exists(conn, item.job_id):
            results.append(False)
        else:
            return results, item.job_id
    return results, None


def give_back_tx(conn: sqlite3.Connection, held: list[tuple[int, str, int]]) -> None:
    for job_id, node_id, attempt in held:
        conn.execute(
            "UPDATE jobs SET attempt = ?, status = ? WHERE id = ? AND status = 'executing' "
            "AND attempted_by = ? AND attempt = ?",
            (
                attempt - 1,
                lifecycle.ready_status(attempt - 1).value,
                job_id,
                node_id,
                attempt,
            ),
        )


def _job_exists(conn: sqlite3.Connection, job_id: int) -> bool:
    return conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is not None


def _require_job(conn: sqlite3.Connection, job_id: int) -> None:
    if not _job_exists(conn, job_id):
        raise JobNotFound(job_id)


def apply_tx(
    conn: sqlite3.Connection, job_id: int, fence: Fence, transition: Transition
) -> tuple[str, set[str]] | None:
    """``statements.APPLY`` bound for one transition, and what it does to the job's
    dependents; returns the job's executor and the executors of dependents it released, or
    None when the fence did not hold (JobNotFound when there is no such job)."""
    row = _apply_row(conn, job_id, fence, transition)
    if row is None:
        _require_job(conn, job_id)
        return None
    released: set[str] = set()
    if row[1]:
        steps = dependencies.after_change(job_id, transition.status, transition.reopen)
        if steps is not None:
            workflow.walk(conn, steps, _applied, released)
    return str(row[0]), released


def _applied(conn: sqlite3.Connection, job_id: int, fence: Fence, transition: Transition) -> bool:
    return _apply_row(conn, job_id, fence, transition) is not None


def _apply_row(
    conn: sqlite3.Connection, job_id: int, fence: Fence, transition: Transition
) -> tuple[Any, ...] | None:
    now = _clock.now()
    run_in = transition.run_in
    error = transition.error
    row: tuple[Any, ...] | None = conn.execute(
        APPLY,
        {
            "id": job_id,
            "status": transition.status.value,
            "attempt": transition.attempt,
            "scheduled_at": None if run_in is None else to_us(now + storable_delay(run_in)),
            # Stamped with the attempt the fence saw: the one the error happened on.
            "error": None if error is None else error_json(fence.attempt, error, now),
            "min_max_attempts": transition.min_max_attempts,
            "reopen": transition.reopen,
            "result": transition.result,
            "now": to_us(now),
            "fence_status": fence.status.value,
            "fence_attempt": fence.attempt,
            "fence_node": fence.node_id,
        },
    ).fetchone()
    return row


def settle_completed(conn: sqlite3.Connection, job_ids: list[int], wake: set[str]) -> None:
    """Release or cancel the dependents of just-completed jobs that have any."""
    with_dependents = [
        int(row[0])
        for row in conn.execute(
            "SELECT id FROM jobs WHERE id IN (SELECT value FROM json_each(?)) "
            "AND has_dependents = 1",
            (json.dumps(job_ids),),
        )
    ]
    if with_dependents:
        workflow.walk(conn, dependencies.propagate(with_dependents), _applied, wake)


def settle_blocked_tx(conn: sqlite3.Connection) -> tuple[int, set[str]]:
    """The sweep: settle every blocked job whose dependencies all finished."""
    before = dict(conn.execute("SELECT id, status || blocked FROM jobs WHERE blocked = 1"))
    if not before:
        return 0, set()
    waited = [
        int(row[0])
        for row in conn.execute(
            # Only a finished dependency (or a gone one) can settle a blocked job.
            "SELECT DISTINCT d.depends_on FROM job_dependencies AS d "
            "LEFT JOIN jobs AS p ON p.id = d.depends_on "
            "WHERE d.job_id IN (SELECT value FROM json_each(?)) "
            "AND (p.id IS NULL OR p.status IN ('complete', 'cancelled', 'discarded'))",
            (json.dumps(list(before)),),
        )
    ]
    wake: set[str] = set()
    workflow.walk(conn, dependencies.propagate(waited), _applied, wake)
    after = dict(
        conn.execute(
            "SELECT id, status || blocked FROM jobs WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(before)),),
        )
    )
    return sum(1 for job_id, state in before.items() if after.get(job_id) != state), wake


def orphaned_tx(conn: sqlite3.Connection, dead_after: timedelta) -> list[Job[Any, Any]]:
    now = _clock.now()
    bound = {"now": to_us(now), "cutoff": to_us(now - dead_after)}
    jobs = [read_job(row) for row in conn.execute(ORPHANED, bound).fetchall()]
    conn.execute(FORGET_SILENT_NODES, bound)
    return jobs
