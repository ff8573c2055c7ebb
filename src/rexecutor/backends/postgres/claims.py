"""Claiming: one statement picks and takes the first ready jobs (``FOR UPDATE SKIP LOCKED``).

A ``MATERIALIZED`` CTE picks the first ``limit`` ready jobs in claim order, skipping rows
other claimers hold (so concurrent claimers never wait for, or get, the same row), and the
``UPDATE`` makes them executing. A claimed row that cannot be read is set aside (discarded,
with readable stand-ins); a claim whose caller was cancelled hands its jobs straight back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from datetime import datetime
from typing import Any

from rexecutor import telemetry
from rexecutor.backends._common import RowReader, poison_failure, schedulable
from rexecutor.backends.postgres.codec import (
    _COLUMN_NAMES,
    _JSON_ENCODE,
    _db_now,
    _error_params,
    _read_claimed,
    _UnreadableJson,
    _utc,
)
from rexecutor.backends.postgres.connection import (
    Conn,
    Row,
    _atomic,
    _execute,
    _fetchall,
    _fetchone,
)
from rexecutor.backends.postgres.pool import _Pooled
from rexecutor.errors import RexecutorError
from rexecutor.job import Job
from rexecutor.limits import WAITING_COUNT_CAP, ClaimLimits, ClaimReport, Usage, admit, plan

logger = logging.getLogger("rexecutor.backends.postgres")

_AT_PARTITION_KEY = _COLUMN_NAMES.index("partition_key")


class _Claiming(_Pooled):
    """The claim operations of ``PostgresBackend``."""

    async def claim_ready_jobs(
        self,
        executor: str,
        limit: int,
        node_id: str,
        *,
        limits: ClaimLimits | None = None,
        report: ClaimReport | None = None,
    ) -> list[Job[Any, Any]]:
        """Claim up to ``limit`` due jobs of ``executor`` in one statement (SKIP LOCKED); an
        executor with limits is claimed under its row lock (see :meth:`_claim_limited`).

        Cancelling the caller cannot strand jobs: the claim runs to its end shielded, and
        whatever it claimed is handed straight back (attempt given back, still due).
        """
        if limit <= 0:
            return []
        jobs: list[Job[Any, Any]] = []
        held: list[Row] = []  # the rows of ``jobs``, handed back if the caller goes away
        want = int(limit)
        while True:
            params = {"executor": executor, "limit": want, "node": node_id, "now": _db_now()}

            async def work(conn: Conn, params: dict[str, Any] = params) -> list[Row]:
                if limits is not None and limits.any:
                    # One transaction: the executor's row lock is held until it ends.
                    async with _atomic(conn):
                        return await self._claim_limited(conn, params, limits, report)
                rows = await _fetchall(conn, self._q["claim"], params, binary=True)
                if not rows and report is not None:
                    paused = await _fetchone(conn, self._q["is_paused"], params)
                    report.paused = paused is not None and bool(paused[0])
                return rows

            claim = asyncio.ensure_future(self._run(work))
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

    async def _claim_limited(
        self,
        conn: Conn,
        params: dict[str, Any],
        limits: ClaimLimits,
        report: ClaimReport | None,
    ) -> list[Row]:
        """A claim under the executor's row lock: what is executing and what started in the
        window are counted from the rows, and :mod:`rexecutor.limits` chooses."""
        q = self._q
        locked = await _fetchone(conn, q["lock_executor"], params)
        if locked is None:
            await _execute(conn, q["ensure_executor"], params)
            locked = await _fetchone(conn, q["lock_executor"], params)
        if locked is not None and locked[0]:
            if report is not None:
                report.paused = True
            return []
        counted = await _fetchone(
            conn, q["executing_counts"], {**params, "partitioned": limits.partitioned}
        )
        assert counted is not None
        stamp, keys, counts = counted
        if params["now"] is None:
            params = {**params, "now": stamp}
        started: list[Row] = []
        rate = limits.rate
        if rate is not None:
            await _execute(conn, q["forget_starts"], {**params, "period": rate.period})
            started = await _fetchall(
                conn, q["started_counts"], {**params, "per_partition": rate.per_partition}
            )
        usage = Usage(
            executing={key: int(n) for key, n in zip(keys, counts, strict=True)},
            started={key: int(n) for key, n in started},
        )
        want = int(params["limit"])
        chosen = plan(limits, want, usage)
        rows: list[Row] = []
        if chosen.total > 0 and chosen.per_key is None:
            rows = await _fetchall(conn, q["claim"], {**params, "limit": chosen.total}, binary=True)
        elif chosen.total > 0:
            candidates = await _fetchall(
                conn,
                q["candidates"],
                {
                    **params,
                    "exclude": ["" if key is None else key for key in chosen.exclude],
                    "per_key": chosen.per_key,
                    "fetch": chosen.fetch,
                },
            )
            ids, _ = admit(limits, chosen, usage, ((int(r[0]), r[1]) for r in candidates))
            if ids:
                rows = await _fetchall(conn, q["claim_ids"], {**params, "ids": ids}, binary=True)
        if rate is not None and rows:
            keys = [row[_AT_PARTITION_KEY] for row in rows]
            await _execute(conn, q["record_starts"], {**params, "keys": keys})
        if report is not None and len(rows) < want:
            # Counted only for a telemetry handler: else whether one is waiting is enough.
            cap = WAITING_COUNT_CAP if telemetry.active("executor.held") else 1
            waiting = await _fetchone(conn, q["waiting"], {**params, "cap": cap})
            count = 0 if waiting is None else int(waiting[0])
            report.limited = count > 0
            report.held = count
        return rows

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
                    "now": _db_now(),
                }
                await _execute(conn, self._q["set_aside"], params)
                logger.warning(
                    "rexecutor: job %s of executor %r cannot be read and was discarded: %s",
                    int(job.id),
                    job.executor,
                    "; ".join(reader.problems),
                )

        await self._run(work)
        await self._announce_finished([int(job.id) for job, _ in items])

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
