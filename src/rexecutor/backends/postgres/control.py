"""Executors' run-time control on PostgreSQL: the paused state, scale and declared limits,
stored in ``rexecutor_executors``. A change that lets an executor claim notifies the jobs
channel as it commits, so the runners of every node claim at once."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from rexecutor.backends.postgres.codec import _db_now, _utc
from rexecutor.backends.postgres.connection import Conn, Row, _execute, _fetchall
from rexecutor.backends.postgres.pool import _Pooled
from rexecutor.control import ControlChange, ExecutorState
from rexecutor.limits import ClaimLimits


class _Controlling(_Pooled):
    """The run-time control operations of ``PostgresBackend``."""

    async def executor_states(self, names: Collection[str] | None) -> list[ExecutorState]:
        params = {"names": None if names is None else sorted(set(names)), "now": _db_now()}

        async def work(conn: Conn) -> list[Row]:
            return await _fetchall(conn, self._q["executor_states"], params)

        return [_state(row) for row in await self._run(work, retry=True)]

    async def change_executor(self, name: str, change: ControlChange) -> None:
        params = {
            "name": name,
            "paused": change.paused,
            "scale": change.scale,
            "max": change.max_concurrency,
            "channel": self._channel,
            # The trigger's payload rule: names beyond 1000 bytes wake every runner.
            "wake": name if len(name.encode()) <= 1000 else "",
            "now": _db_now(),
        }

        async def work(conn: Conn) -> int:
            return await _execute(conn, self._q["change_executor"], params)

        await self._run(work, retry=True)
        self.notify(name)

    async def declare_limits(self, name: str, limits: ClaimLimits) -> None:
        rate = limits.rate
        params: dict[str, Any] = {
            "name": name,
            "global_max": limits.global_max,
            "partition_max": limits.partition_max,
            "rate_allowed": None if rate is None else rate.allowed,
            "rate_period": None if rate is None else rate.period,
            "rate_per_partition": rate is not None and rate.per_partition,
            "now": _db_now(),
        }

        async def work(conn: Conn) -> int:
            return await _execute(conn, self._q["declare_limits"], params)

        await self._run(work, retry=True)


def _state(row: Row) -> ExecutorState:
    name, paused, scale = row[:3]
    return ExecutorState(
        name=name,
        paused=bool(paused),
        max_concurrency=scale,
        limits=ClaimLimits.read(*row[3:8]),
        started_in_window=int(row[9] or 0),
        updated_at=_utc(row[8]),
    )
