"""``SqliteBackend``: the backend class and its domain operations.

How the pieces fit: every call runs on the backend's database thread (``connection``), in a
``BEGIN IMMEDIATE`` transaction or as autocommit reads; rows are read and written by ``codec``;
the statements of the hot and fenced paths are in ``statements``, query trees are compiled by
``query``, the schema is in ``migrations``, and other processes' commits are noticed by the
``watcher``. "Now" comes from :func:`rexecutor._clock.now`, so tests can move time. Every job
transition is decided by :mod:`rexecutor.lifecycle` and stored by :meth:`apply_transition`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar, cast

from rexecutor import _clock, dependencies
from rexecutor._notify import Wakeups
from rexecutor._payload import DEFAULT_MAX_PAYLOAD_BYTES
from rexecutor.backend import (
    Backend,
    Capabilities,
    Completion,
    EnqueuableJob,
    EnqueueResult,
    Lease,
    NodeInfo,
    PruneSpec,
    check_batch_size,
    completions_of,
    refuse_connection,
)
from rexecutor.backends._common import tally, validate_enqueuable, validate_update
from rexecutor.backends.sqlite import control
from rexecutor.backends.sqlite import dependencies as workflow
from rexecutor.backends.sqlite.codec import (
    COLUMNS,
    STATUS,
    Prepared,
    clamped_from_us,
    equality_text_if_needed,
    from_us,
    job_key,
    select_jobs,
    stored_status,
    to_us,
)
from rexecutor.backends.sqlite.connection import (
    DbThread,
    Outcome,
    Write,
    check_synchronous,
    open_connection,
    pragma,
    read,
    transaction,
    transactions,
)
from rexecutor.backends.sqlite.errors import not_connected
from rexecutor.backends.sqlite.migrations import SCHEMA_VERSION, apply_migrations
from rexecutor.backends.sqlite.query import compile_query, placeholders
from rexecutor.backends.sqlite.statements import (
    CLAIMABLE_SQL,
    FINISHED_SQL,
    PROGRESS,
)
from rexecutor.backends.sqlite.watcher import WatchedHub, Watcher, open_watch_connection
from rexecutor.backends.sqlite.writes import (
    apply_tx,
    claim_tx,
    complete_many_tx,
    enqueue_tx,
    give_back_tx,
    orphaned_tx,
    settle_blocked_tx,
)
from rexecutor.control import ControlChange, ExecutorState
from rexecutor.errors import (
    BackendError,
    ConfigurationError,
    JobNotFound,
    SchemaVersionError,
    ValidationError,
)
from rexecutor.job import Job, JobProgress, JobStatus
from rexecutor.lifecycle import Fence, Transition
from rexecutor.limits import ClaimLimits, ClaimReport
from rexecutor.query import QueryNode

__all__ = ["SqliteBackend"]

T = TypeVar("T")

_log = logging.getLogger("rexecutor")


class SqliteBackend(Backend):
    """Jobs in one SQLite file: durable, and safe for several processes on one machine.

    Args:
        path: the database file; created (mode 0600) with its schema if missing. Its directory
            must exist and be writable, because SQLite keeps ``-wal`` and ``-shm`` files beside it.
        poll_interval: seconds between checks for commits by other processes while a runner is
            subscribed; runners also use it as their fallback wait.
        busy_timeout: how long an operation waits for another process's write lock before it
            fails with :class:`~rexecutor.errors.BackendError`.
        migrate: create or upgrade the schema on ``connect()``; with ``False`` a file whose
            schema is not current is refused instead.
        synchronous: ``"full"`` (the default): every commit is on disk before the call that
            made it returns, so a power loss or an OS crash loses nothing that was committed.
            ``"normal"``: commits reach the disk at the next WAL checkpoint instead of each
            fsync; several times faster for small writes (one-by-one enqueue, acks). A
            killed process still loses nothing, and in WAL mode the file is never corrupted,
            but a power loss or OS crash can undo the last commits (enqueued jobs vanish,
            finished jobs run again). Also ``sqlite:///jobs.db?synchronous=normal``.

    Example:
        >>> backend = SqliteBackend("jobs.db")
        >>> async with backend:                      # doctest: +SKIP
        ...     await backend.enqueue(EnqueuableJob("mailer", {"to": "a@example.com"}))
    """

    #: Durable and shared by the processes of one machine (one file, its lock); another
    #: process's commits wake this one's runners through the watcher. Enqueue cannot join a
    #: caller's transaction, and a file on a network share is not safe for several hosts.
    capabilities: ClassVar[Capabilities] = Capabilities(
        transactional_enqueue=False,
        cross_process_wakeups=True,
        durable=True,
        multi_process=True,
        multi_host=False,
        follows_test_clock=True,
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        poll_interval: float = 0.05,
        busy_timeout: timedelta = timedelta(seconds=30),
        migrate: bool = True,
        synchronous: str = "full",
    ) -> None:
        self.synchronous = check_synchronous(synchronous)
        if poll_interval <= 0:
            raise ConfigurationError(f"poll_interval must be positive, got {poll_interval}")
        if busy_timeout < timedelta(0):
            raise ConfigurationError(f"busy_timeout must not be negative, got {busy_timeout}")
        self._hub = WatchedHub()
        self.wakeups = Wakeups(jobs=self._hub, finished=self._hub.finished)
        self.max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES
        self.poll_interval = float(poll_interval)
        self.busy_timeout = busy_timeout
        self._path = os.fspath(path)
        self._migrate = migrate
        self._db: DbThread | None = None
        self._watcher: Watcher | None = None
        # Touched only on the database thread:
        self._conn: sqlite3.Connection | None = None
        self._seen_version = 0  # main connection's data_version when last looked at
        self._watch_baseline: tuple[sqlite3.Connection, int] | None = None

    @property
    def path(self) -> str:
        """The database file, as given."""
        return self._path

    def __repr__(self) -> str:
        return f"SqliteBackend({self._path!r})"

    # -- lifecycle -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the file, create or migrate its schema, and start the watcher; idempotent."""
        if self._db is not None:
            return
        db = DbThread(f"rexecutor-sqlite:{self._path}", self._writes)
        # Set before awaiting so a concurrent connect() returns at once; its calls queue behind
        # the open on the same thread.
        self._db = db
        try:
            await db.call(self._open)
        except BaseException:
            # Also when cancelled: the open may still finish on the thread, so undo it there.
            self._db = None
            db.call_blocking(self._close_connection)
            db.stop()
            raise
        assert self._watch_baseline is not None  # set by _open
        watch_conn, watch_version = self._watch_baseline
        self._watch_baseline = None
        self._watcher = Watcher(
            watch_conn,
            watch_version,
            path=self._path,
            interval=self.poll_interval,
            timeout=self._watch_timeout,
            hub=self._hub,
            foreign=lambda: db.call_blocking(self._foreign_commits),
            wake=self._foreign_commit,
        )

    async def close(self) -> None:
        """Stop the watcher, close the connection and end the database thread."""
        db, self._db = self._db, None
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            await asyncio.to_thread(watcher.stop)
        if db is not None:
            try:
                await db.call(self._close_connection)
            finally:
                db.stop()

    async def migrate(self) -> int:
        """Create or upgrade the file's schema; returns the schema version now in place."""
        return await asyncio.to_thread(self._migrate_file)

    def _migrate_file(self) -> int:
        conn = open_connection(self._path)
        try:
            version = int(self._read(conn, pragma, "user_version"))
            self._refuse_newer(version)
            if version < SCHEMA_VERSION:
                self._read(conn, pragma, "journal_mode=WAL")
                self._transaction(conn, apply_migrations, self._path)
            return SCHEMA_VERSION
        finally:
            conn.close()

    def _refuse_newer(self, version: int) -> None:
        # A file from a newer library must be left exactly as it is.
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self._path} has rexecutor schema version {version}, but this version of "
                f"rexecutor knows only up to {SCHEMA_VERSION}: upgrade rexecutor, or use "
                "another file. The file was not modified."
            )

    def _open(self) -> None:
        """Open and prepare the connection (on the database thread)."""
        conn = open_connection(self._path)
        try:
            # Read the version before anything that could write: a file from a newer library
            # must be left exactly as it is.
            version = int(self._read(conn, pragma, "user_version"))
            self._refuse_newer(version)
            if version < SCHEMA_VERSION and not self._migrate:
                raise SchemaVersionError(
                    f"{self._path} has rexecutor schema version {version}, but this version "
                    f"needs {SCHEMA_VERSION}: connect once with migrate=True to upgrade it"
                )
            mode = str(self._read(conn, pragma, "journal_mode=WAL"))
            if mode.lower() != "wal":
                raise BackendError(
                    f"cannot switch {self._path} to WAL mode (SQLite answered {mode!r}); "
                    "SqliteBackend needs a file on a local filesystem"
                )
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            if version < SCHEMA_VERSION:
                self._transaction(conn, apply_migrations, self._path)
            # Both baselines before connect() returns, the watcher's first: a commit between the
            # two reads predates connect() and is found by the first claim, not by a wake-up.
            watch = self._read(
                conn, lambda _: open_watch_connection(self._path, self._watch_timeout)
            )
            try:
                self._seen_version = int(self._read(conn, pragma, "data_version"))
            except BaseException:
                watch[0].close()
                raise
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._watch_baseline = watch

    @property
    def _watch_timeout(self) -> float:
        # data_version takes no lock; a short busy wait only covers a WAL recovery in progress.
        return min(self.busy_timeout.total_seconds(), 1.0)

    def _foreign_commits(self) -> bool:
        """Whether another connection committed since the last look (on the database thread).

        The main connection's ``data_version`` changes only for other connections' commits.
        """
        conn = self._conn
        if conn is None:
            return False
        version = int(self._read(conn, pragma, "data_version"))
        changed = version != self._seen_version
        self._seen_version = version
        return changed

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        watch, self._watch_baseline = self._watch_baseline, None
        if watch is not None:
            watch[0].close()

    # -- running SQL -----------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` on the database thread, inside a write transaction."""
        db = self._db
        if db is None:
            raise self._not_connected()
        return await db.call_write(lambda conn: fn(conn, *args))

    async def _call_read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` on the database thread, outside any transaction."""
        db = self._db
        if db is None:
            raise self._not_connected()
        return await db.call(lambda: self._read(self._connection(), fn, *args))

    def _writes(self, work: list[Write]) -> list[Outcome]:
        """Commit writes queued together on the database thread (``connection.transactions``)."""
        return transactions(self._connection(), self._path, self.busy_timeout.total_seconds(), work)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise self._not_connected()
        return self._conn

    def _not_connected(self) -> BackendError:
        return not_connected(self._path)

    def _transaction(self, conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` in one write transaction (see ``connection.transaction``)."""
        return transaction(conn, self._path, self.busy_timeout.total_seconds(), fn, *args)

    def _read(self, conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` as autocommit reads (see ``connection.read``)."""
        return read(conn, self._path, self.busy_timeout.total_seconds(), fn, *args)

    # -- enqueue ---------------------------------------------------------------------------

    async def enqueue(self, job: EnqueuableJob, *, connection: Any = None) -> EnqueueResult:
        refuse_connection(self, connection)
        dependencies.check_batch([job])
        prepared = Prepared(job, validate_enqueuable(job, self.max_payload_bytes))
        results, wake = await self._call(enqueue_tx, [prepared])
        self._wake_all(wake)
        return results[0]

    async def enqueue_many(
        self, jobs: Sequence[EnqueuableJob], *, connection: Any = None
    ) -> list[EnqueueResult]:
        refuse_connection(self, connection)
        limit = self.max_payload_bytes
        prepared = [Prepared(job, validate_enqueuable(job, limit)) for job in jobs]
        dependencies.check_batch(jobs)
        if not prepared:
            return []
        results, wake = await self._call(enqueue_tx, prepared)
        self._wake_all(wake)
        return results

    def _foreign_commit(self) -> None:
        # Another process committed: new work may be ready, a job we run was cancelled, or
        # jobs someone here waits for finished.
        self.notify()
        self.notify_cancellation()
        self.wakeups.notify_finished(None)

    def _wake_all(self, executors: Collection[str]) -> None:
        for executor in executors:
            self.notify(executor)

    # -- claiming and transitions ------------------------------------------------------------

    async def claim_ready_jobs(
        self,
        executor: str,
        limit: int,
        node_id: str,
        *,
        limits: ClaimLimits | None = None,
        report: ClaimReport | None = None,
    ) -> list[Job[Any, Any]]:
        if limit <= 0:
            return []
        db = self._db
        if db is None:
            raise self._not_connected()
        aside: list[int] = []  # jobs the claim set aside (discarded): finished for waiters
        claim = db.call_write(
            lambda conn: claim_tx(conn, executor, limit, node_id, limits, report, aside)
        )
        try:
            # Shielded: a cancelled caller must not lose the result of a claim that commits
            # anyway, or its jobs would stay executing on a live node that never runs them.
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            claim.add_done_callback(lambda done: self._give_back(db, done))
            raise
        finally:
            if claim.done() and not claim.cancelled() and claim.exception() is None:
                self.wakeups.notify_finished(aside)

    def _give_back(self, db: DbThread, claim: asyncio.Future[list[Job[Any, Any]]]) -> None:
        """Return the jobs of a claim whose caller was cancelled to the queue, attempts undone."""
        if claim.cancelled() or claim.exception() is not None or not claim.result():
            return
        jobs = claim.result()
        held = [(int(j.id), j.attempted_by or "", j.attempt) for j in jobs]
        done = db.call_blocking(lambda: self._transaction(self._connection(), give_back_tx, held))
        done.add_done_callback(_log_failure)
        self._wake_all({j.executor for j in jobs})

    async def next_scheduled_at(self, executors: Collection[str]) -> datetime | None:
        names = list(executors)
        if not names:
            return None
        value = await self._call_read(self._next_scheduled_at, json.dumps(names))
        return clamped_from_us(value)

    @staticmethod
    def _next_scheduled_at(conn: sqlite3.Connection, names: str) -> int | None:
        # A correlated MIN per executor over the claimable jobs (blocked ones wait on others).
        row = conn.execute(
            "SELECT MIN(m) FROM (SELECT (SELECT MIN(scheduled_at) FROM jobs "
            f"WHERE executor = e.value AND {CLAIMABLE_SQL}) AS m FROM json_each(?) AS e)",
            (names,),
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # -- transitions: the one fenced write (lifecycle decides, this stores) ------------------

    async def apply_transition(self, job_id: int, fence: Fence, transition: Transition) -> bool:
        """Store ``transition`` if the job still matches ``fence``; returns False (changing
        nothing) if it does not; raises JobNotFound for an unknown id.

        One compare-and-set ``UPDATE`` (``statements.APPLY``) in one transaction. A job made
        ready wakes its executor's local runners (other processes notice the commit through
        their watcher); a job taken from ``executing`` by an outside fence (no node) hints
        the local nodes to look for the jobs they lost.
        """
        applied = await self._call(apply_tx, job_key(job_id), fence, transition)
        if applied is None:
            return False
        executor, released = applied
        if transition.status in JobStatus.READY:
            self.notify(executor)
        self._wake_all(released)
        if (
            fence.status is JobStatus.EXECUTING
            and fence.node_id is None
            and transition.status is not JobStatus.EXECUTING
        ):
            self.notify_cancellation()
        if transition.status.is_terminal:
            self.wakeups.notify_finished([int(job_id)])
        return True

    async def complete_jobs(
        self, completions: Sequence[Completion | tuple[int, Lease]]
    ) -> list[bool]:
        if not completions:
            return []
        items = [
            Completion(job_key(job_id), lease, result)
            for job_id, lease, result in completions_of(completions)
        ]
        results, missing, released = await self._call(complete_many_tx, items)
        self._wake_all(released)
        done = zip(items, results, strict=False)  # also the completions before an unknown id
        self.wakeups.notify_finished([item.job_id for item, ok in done if ok])
        if missing is not None:
            raise JobNotFound(missing)
        return results

    # -- workflows ---------------------------------------------------------------------------

    async def dependencies(self, job_ids: Collection[int]) -> dict[int, list[int]]:
        wanted = json.dumps(sorted({job_key(j) for j in job_ids}))
        rows = await self._call_read(
            lambda conn: conn.execute(
                "SELECT job_id, depends_on FROM job_dependencies "
                "WHERE job_id IN (SELECT value FROM json_each(?)) ORDER BY job_id, depends_on",
                (wanted,),
            ).fetchall()
        )
        found: dict[int, list[int]] = {}
        for job_id, depends_on in rows:
            found.setdefault(int(job_id), []).append(int(depends_on))
        return found

    async def workflow_jobs(self, workflow_id: str) -> list[Job[Any, Any]]:
        sql = f"SELECT {COLUMNS} FROM jobs WHERE workflow_id = ? ORDER BY id"
        return await self._call_read(select_jobs, sql, [workflow_id])

    async def settle_blocked(self) -> int:
        changed, released = await self._call(settle_blocked_tx)
        self._wake_all(released)
        return int(changed)

    async def record_progress(self, job_id: int, lease: Lease, progress: JobProgress) -> bool:
        text = json.dumps(progress.to_json(), ensure_ascii=False, allow_nan=False)
        return await self._call(self._progress_tx, job_key(job_id), lease, text)

    @staticmethod
    def _progress_tx(conn: sqlite3.Connection, job_id: int, lease: Lease, text: str) -> bool:
        if conn.execute(PROGRESS, (text, job_id, lease.node_id, lease.attempt)).rowcount:
            return True
        if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
            raise JobNotFound(job_id)
        return False

    async def update_job(self, job: Job[Any, Any]) -> None:
        try:
            encoded, scheduled_at = validate_update(job, self.max_payload_bytes)
        except ValidationError:
            await self.get_job(job.id)  # an unknown id is reported first, as on every backend
            raise
        values = (
            encoded.data,
            equality_text_if_needed(job.data),
            encoded.metadata,
            equality_text_if_needed(job.metadata),
            int(job.max_attempts),
            int(job.priority),
            encoded.tags,
            to_us(scheduled_at),
        )
        woken = await self._call(self._update_tx, job_key(job.id), values)
        if woken is not None:
            self.notify(woken)

    @staticmethod
    def _update_tx(conn: sqlite3.Connection, job_id: int, values: tuple[Any, ...]) -> str | None:
        row = conn.execute(
            "UPDATE jobs SET data = ?, data_eq = ?, metadata = ?, metadata_eq = ?, "
            "max_attempts = ?, priority = ?, tags = ?, scheduled_at = ? WHERE id = ? "
            "RETURNING status, executor",
            (*values, job_id),
        ).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return str(row[1]) if stored_status(row[0]) in JobStatus.READY else None

    # -- reading and housekeeping ------------------------------------------------------------

    async def query(
        self,
        where: QueryNode,
        *,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[Job[Any, Any]]:
        params: list[Any] = []
        condition = compile_query(where, params)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {COLUMNS} FROM jobs WHERE {condition} ORDER BY id {order} LIMIT ? OFFSET ?"
        params.extend((-1 if limit is None else limit, offset))
        return await self._call_read(select_jobs, sql, params)

    async def get_job(self, job_id: int) -> Job[Any, Any]:
        found = await self._call_read(
            select_jobs, f"SELECT {COLUMNS} FROM jobs WHERE id = ?", [job_key(job_id)]
        )
        if not found:
            raise JobNotFound(job_id)
        return found[0]

    async def prune_jobs(self, spec: PruneSpec, batch_size: int = 1000) -> int:
        batch = check_batch_size(batch_size)
        # A job an unfinished dependent waits on stays (its status is what releases it).
        where = [
            "status IN ('complete', 'cancelled', 'discarded')",
            "status = ?",
            f"NOT {workflow.awaited_sql('jobs')}",
        ]
        params: list[Any] = [JobStatus(spec.status).value]
        if spec.only is not None:
            if not spec.only:
                return 0
            where.append(f"executor IN ({placeholders(len(spec.only))})")
            params.extend(sorted(spec.only))
        if spec.exclude:
            where.append(f"executor NOT IN ({placeholders(len(spec.exclude))})")
            params.extend(sorted(spec.exclude))
        if spec.max_length is not None:
            # Skip the newest max_length and take the next batch; repeat until none are left.
            select = (
                f"SELECT id FROM jobs WHERE {' AND '.join(where)} "
                f"ORDER BY {FINISHED_SQL} DESC, id DESC LIMIT ? OFFSET ?"
            )
            params.extend((batch, spec.max_length))
        else:
            assert spec.max_age is not None
            where.append(f"{FINISHED_SQL} < ?")
            params.append(to_us(_clock.now() - spec.max_age))
            select = f"SELECT id FROM jobs WHERE {' AND '.join(where)} LIMIT ?"
            params.append(batch)
        sql = f"DELETE FROM jobs WHERE id IN ({select})"
        total = 0
        while True:
            # One transaction per batch, so other processes get the write lock in between.
            deleted = await self._call(_prune_batch, sql, params)
            total += deleted
            if deleted < batch:
                return total

    # -- run-time control ------------------------------------------------------------------

    async def executor_states(self, names: Collection[str] | None) -> list[ExecutorState]:
        return await self._call_read(lambda conn: control.states(conn, names))

    async def change_executor(self, name: str, change: ControlChange) -> None:
        if await self._call(control.change, name, change):
            # Runners in other processes see the commit through their watchers.
            self.notify(name)

    async def declare_limits(self, name: str, limits: ClaimLimits) -> None:
        await self._call(control.declare, name, limits)

    async def record_heartbeat(self, node: NodeInfo) -> None:
        await self._call(self._heartbeat_tx, node)

    @staticmethod
    def _heartbeat_tx(conn: sqlite3.Connection, node: NodeInfo) -> None:
        now_us = to_us(_clock.now())
        conn.execute(
            "INSERT INTO nodes (node_id, host, pid, started_at, heartbeat_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (node_id) DO UPDATE SET "
            "host = excluded.host, pid = excluded.pid, heartbeat_at = excluded.heartbeat_at",
            (node.node_id, node.host, int(node.pid), now_us, now_us),
        )

    async def remove_node(self, node_id: str) -> None:
        await self._call(_execute_rowcount, "DELETE FROM nodes WHERE node_id = ?", [node_id])

    async def count_jobs(self) -> dict[tuple[str, JobStatus], int]:
        rows = await self._call_read(
            lambda conn: conn.execute(
                "SELECT executor, status, count(*) FROM jobs GROUP BY executor, status"
            ).fetchall()
        )
        return tally(rows)

    async def finished_per_minute(self, since: timedelta) -> list[tuple[datetime, JobStatus, int]]:
        minute = 60_000_000
        cutoff = to_us(_clock.now() - since)
        rows = await self._call_read(
            lambda conn: conn.execute(
                f"SELECT (finished / {minute}) * {minute} AS bucket, status, count(*) FROM "
                "(SELECT status, COALESCE(completed_at, cancelled_at, discarded_at) AS finished "
                "FROM jobs WHERE status IN ('complete', 'cancelled', 'discarded')) "
                "WHERE finished >= ? GROUP BY bucket, status ORDER BY bucket, status",
                (cutoff,),
            ).fetchall()
        )
        return [
            (cast(datetime, clamped_from_us(bucket)), STATUS[status], int(n))
            for bucket, status, n in rows
        ]

    async def list_nodes(self) -> list[NodeInfo]:
        return await self._call_read(self._list_nodes)

    @staticmethod
    def _list_nodes(conn: sqlite3.Connection) -> list[NodeInfo]:
        # rowid breaks ties in first-heartbeat order, as the reference backend does.
        rows = conn.execute(
            "SELECT node_id, host, pid, started_at, heartbeat_at FROM nodes "
            "ORDER BY heartbeat_at DESC, rowid ASC"
        ).fetchall()
        return [
            NodeInfo(
                node_id=r[0],
                host=r[1],
                pid=int(r[2]),
                started_at=from_us(r[3]),
                heartbeat_at=from_us(r[4]),
            )
            for r in rows
        ]

    async def orphaned_jobs(self, dead_after: timedelta) -> list[Job[Any, Any]]:
        """Executing jobs whose node has been silent for longer than ``dead_after`` (or whose
        node is unknown and whose attempted_at is older than ``dead_after``); the silent nodes
        are forgotten. The caller decides (lifecycle.orphaned) and applies each with
        Fence(EXECUTING, job.attempt, job.attempted_by)."""
        return await self._call(orphaned_tx, dead_after)

    async def lost_jobs(self, node_id: str, leases: dict[int, int]) -> list[int]:
        if not leases:
            return []
        held = await self._call_read(self._held_ids, node_id, json.dumps(list(leases)))
        return [job_id for job_id, attempt in leases.items() if held.get(job_id) != attempt]

    @staticmethod
    def _held_ids(conn: sqlite3.Connection, node_id: str, ids: str) -> dict[int, int]:
        """Of ``ids``, the jobs executing on ``node_id``, with their attempts."""
        rows = conn.execute(
            "SELECT id, attempt FROM jobs WHERE id IN (SELECT value FROM json_each(?)) "
            "AND status = 'executing' AND attempted_by = ?",
            (ids, node_id),
        ).fetchall()
        return {int(r[0]): int(r[1]) for r in rows}


def _prune_batch(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    """Delete one batch of finished jobs, and the dependency rows of those that had any."""
    ids = [int(row[0]) for row in conn.execute(f"{sql} RETURNING id", params).fetchall()]
    if ids:
        conn.execute(
            "DELETE FROM job_dependencies WHERE job_id IN (SELECT value FROM json_each(?))",
            (json.dumps(ids),),
        )
    return len(ids)


def _execute_rowcount(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    return conn.execute(sql, params).rowcount


def _log_failure(done: concurrent.futures.Future[Any]) -> None:
    error = done.exception()
    if error is not None:
        _log.warning(
            "could not hand back jobs claimed for a cancelled caller (rescue will): %s", error
        )
