"""Workflows on PostgreSQL: storing a job's dependencies and answering the walk of
:mod:`rexecutor.dependencies` in one transaction.

A walk runs right after the change that caused it committed (in its own transaction): each
settle reads the rows afresh, so when two dependencies of one job finish at once on two nodes,
the settle of whichever committed last sees both finished and releases the job. A node that
dies between the two leaves the job blocked until the heartbeat thread's sweep
(``settle_blocked``) repairs it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

from rexecutor import dependencies
from rexecutor._payload import storable_delay
from rexecutor.backends.postgres.codec import _STATUSES, _db_now, _error_params, _read_job
from rexecutor.backends.postgres.connection import (
    Conn,
    Row,
    _atomic,
    _fetchall,
    _fetchone,
)
from rexecutor.backends.postgres.pool import _Pooled
from rexecutor.job import Job, JobStatus
from rexecutor.lifecycle import Fence, Transition

_NO_ERROR: Final[dict[str, Any]] = {
    "error_type": None,
    "details": None,
    "error_name": None,
    "traceback": None,
}


def transition_params(
    job_id: int, fence: Fence, transition: Transition, cancel_channel: str
) -> dict[str, Any]:
    """The parameters of the ``transition`` statement for one fenced transition."""
    status = JobStatus(transition.status)
    fence_status = JobStatus(fence.status)
    hint = (
        fence_status is JobStatus.EXECUTING
        and fence.node_id is None
        and status is not JobStatus.EXECUTING
    )
    error = transition.error
    run_in = transition.run_in
    raise_to = transition.min_max_attempts
    return {
        "id": job_id,
        "fence_status": fence_status.value,
        "attempt": int(fence.attempt),
        "node": fence.node_id,
        "status": status.value,
        "new_attempt": None if transition.attempt is None else int(transition.attempt),
        "run_in": None if run_in is None else storable_delay(run_in),
        "min_max_attempts": None if raise_to is None else int(raise_to),
        "reopen": bool(transition.reopen),
        "result": transition.result,
        "hint": hint,
        "cancel_channel": cancel_channel,
        "now": _db_now(),
        **(_NO_ERROR if error is None else _error_params(error)),
    }


class _Depending(_Pooled):
    """The workflow operations of ``PostgresBackend``."""

    async def _walk(self, steps: dependencies.Walk, conn: Conn | None = None) -> None:
        """Run a walk in one transaction (``conn``'s, when given: a caller's enqueue)."""
        released: set[str] = set()

        async def answer(conn: Conn, request: dependencies.Request) -> object:
            if isinstance(request, dependencies.ReadDependents):
                rows = await _fetchall(conn, self._q["dependents"], {"ids": list(request.ids)})
                return [_dependent(row) for row in rows]
            if isinstance(request, dependencies.SetBlocked):
                params = {"ids": list(request.ids), "blocked": request.blocked}
                rows = await _fetchall(conn, self._q["set_blocked"], params)
                if not request.blocked:
                    released.update(str(row[0]) for row in rows)
                return None
            params = transition_params(
                request.id, request.fence, request.transition, self._cancel_channel
            )
            row = await _fetchone(conn, self._q["transition"], params)
            return row is not None and row[0] is not None

        async def work(conn: Conn) -> None:
            async with _atomic(conn):
                await dependencies.drive_async(steps, lambda r: answer(conn, r))

        if conn is not None:
            await work(conn)
        else:
            await self._run(work)
        for executor in released:
            self.notify(executor)

    async def workflow_jobs(self, workflow_id: str) -> list[Job[Any, Any]]:
        async def work(conn: Conn) -> list[Row]:
            params = {"workflow_id": workflow_id}
            return await _fetchall(conn, self._q["workflow_jobs"], params, binary=True)

        return [_read_job(row) for row in await self._run(work, retry=True)]

    async def dependencies(self, job_ids: Collection[int]) -> dict[int, list[int]]:
        wanted = sorted({int(j) for j in job_ids})

        async def work(conn: Conn) -> list[Row]:
            return await _fetchall(conn, self._q["dependencies_of"], {"ids": wanted})

        found: dict[int, list[int]] = {}
        for job_id, depends_on in await self._run(work, retry=True):
            found.setdefault(int(job_id), []).append(int(depends_on))
        return found

    async def settle_blocked(self) -> int:
        async def read(conn: Conn) -> list[Row]:
            return await _fetchall(conn, self._q["blocked_dependencies"])

        waited = [int(row[0]) for row in await self._run(read, retry=True)]
        if not waited:
            return 0

        async def state(conn: Conn) -> dict[int, tuple[Any, Any]]:
            rows = await _fetchall(conn, self._q["blocked_state"], {"ids": []})
            return {int(r[0]): (r[1], r[2]) for r in rows}

        before = await self._run(state, retry=True)
        await self._walk(dependencies.propagate(waited))

        async def after_state(conn: Conn) -> dict[int, tuple[Any, Any]]:
            rows = await _fetchall(conn, self._q["blocked_state"], {"ids": list(before)})
            return {int(r[0]): (r[1], r[2]) for r in rows}

        after = await self._run(after_state, retry=True)
        return sum(1 for job_id, was in before.items() if after.get(job_id) != was)


def _dependent(row: Row) -> dependencies.Dependent:
    job_id, status, attempt, blocked, policy, last_error, on, statuses = row
    return dependencies.Dependent(
        id=int(job_id),
        status=_STATUSES.get(status, JobStatus.DISCARDED),
        attempt=int(attempt),
        blocked=bool(blocked),
        policy="run" if policy == "run" else "cancel",
        dependencies={
            int(d): _STATUSES.get(s, JobStatus.DISCARDED) for d, s in zip(on, statuses, strict=True)
        },
        last_error=last_error,
    )
