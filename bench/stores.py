"""The driver's view of each store: create it, empty it, fill it, and read the figures back.

Throughput is computed from the database's own timestamps: the first ``attempted_at`` to the
last ``completed_at`` of the jobs of one run.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.apps import NAME

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class PgStore:
    """A throw-away database ``rexecutor_bench_*`` on the local server, dropped at the end."""

    kind = "postgres"

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.dbname = f"rexecutor_bench_{os.getpid()}_{secrets.token_hex(3)}"
        # A postgresql:// URL, as backend_from_url and the worker command line take.
        self.url = _as_url(make_conninfo(admin_url, dbname=self.dbname))
        self.worker_url = self.url
        self._conn: psycopg.Connection[Any] | None = None

    def create(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname)))

    def drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        # Retried for a while: the server may be restarting (the test suite restarts it).
        deadline = time.monotonic() + 120
        while True:
            try:
                with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
                    admin.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(self.dbname)
                        )
                    )
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def wait_until_up(self, timeout: float = 120.0) -> None:
        """Until the server accepts connections again (after a restart)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                self.conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.url, autocommit=True)
        return self._conn

    def server_version(self) -> str:
        row = self.conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def settings(self) -> dict[str, str]:
        names = ("fsync", "synchronous_commit", "shared_buffers", "autovacuum")
        return {n: str(self.conn.execute(f"SHOW {n}").fetchone()[0]) for n in names}  # type: ignore[index]

    def reset(self) -> None:
        self.conn.execute("TRUNCATE rexecutor_jobs, rexecutor_nodes")

    def fill_finished(self, count: int) -> None:
        self.conn.execute(
            "INSERT INTO rexecutor_jobs (status, executor, data, attempt, attempted_at, "
            "completed_at, attempted_by) SELECT 'complete', %s, '0', 1, now(), now(), 'fill' "
            "FROM generate_series(1, %s)",
            (NAME, count),
        )
        self.tidy()

    def tidy(self) -> None:
        """What autovacuum would do (it is off on this server): vacuum and analyse the jobs;
        then a checkpoint, so that the next figure is not measured while the server writes
        back what the set-up dirtied (millions of rows fill gigabytes of WAL)."""
        self.conn.execute("VACUUM ANALYZE rexecutor_jobs")
        self.conn.execute("CHECKPOINT")

    def delete_after(self, after_id: int) -> None:
        """Delete the jobs above ``after_id`` (one figure's), leaving the table as it was."""
        self.conn.execute("DELETE FROM rexecutor_jobs WHERE id > %s", (after_id,))

    def node_pids(self) -> set[int]:
        return {int(r[0]) for r in self.conn.execute("SELECT pid FROM rexecutor_nodes")}

    def max_id(self) -> int:
        row = self.conn.execute("SELECT COALESCE(max(id), 0) FROM rexecutor_jobs").fetchone()
        return int(row[0]) if row else 0

    def count_complete(self, after_id: int) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM rexecutor_jobs WHERE id > %s AND status = 'complete'",
            (after_id,),
        ).fetchone()
        return int(row[0]) if row else 0

    def window(self, after_id: int) -> tuple[int, float]:
        """How many jobs after ``after_id`` completed, and the seconds from the first start to
        the last completion."""
        row = self.conn.execute(
            "SELECT count(*), EXTRACT(EPOCH FROM max(completed_at) - min(attempted_at)) "
            "FROM rexecutor_jobs WHERE id > %s AND status = 'complete'",
            (after_id,),
        ).fetchone()
        assert row is not None
        return int(row[0]), float(row[1] or 0.0)

    def attempts(self, after_id: int) -> list[tuple[datetime, datetime | None, str | None, int]]:
        """Every job after ``after_id``: its last attempt's start and completion, its partition
        key, and its attempt count."""
        rows = self.conn.execute(
            "SELECT attempted_at, completed_at, partition_key, attempt FROM rexecutor_jobs "
            "WHERE id > %s ORDER BY id",
            (after_id,),
        ).fetchall()
        return [(r[0], r[1], r[2], int(r[3])) for r in rows]

    def pgbench_args(self) -> list[str]:
        info = conninfo_to_dict(self.url)
        args = []
        if info.get("host"):
            args += ["-h", str(info["host"])]
        if info.get("port"):
            args += ["-p", str(info["port"])]
        if info.get("user"):
            args += ["-U", str(info["user"])]
        return [*args, self.dbname]

    def pgbench_env(self) -> dict[str, str]:
        info = conninfo_to_dict(self.url)
        env = dict(os.environ)
        if info.get("password"):
            env["PGPASSWORD"] = str(info["password"])
        return env


def _as_url(conninfo: str) -> str:
    info = conninfo_to_dict(conninfo)
    user = info.get("user", "")
    password = f":{info['password']}" if info.get("password") else ""
    auth = f"{user}{password}@" if user else ""
    host = info.get("host", "127.0.0.1")
    port = info.get("port", "5432")
    return f"postgresql://{auth}{host}:{port}/{info['dbname']}"


class SqliteStore:
    """A database file in the run's scratch directory."""

    kind = "sqlite"

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, "bench.db")
        self.url = "sqlite:///" + os.path.abspath(self.path)
        self.worker_url = self.url
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        return self._conn

    def drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.remove(self.path + suffix)

    def reset(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("DELETE FROM jobs")
        self.conn.execute("DELETE FROM nodes")
        self.conn.execute("COMMIT")

    def fill_finished(self, count: int) -> None:
        now_us = int(time.time() * 1_000_000)
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
            "INSERT INTO jobs (status, executor, data, metadata, attempt, max_attempts, priority, "
            "tags, errors, inserted_at, scheduled_at, attempted_at, attempted_by, completed_at) "
            "SELECT 'complete', ?, '0', 'null', 1, 5, 0, '[]', '[]', ?, ?, ?, 'fill', ? FROM c",
            (count, NAME, now_us, now_us, now_us, now_us),
        )
        self.conn.execute("COMMIT")
        self.tidy()

    def tidy(self) -> None:
        self.conn.execute("ANALYZE")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def node_pids(self) -> set[int]:
        return {int(r[0]) for r in self.conn.execute("SELECT pid FROM nodes")}

    def max_id(self) -> int:
        row = self.conn.execute("SELECT COALESCE(max(id), 0) FROM jobs").fetchone()
        return int(row[0])

    def count_complete(self, after_id: int) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM jobs WHERE id > ? AND status = 'complete'", (after_id,)
        ).fetchone()
        return int(row[0])

    def window(self, after_id: int) -> tuple[int, float]:
        row = self.conn.execute(
            "SELECT count(*), max(completed_at) - min(attempted_at) FROM jobs "
            "WHERE id > ? AND status = 'complete'",
            (after_id,),
        ).fetchone()
        return int(row[0]), (row[1] or 0) / 1_000_000
