"""Executors' run-time control on SQLite: the paused state, scale, declared limits, and the
claims of limited executors. Each function runs on the database thread inside the transaction
the backend opened for it; the write lock of that transaction serialises every claim across
processes, so what is counted here is what is executing."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Collection

from rexecutor import _clock, telemetry
from rexecutor.backends.sqlite.codec import MICROSECOND, from_us, to_us
from rexecutor.backends.sqlite.statements import CANDIDATES
from rexecutor.control import ControlChange, ExecutorState
from rexecutor.limits import (
    WAITING_COUNT_CAP,
    ClaimLimits,
    ClaimReport,
    Usage,
    admit,
    plan,
)

_STATE_COLUMNS = (
    "name, paused, max_concurrency, global_max_concurrency, partition_max_concurrency, "
    "rate_allowed, rate_period_us, rate_per_partition, updated_at"
)


def is_paused(conn: sqlite3.Connection, executor: str) -> bool:
    row = conn.execute("SELECT paused FROM executors WHERE name = ?", (executor,)).fetchone()
    return row is not None and bool(row[0])


def admitted_ids(
    conn: sqlite3.Connection, executor: str, want: int, limits: ClaimLimits
) -> tuple[list[int] | None, int]:
    """What a limited claim may take: the ids chosen (None: the first ``n`` due jobs, with
    ``n`` the second value), having recorded nothing yet."""
    now_us = to_us(_clock.now())
    partitioned = limits.partitioned
    key = "partition_key" if partitioned else "NULL"
    executing: Counter[str | None] = Counter(
        {
            row[0]: int(row[1])
            for row in conn.execute(
                f"SELECT {key}, count(*) FROM jobs INDEXED BY jobs_executing_by_executor "
                f"WHERE executor = ? AND status = 'executing' GROUP BY {key}",
                (executor,),
            )
        }
    )
    started: Counter[str | None] = Counter()
    if limits.rate is not None:
        since = now_us - limits.rate.period // MICROSECOND
        conn.execute(
            "DELETE FROM job_starts WHERE executor = ? AND started_at <= ?", (executor, since)
        )
        rate_key = "partition_key" if limits.rate.per_partition else "NULL"
        started.update(
            {
                row[0]: int(row[1])
                for row in conn.execute(
                    f"SELECT {rate_key}, count(*) FROM job_starts WHERE executor = ? "
                    f"GROUP BY {rate_key}",
                    (executor,),
                )
            }
        )
    usage = Usage(executing=executing, started=started)
    chosen = plan(limits, want, usage)
    if chosen.per_key is None or chosen.total == 0:
        return None, chosen.total
    rows = conn.execute(
        CANDIDATES,
        {
            "executor": executor,
            "now": now_us,
            "exclude": json.dumps(["" if k is None else k for k in chosen.exclude]),
            "per_key": chosen.per_key,
            "fetch": chosen.fetch,
        },
    ).fetchall()
    taken, _ = admit(limits, chosen, usage, ((int(r[0]), r[1]) for r in rows))
    return taken, len(taken)


def _waiting_cap() -> int:
    # Counted only for a telemetry handler: else whether one is waiting is enough.
    return WAITING_COUNT_CAP if telemetry.active("executor.held") else 1


def report_waiting(conn: sqlite3.Connection, executor: str, report: ClaimReport) -> None:
    """After a limited claim that took less than asked: the due jobs it left behind, which
    only the limits held back (the claim holds the write lock)."""
    count = int(
        conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM jobs INDEXED BY jobs_ready WHERE executor = ? "
            "AND status IN ('scheduled', 'retryable') AND blocked = 0 AND scheduled_at <= ? "
            "LIMIT ?)",
            (executor, to_us(_clock.now()), _waiting_cap()),
        ).fetchone()[0]
    )
    report.limited = count > 0
    report.held = count


def record_starts(
    conn: sqlite3.Connection, executor: str, limits: ClaimLimits, keys: list[str | None]
) -> None:
    """Count the claimed jobs in the executor's rate window."""
    if limits.rate is not None and keys:
        now_us = to_us(_clock.now())
        conn.executemany(
            "INSERT INTO job_starts (executor, partition_key, started_at) VALUES (?, ?, ?)",
            [(executor, key, now_us) for key in keys],
        )


def states(conn: sqlite3.Connection, names: Collection[str] | None) -> list[ExecutorState]:
    if names is None:
        rows = conn.execute(f"SELECT {_STATE_COLUMNS} FROM executors ORDER BY name").fetchall()
    else:
        wanted = json.dumps(sorted(set(names)))
        rows = conn.execute(
            f"SELECT {_STATE_COLUMNS} FROM executors "
            "WHERE name IN (SELECT value FROM json_each(?)) ORDER BY name",
            (wanted,),
        ).fetchall()
    now_us = to_us(_clock.now())
    found: list[ExecutorState] = []
    for row in rows:
        limits = ClaimLimits.read(*row[3:8])
        in_window = 0
        if limits.rate is not None:
            since = now_us - limits.rate.period // MICROSECOND
            in_window = int(
                conn.execute(
                    "SELECT count(*) FROM job_starts WHERE executor = ? AND started_at > ?",
                    (row[0], since),
                ).fetchone()[0]
            )
        found.append(
            ExecutorState(
                name=str(row[0]),
                paused=bool(row[1]),
                max_concurrency=row[2],
                limits=limits,
                started_in_window=in_window,
                updated_at=from_us(row[8]),
            )
        )
    return found


def change(conn: sqlite3.Connection, name: str, what: ControlChange) -> bool:
    """Store ``what``; returns whether the executor may claim now (not paused)."""
    now_us = to_us(_clock.now())
    conn.execute(
        "INSERT INTO executors (name, updated_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        (name, now_us),
    )
    if what.paused is not None:
        conn.execute(
            "UPDATE executors SET paused = ?, updated_at = ? WHERE name = ?",
            (int(what.paused), now_us, name),
        )
    if what.scale:
        conn.execute(
            "UPDATE executors SET max_concurrency = ?, updated_at = ? WHERE name = ?",
            (what.max_concurrency, now_us, name),
        )
    return not is_paused(conn, name)


def declare(conn: sqlite3.Connection, name: str, limits: ClaimLimits) -> None:
    rate = limits.rate
    conn.execute(
        "INSERT INTO executors (name, global_max_concurrency, partition_max_concurrency, "
        "rate_allowed, rate_period_us, rate_per_partition, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
        "global_max_concurrency = excluded.global_max_concurrency, "
        "partition_max_concurrency = excluded.partition_max_concurrency, "
        "rate_allowed = excluded.rate_allowed, rate_period_us = excluded.rate_period_us, "
        "rate_per_partition = excluded.rate_per_partition, updated_at = excluded.updated_at",
        (
            name,
            limits.global_max,
            limits.partition_max,
            None if rate is None else rate.allowed,
            None if rate is None else rate.period // MICROSECOND,
            0 if rate is None else int(rate.per_partition),
            to_us(_clock.now()),
        ),
    )
