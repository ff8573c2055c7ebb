"""Workflows on SQLite: storing a job's dependencies and answering the walk of
:mod:`rexecutor.dependencies`, on the database thread inside the transaction of the change
that caused it (so a cascade commits with it)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from rexecutor import dependencies
from rexecutor.backends.sqlite.codec import STATUS
from rexecutor.job import JobStatus


def link(conn: sqlite3.Connection, job_id: int, on: Iterable[int], policy: str) -> None:
    """Store that ``job_id`` (just inserted, blocked) waits for the jobs ``on``."""
    targets = sorted(set(on))
    conn.executemany(
        "INSERT OR IGNORE INTO job_dependencies (job_id, depends_on) VALUES (?, ?)",
        [(job_id, target) for target in targets],
    )
    conn.execute(
        "UPDATE jobs SET on_failed_dependency = ? WHERE id = ?",
        (dependencies.check_policy(policy), job_id),
    )
    conn.execute(
        "UPDATE jobs SET has_dependents = 1 WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(targets),),
    )


def walk(
    conn: sqlite3.Connection,
    steps: dependencies.Walk,
    apply: dependencies.ApplyFn,
    wake: set[str],
) -> None:
    """Run a walk; ``apply(conn, id, fence, transition)`` stores one fenced transition.
    Executors of released jobs are added to ``wake``."""

    def answer(request: dependencies.Request) -> object:
        if isinstance(request, dependencies.ReadDependents):
            return _dependents(conn, request.ids)
        if isinstance(request, dependencies.SetBlocked):
            ids = json.dumps(list(request.ids))
            rows = conn.execute(
                "UPDATE jobs SET blocked = ? WHERE id IN (SELECT value FROM json_each(?)) "
                "RETURNING executor",
                (int(request.blocked), ids),
            ).fetchall()
            if not request.blocked:
                wake.update(str(row[0]) for row in rows)
            return None
        return apply(conn, request.id, request.fence, request.transition)

    dependencies.drive(steps, answer)


def _dependents(conn: sqlite3.Connection, ids: tuple[int, ...]) -> list[dependencies.Dependent]:
    rows = conn.execute(
        "SELECT j.id, j.status, j.attempt, j.blocked, j.on_failed_dependency, "
        "json_extract(j.errors, '$[#-1].name') "
        "FROM jobs AS j WHERE j.id IN (SELECT job_id FROM job_dependencies "
        "WHERE depends_on IN (SELECT value FROM json_each(?))) ORDER BY j.id",
        (json.dumps(list(ids)),),
    ).fetchall()
    if not rows:
        return []
    edges = conn.execute(
        "SELECT d.job_id, d.depends_on, p.status FROM job_dependencies AS d "
        "LEFT JOIN jobs AS p ON p.id = d.depends_on "
        "WHERE d.job_id IN (SELECT value FROM json_each(?))",
        (json.dumps([row[0] for row in rows]),),
    ).fetchall()
    statuses: dict[int, dict[int, JobStatus]] = {}
    for job_id, depends_on, status in edges:
        # A dependency that is gone was pruned, which only ever happens once it completed.
        statuses.setdefault(job_id, {})[depends_on] = (
            JobStatus.COMPLETE if status is None else STATUS.get(status, JobStatus.DISCARDED)
        )
    return [
        dependencies.Dependent(
            id=int(job_id),
            status=STATUS.get(status, JobStatus.DISCARDED),
            attempt=int(attempt),
            blocked=bool(blocked),
            policy="run" if policy == "run" else "cancel",
            dependencies=statuses.get(job_id, {}),
            last_error=last_error if isinstance(last_error, str) else None,
        )
        for job_id, status, attempt, blocked, policy, last_error in rows
    ]


def awaited_sql(alias: str) -> str:
    """SQL true when an unfinished dependent waits on the job ``alias`` (kept by pruning)."""
    return (
        f"({alias}.has_dependents = 1 AND EXISTS (SELECT 1 FROM job_dependencies AS d "
        f"JOIN jobs AS c ON c.id = d.job_id WHERE d.depends_on = {alias}.id "
        "AND c.status NOT IN ('complete', 'cancelled', 'discarded')))"
    )
