"""The partitioned layout: finished jobs in daily partitions that pruning drops whole.

The jobs table is partitioned by range on the finished time (``COALESCE(completed_at,
cancelled_at, discarded_at)``). Live jobs (that time NULL) stay in the default partition
``rexecutor_jobs_live``; a job that finishes moves, in the statement that finishes it, into
the partition of its finished day (UTC), ``rexecutor_jobs_fYYYYMMDD``. A rerun clears the
finished time and moves it back. Ids stay unique through one sequence (PostgreSQL cannot
enforce a unique index that leaves out the partition key).

The layout is opt-in: :func:`convert_on` rewrites an existing table into it (every job kept),
under the migrations' advisory lock. Partitions are created ahead by :func:`ensure_ahead`
(from the conversion and every prune pass), so a finishing job finds its partition; one that
finds none (a test clock far from today) simply stays in the default partition, where pruning
deletes it row by row.

Every catalog change that locks the hot partition or the parent (attaching, detaching) runs
with a short ``lock_timeout``: when workers hold the table it gives up and the next pass
tries again, so it never queues claims behind it for longer than that.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from typing import Final

import psycopg
from psycopg import sql

from rexecutor.backends.postgres.connection import Conn, _atomic, _execute, _fetchall, _fetchone

__all__ = [
    "AHEAD_DAYS",
    "LOCK_TIMEOUT",
    "Partition",
    "convert_on",
    "drop_partition",
    "ensure_ahead",
    "finished_partitions",
    "is_partitioned",
]

logger = logging.getLogger("rexecutor.backends.postgres")

#: Days of partitions kept ready beyond today.
AHEAD_DAYS: Final = 3
#: The longest a partition change waits for the locks it needs before giving up.
LOCK_TIMEOUT: Final = "1s"
#: The partition key: a job's finished time (NULL while it is live).
KEY: Final = "COALESCE(completed_at, cancelled_at, discarded_at)"

_LIVE: Final = "rexecutor_jobs_live"
_PREFIX: Final = "rexecutor_jobs_f"
_NAME: Final = re.compile(r"^rexecutor_jobs_f(\d{8})$")


@dataclass(frozen=True, slots=True)
class Partition:
    """One day's partition of finished jobs: ``[start, start + 1 day)`` in UTC."""

    name: str
    day: date

    @property
    def start(self) -> datetime:
        """The first instant it holds."""
        return datetime.combine(self.day, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first instant after it."""
        return self.start + timedelta(days=1)

    @classmethod
    def of(cls, day: date) -> Partition:
        """The partition of ``day``."""
        return cls(f"{_PREFIX}{day:%Y%m%d}", day)


async def is_partitioned(conn: Conn, jobs: sql.Identifier) -> bool:
    """Whether the jobs table has the partitioned layout."""
    row = await _fetchone(
        conn, "SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)", [jobs.as_string()]
    )
    return bool(row and row[0])


async def finished_partitions(conn: Conn, schema: str, jobs: sql.Identifier) -> list[Partition]:
    """The day partitions attached to the jobs table, oldest first."""
    rows = await _fetchall(
        conn,
        "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s)",
        [jobs.as_string()],
    )
    found = []
    for (name,) in rows:
        match = _NAME.match(name)
        if match is not None:
            found.append(Partition(name, datetime.strptime(match.group(1), "%Y%m%d").date()))
    return sorted(found, key=lambda p: p.day)


async def _create(conn: Conn, schema: str, jobs: sql.Identifier, partition: Partition) -> None:
    """Create and attach ``partition`` in the caller's transaction, first moving into it any
    row the default partition holds for its day (attaching would fail on them)."""
    table = sql.Identifier(schema, partition.name)
    live = sql.Identifier(schema, _LIVE)
    await _execute(
        conn,
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(
            table, jobs
        ),
    )
    bounds = {"start": partition.start, "end": partition.end}
    await _execute(
        conn,
        sql.SQL(
            "WITH moved AS (DELETE FROM {live} WHERE {key} >= %(start)s AND {key} < %(end)s "
            "RETURNING *) INSERT INTO {table} SELECT * FROM moved"
        ).format(live=live, key=sql.SQL(KEY), table=table),
        bounds,
    )
    await _execute(
        conn,
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            jobs, table, sql.Literal(partition.start), sql.Literal(partition.end)
        ),
    )


async def ensure_ahead(
    conn: Conn, schema: str, jobs: sql.Identifier, today: date, days: int = AHEAD_DAYS
) -> int:
    """Create the missing partitions from ``today`` to ``days`` after it, each in its own
    short transaction; returns how many were created. One that cannot get its locks within
    ``LOCK_TIMEOUT`` is left for the next pass."""
    have = {p.day for p in await finished_partitions(conn, schema, jobs)}
    created = 0
    for offset in range(days + 1):
        day = today + timedelta(days=offset)
        if day in have:
            continue
        try:
            async with _atomic(conn):
                await _execute(conn, f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                await _create(conn, schema, jobs, Partition.of(day))
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DuplicateTable) as exc:
            # Busy, or another node created it a moment ago: either way, the next pass.
            logger.info("rexecutor: partition for %s not created now: %s", day, exc)
            continue
        created += 1
    return created


async def drop_partition(
    conn: Conn, schema: str, identifiers: dict[str, sql.Identifier], partition: Partition
) -> int | None:
    """Detach and drop ``partition`` with its jobs' dependency rows, in the caller's
    transaction; returns how many jobs went with it, or None when the parent's lock was not
    had within ``LOCK_TIMEOUT`` (nothing changed)."""
    table = sql.Identifier(schema, partition.name)
    row = await _fetchone(conn, sql.SQL("SELECT count(*) FROM {}").format(table))
    count = int(row[0]) if row is not None else 0
    await _execute(conn, f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    await _execute(conn, "SAVEPOINT rexecutor_detach")
    try:
        await _execute(
            conn, sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(identifiers["jobs"], table)
        )
    except psycopg.errors.LockNotAvailable:
        await _execute(conn, "ROLLBACK TO SAVEPOINT rexecutor_detach")
        return None
    await _execute(
        conn,
        sql.SQL("DELETE FROM {} WHERE job_id IN (SELECT id FROM {})").format(
            identifiers["dependencies"], table
        ),
    )
    await _execute(conn, sql.SQL("DROP TABLE {}").format(table))
    return count


def _template(name: str) -> str:
    return resources.files(__package__).joinpath("migrations", name).read_text(encoding="utf-8")


async def convert_on(
    conn: Conn, schema: str, identifiers: dict[str, sql.Identifier], today: date
) -> bool:
    """Rewrite the jobs table into the partitioned layout, keeping every job, its id and the
    id sequence's position; in the caller's transaction. Returns False (changing nothing)
    when it has the layout already.

    The old table's secondary indexes and triggers are recreated on the new one from their
    catalog definitions, so the layout follows whatever the versioned migrations built.
    """
    jobs = identifiers["jobs"]
    if await is_partitioned(conn, jobs):
        return False
    sequence = sql.Identifier(schema, "rexecutor_jobs_id_seq").as_string()
    new = sql.Identifier(schema, "rexecutor_jobs_partitioned")
    names: dict[str, sql.Composable] = {
        **identifiers,
        "new": new,
        "sequence": sql.Literal(sequence),
    }
    # Where the old id sequence stands (NULL: never used), so that no id is handed out twice.
    position = await _fetchone(
        conn,
        "SELECT pg_sequence_last_value(pg_get_serial_sequence(%s, 'id')::regclass)",
        [jobs.as_string()],
    )
    indexes = await _fetchall(
        conn,
        "SELECT i.indexdef FROM pg_indexes AS i JOIN pg_class AS c "
        "ON c.relname = i.indexname AND c.relnamespace = to_regnamespace(i.schemaname) "
        "JOIN pg_index AS x ON x.indexrelid = c.oid "
        "WHERE i.schemaname = %s AND i.tablename = 'rexecutor_jobs' AND NOT x.indisprimary",
        [schema],
    )
    triggers = await _fetchall(
        conn,
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger "
        "WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal",
        [jobs.as_string()],
    )
    await _execute(conn, sql.SQL(_template("partitioned_1_tables.sql")).format(**names))
    days = await _fetchall(
        conn,
        sql.SQL(
            "SELECT DISTINCT ({key} AT TIME ZONE 'UTC')::date FROM {jobs} WHERE {key} IS NOT NULL"
        ).format(key=sql.SQL(KEY), jobs=jobs),
    )
    wanted = {day for (day,) in days} | {today + timedelta(days=n) for n in range(AHEAD_DAYS + 1)}
    for day in sorted(wanted):
        await _create(conn, schema, new, Partition.of(day))
    await _execute(conn, sql.SQL(_template("partitioned_2_swap.sql")).format(**names))
    await _execute(
        conn,
        sql.SQL(
            "SELECT setval(%(seq)s::regclass, m, true) FROM "
            "(SELECT GREATEST(%(last)s::bigint, max(id)) AS m FROM {}) AS s WHERE m IS NOT NULL"
        ).format(jobs),
        {"seq": sequence, "last": position[0] if position else None},
    )
    for (definition,) in [*indexes, *triggers]:
        await _execute(conn, definition)
    return True
