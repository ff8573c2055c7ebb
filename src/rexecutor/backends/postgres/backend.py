"""``PostgresBackend``: its construction and its domain operations (transitions, reads,
housekeeping); enqueueing, claiming, the pool and the listener are its bases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from rexecutor import dependencies
from rexecutor.backend import (
    Backend,
    Capabilities,
    Completion,
    Lease,
    NodeInfo,
    PruneSpec,
    check_batch_size,
    completions_of,
)
from rexecutor.backends._common import storable_id, tally, validate_update
from rexecutor.backends.postgres import partitions
from rexecutor.backends.postgres.claims import _Claiming
from rexecutor.backends.postgres.codec import (
    _db_now,
    _json_text,
    _read_job,
    _utc,
    _utc_required,
)
from rexecutor.backends.postgres.connection import (
    Conn,
    Row,
    _atomic,
    _execute,
    _fetchall,
    _fetchone,
    _Target,
)
from rexecutor.backends.postgres.control import _Controlling
from rexecutor.backends.postgres.dependencies import _Depending, transition_params
from rexecutor.backends.postgres.enqueue import _Enqueuing
from rexecutor.backends.postgres.pool import _check_url
from rexecutor.backends.postgres.query import _compile
from rexecutor.backends.postgres.statements import (
    _COLUMNS,
    _FINISHED_AT,
    _NOW,
    _TERMINAL_SQL,
    _before,
)
from rexecutor.errors import ConfigurationError, JobNotFound, ValidationError
from rexecutor.job import Job, JobProgress, JobStatus
from rexecutor.lifecycle import Fence, Transition
from rexecutor.query import IdIn, QueryNode

__all__ = ["PostgresBackend"]

#: How many times a prune tries to detach one day partition before leaving it for next time.
_DETACH_TRIES = 5


class PostgresBackend(_Enqueuing, _Claiming, _Controlling, _Depending):
    """Jobs stored in PostgreSQL, shared by every node that uses the same database and schema.

    Args:
        url: a libpq connection string or URL, e.g.
            ``postgresql://user:secret@db.example.com:5432/app``.
        schema: the schema that holds rexecutor's tables (created by the migrations).
        min_size: connections the pool keeps open.
        max_size: the most connections the pool opens.
        poll_interval: seconds between polls for work no wake-up announced.
        migrate: apply pending migrations in ``connect()``; with False, ``connect()`` only
            checks that the schema is up to date.
        layout: ``"partitioned"`` converts the jobs table (in ``connect()`` or
            :meth:`migrate`) to the partitioned layout, finished jobs in daily partitions that
            pruning drops whole (see :mod:`rexecutor.backends.postgres.partitions`), and
            with ``migrate=False`` requires it; None (the default) uses whichever layout the
            schema has.
        listen_url: where the wake-up listeners connect (they need a session of their
            own), when ``url`` goes through a pooler that cannot keep one: a URL of the
            server itself. Default: ``url``.
        transaction_pooling: ``url`` goes through a transaction pooler (PgBouncer with
            ``pool_mode = transaction``): no server-side prepared statements and no
            session settings on the pool's connections. Without ``listen_url`` nothing
            LISTENs: runners find work from other processes when they poll, waiters for
            jobs finished elsewhere poll every ``poll_interval``, and one warning says so
            as the backend connects.

    Example:
        >>> backend = PostgresBackend("postgresql://app@localhost/app", schema="jobs")
        >>> async def main() -> None:
        ...     async with backend:            # opens the pool, applies migrations
        ...         await backend.enqueue(EnqueuableJob("mailer", {"to": "a@example.com"}))
    """

    poll_interval = 1.0
    capabilities: ClassVar[Capabilities] = Capabilities(
        transactional_enqueue=True,
        cross_process_wakeups=True,
        durable=True,
        multi_process=True,
        multi_host=True,
        follows_test_clock=True,
    )

    def __init__(
        self,
        url: str,
        *,
        schema: str = "public",
        min_size: int = 1,
        max_size: int = 10,
        poll_interval: float = 1.0,
        migrate: bool = True,
        layout: str | None = None,
        listen_url: str | None = None,
        transaction_pooling: bool = False,
    ) -> None:
        _check_url(url)
        if min_size < 0 or max_size < max(min_size, 1):
            raise ConfigurationError(
                f"pool sizes must satisfy 0 <= min_size <= max_size and max_size >= 1, got "
                f"min_size={min_size}, max_size={max_size}"
            )
        self._setup(
            schema,
            poll_interval,
            migrate,
            listen_url=listen_url,
            transaction_pooling=transaction_pooling,
            layout=layout,
        )
        self._conninfo = url
        self._kwargs = None
        self._min_size = min_size
        self._max_size = max_size
        self._owns_pool = True
        self._target = _Target.parse(url, {})

    @classmethod
    def from_pool(
        cls,
        pool: AsyncConnectionPool[Any],
        *,
        schema: str = "public",
        poll_interval: float = 1.0,
        migrate: bool = True,
        layout: str | None = None,
        listen_url: str | None = None,
        transaction_pooling: bool = False,
    ) -> PostgresBackend:
        """Use an existing ``psycopg_pool.AsyncConnectionPool``; ``close()`` leaves it open.

        The pool's connections may be in autocommit or manual-commit mode and use any session
        time zone; ``connect()`` opens the pool if needed and migrates through it. The wake-up
        listener (and :meth:`for_thread`) open connections of their own with the pool's
        conninfo and kwargs, without its ``configure`` callback; the listener connects to
        ``listen_url`` instead when one is given. ``listen_url`` and ``transaction_pooling``
        mean what they mean for the constructor; with ``transaction_pooling`` the pool must
        be made with ``kwargs={"prepare_threshold": None}`` (its connections are the
        caller's to configure).

        Raises:
            ConfigurationError: ``transaction_pooling`` with a pool whose kwargs let psycopg
                prepare statements.

        Example:
            >>> pool = AsyncConnectionPool("postgresql://app@localhost/app", open=False)
            >>> backend = PostgresBackend.from_pool(pool, schema="jobs")
        """
        if transaction_pooling and not (
            isinstance(pool.kwargs, dict) and pool.kwargs.get("prepare_threshold", 5) is None
        ):
            raise ConfigurationError(
                "transaction_pooling=True needs a pool that never prepares statements: make "
                'it with kwargs={"prepare_threshold": None} (psycopg prepares a statement on '
                "its fifth run, and a transaction pooler cannot keep it)"
            )
        backend = cls.__new__(cls)
        Backend.__init__(backend)
        backend._setup(
            schema,
            poll_interval,
            migrate,
            listen_url=listen_url,
            transaction_pooling=transaction_pooling,
            layout=layout,
        )
        backend._conninfo = pool.conninfo
        backend._kwargs = pool.kwargs
        backend._min_size = pool.min_size
        backend._max_size = pool.max_size
        backend._owns_pool = False
        backend._pool = pool
        conninfo = pool.conninfo if isinstance(pool.conninfo, str) else ""
        kwargs = pool.kwargs if isinstance(pool.kwargs, dict) else {}
        backend._target = _Target.parse(conninfo, kwargs)
        return backend

    def __repr__(self) -> str:
        t = self._target
        return (
            f"PostgresBackend(host={t.host!r}, port={t.port}, dbname={t.dbname!r}, "
            f"schema={self._schema!r})"
        )

    @property
    def schema(self) -> str:
        """The schema that holds this backend's tables."""
        return self._schema

    def for_thread(self) -> PostgresBackend:
        """A new, unconnected backend on the same database and schema, for another thread.

        Its connections belong to the other thread's event loop: a small pool of its own
        (at most two connections), opened with the same connection parameters, and no
        migrations (it only checks the schema version). It shares no wake-ups with this one;
        they travel through the database like those of any other node.
        """
        clone = type(self).__new__(type(self))
        Backend.__init__(clone)
        clone._setup(
            self._schema,
            self.poll_interval,
            migrate=False,
            listen_url=self._listen_url,
            transaction_pooling=self._transaction_pooling,
            layout=self._layout,
        )
        clone._conninfo = self._conninfo
        clone._kwargs = self._kwargs
        clone._min_size = 1
        clone._max_size = 2
        clone._owns_pool = True
        clone._target = self._target
        clone.max_payload_bytes = self.max_payload_bytes
        clone._polling_announced = True
        return clone

    async def apply_transition(self, job_id: int, fence: Fence, transition: Transition) -> bool:
        """Store ``transition`` if the job still matches ``fence``; returns False (changing
        nothing) if it does not; raises JobNotFound for an unknown id.

        One statement, fenced in SQL (compare-and-set), whatever the transition. A job made
        ready wakes the runners of its executor: here at once, in other processes through the
        trigger's notification. A job taken from executing by a fence without a node (an
        external cancel) is announced on the cancellation channel as the change commits, so
        that the node running it stops it at once rather than at its next check. A job with
        dependents then settles them (see :mod:`rexecutor.dependencies`).
        """
        job_id = int(job_id)
        if not storable_id(job_id):
            raise JobNotFound(job_id)
        params = transition_params(job_id, fence, transition, self._cancel_channel)

        finishes = [job_id] if JobStatus(transition.status).is_terminal else []

        async def work(conn: Conn) -> Row | None:
            return await self._fetch_announcing(conn, self._q["transition"], params, finishes)

        row = await self._run(work, retry=True)
        assert row is not None
        executor, exists, _, has_dependents = row
        if executor is not None:
            if transition.status in JobStatus.READY:
                self.notify(executor)
            if params["hint"]:
                self.notify_cancellation()
            self.wakeups.notify_finished(finishes)
            if has_dependents:
                steps = dependencies.after_change(job_id, transition.status, transition.reopen)
                if steps is not None:
                    await self._walk(steps)
            return True
        if not exists:
            raise JobNotFound(job_id)
        return False

    async def complete_jobs(
        self, completions: Sequence[Completion | tuple[int, Lease]]
    ) -> list[bool]:
        """Complete many executing jobs with one statement, each fenced by its own lease.

        Like completing them one by one: an unknown id raises ``JobNotFound`` after the
        completions before it took effect, and a completion repeated in the batch applies
        once (the repeat reports False, the job being complete already).
        """
        if not completions:
            return []
        firsts: dict[tuple[int, str, int], int] = {}  # each distinct item -> its ordinal
        ordinals: list[int] = []  # the ordinal of every position's item
        results_of: list[str | None] = []  # the result of each distinct item
        repeats = False
        for job_id, lease, result in completions_of(completions):
            item = (int(job_id), lease.node_id, int(lease.attempt))
            if not storable_id(item[0]):
                raise JobNotFound(item[0])
            ordinal = firsts.get(item)
            if ordinal is None:
                ordinal = firsts[item] = len(firsts) + 1
                results_of.append(result)
            else:
                repeats = True
            ordinals.append(ordinal)
        items = list(firsts)
        nodes = {node for _, node, _ in items}
        params: dict[str, Any] = {
            "ids": [job_id for job_id, _, _ in items],
            "attempts": [attempt for _, _, attempt in items],
            "now": _db_now(),
        }
        if len(nodes) == 1:
            name = "complete_many_one_node"
            params["node"] = items[0][1]
        else:
            name = "complete_many"
            params["nodes"] = [node for _, node, _ in items]
        if any(result is not None for result in results_of):
            # Most batches carry no result and keep the statement that writes none.
            name += "_result"
            params["results"] = results_of
        statement = self._q[name]

        params["channel"] = self._done_channel
        params["waiters"] = self._waiters_key

        async def work(conn: Conn) -> Row | None:
            return await _fetchone(conn, statement, params)

        row = await self._run(work, retry=True)
        assert row is not None
        missing, done, with_dependents, _ = row
        if with_dependents:
            await self._walk(dependencies.propagate([int(i) for i in with_dependents]))
        done_set = set(done or ())
        self.wakeups.notify_finished([items[ordinal - 1][0] for ordinal in sorted(done_set)])
        if missing is not None:
            raise JobNotFound(items[missing - 1][0])
        if not repeats:
            return [ordinal in done_set for ordinal in ordinals]
        seen: set[int] = set()
        results = []
        for ordinal in ordinals:
            results.append(ordinal in done_set and ordinal not in seen)
            seen.add(ordinal)
        return results

    async def record_progress(self, job_id: int, lease: Lease, progress: JobProgress) -> bool:
        job_id = int(job_id)
        if not storable_id(job_id):
            raise JobNotFound(job_id)
        params = {
            "id": job_id,
            "node": lease.node_id,
            "attempt": int(lease.attempt),
            "progress": _json_text(progress.to_json(), "the job's progress"),
        }

        async def work(conn: Conn) -> Row | None:
            return await _fetchone(conn, self._q["record_progress"], params)

        row = await self._run(work, retry=True)
        assert row is not None
        stored, exists = row
        if not exists:
            raise JobNotFound(job_id)
        return bool(stored)

    async def _exists(self, job_id: int) -> bool:
        if not storable_id(job_id):
            return False

        async def work(conn: Conn) -> Row | None:
            return await _fetchone(conn, self._q["exists"], {"id": job_id})

        row = await self._run(work, retry=True)
        return bool(row and row[0])

    async def update_job(self, job: Job[Any, Any]) -> None:
        """Write data, metadata, max_attempts, priority, tags and scheduled_at; nothing else."""
        job_id = int(job.id)
        try:
            encoded, scheduled_at = validate_update(job, self.max_payload_bytes)
        except ValidationError:
            if not await self._exists(job_id):
                raise JobNotFound(job_id) from None
            raise
        if not storable_id(job_id):
            raise JobNotFound(job_id)
        params = {
            "id": job_id,
            "data": encoded.data,
            "metadata": encoded.metadata,
            "max_attempts": job.max_attempts,
            "priority": job.priority,
            "tags": list(job.tags),
            "scheduled_at": scheduled_at,
        }

        async def work(conn: Conn) -> Row | None:
            return await _fetchone(conn, self._q["update"], params)

        row = await self._run(work, retry=True)
        if row is None:
            raise JobNotFound(job_id)
        executor, status = row
        if status in JobStatus.READY:
            self.notify(executor)

    # -- reading and housekeeping ------------------------------------------------------------

    async def query(
        self,
        where: QueryNode,
        *,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[Job[Any, Any]]:
        """Jobs matching ``where``, oldest first by id (or newest first), with paging."""
        params: list[Any] = []
        condition = _compile(where, params)
        statement = sql.SQL(
            "SELECT {columns} FROM {jobs} WHERE {condition} ORDER BY id {direction} "
            "LIMIT %s OFFSET %s"
        ).format(
            columns=sql.SQL(_COLUMNS),
            jobs=self._identifiers["jobs"],
            condition=condition,
            direction=sql.SQL("DESC" if newest_first else "ASC"),
        )
        params.extend([limit, offset])

        async def work(conn: Conn) -> list[Row]:
            return await _fetchall(conn, statement, params, binary=True)

        return [_read_job(row) for row in await self._run(work, retry=True)]

    async def get_job(self, job_id: int) -> Job[Any, Any]:
        """The job with this id, or ``JobNotFound``."""
        job_id = int(job_id)
        if not storable_id(job_id):
            raise JobNotFound(job_id)
        found = await self.query(IdIn((job_id,)))
        if not found:
            raise JobNotFound(job_id)
        return found[0]

    async def prune_jobs(self, spec: PruneSpec, batch_size: int = 1000) -> int:
        """Delete what ``spec`` selects, oldest first, ``batch_size`` rows per transaction.

        One node prunes at a time: each batch takes a transaction advisory lock with
        ``pg_try_advisory_xact_lock``, and when another node holds it this call stops and
        returns what it deleted so far (0 if nothing).
        """
        batch_size = check_batch_size(batch_size)
        status = JobStatus(spec.status)
        extra = ""
        params: dict[str, Any] = {
            "batch": batch_size,
            "lock": self._lock_key("prune"),
            "now": _db_now(),
        }
        if spec.only is not None:
            extra += " AND executor = ANY(%(only)s::text[])"
            params["only"] = sorted(spec.only)
        if spec.exclude:
            extra += " AND NOT (executor = ANY(%(exclude)s::text[]))"
            params["exclude"] = sorted(spec.exclude)
        # A job an unfinished dependent waits on stays (its status is what releases it).
        extra += (
            " AND NOT (has_dependents AND EXISTS (SELECT 1 FROM {dependencies} AS d"
            " JOIN {jobs} AS c ON c.id = d.job_id WHERE d.depends_on = {jobs}.id"
            f" AND c.status NOT IN {_TERMINAL_SQL}))"
        )
        selected = f"status = {sql.Literal(status.value).as_string(None)}{extra}"
        if spec.max_length is not None:
            params["keep"] = spec.max_length
            boundary_query = self._render(
                f"SELECT {_FINISHED_AT}, id FROM {{jobs}} WHERE {selected} "
                f"ORDER BY {_FINISHED_AT} DESC, id DESC OFFSET %(keep)s LIMIT 1"
            )
            condition = f"({_FINISHED_AT}, id) <= (%(b_at)s, %(b_id)s)"
        else:
            assert spec.max_age is not None
            params["age"] = spec.max_age
            boundary_query = None
            condition = f"{_FINISHED_AT} < {_before('age')}"

        # Each batch starts after the last row the previous one looked at: the index entries
        # of rows already deleted stay until a vacuum, and a scan from the oldest end would
        # walk all of them again on every batch. The dependency rows of pruned dependents go
        # with them.
        def delete_after(cursor: str) -> bytes:
            return self._render(
                f"WITH picked AS (SELECT id, {_FINISHED_AT} AS at FROM {{jobs}} "
                f"WHERE {selected} AND {condition}{cursor} "
                f"ORDER BY {_FINISHED_AT}, id LIMIT %(batch)s), "
                f"gone AS (DELETE FROM {{jobs}} WHERE id IN (SELECT id FROM picked) "
                f"AND {selected} RETURNING id), "
                "edges AS (DELETE FROM {dependencies} WHERE job_id IN (SELECT id FROM gone)), "
                "last AS (SELECT at, id FROM picked ORDER BY at DESC, id DESC LIMIT 1) "
                "SELECT (SELECT count(*) FROM gone), last.at, last.id "
                "FROM (SELECT 1) AS one LEFT JOIN last ON true"
            )

        first = delete_after("")
        after = delete_after(f" AND ({_FINISHED_AT}, id) > (%(after_at)s, %(after_id)s)")
        boundary: Row | None = None
        resume: tuple[Any, Any] | None = None
        total = 0
        if self._partitioned:
            dropped = await self._drop_old_partitions(spec, selected, params)
            if dropped is None:
                return 0
            total = dropped

        async def batch(conn: Conn) -> int | None:
            nonlocal boundary, resume
            async with _atomic(conn):
                row = await _fetchone(conn, self._q["try_lock"], {"key": params["lock"]})
                if not (row and row[0]):
                    return None
                if boundary_query is not None and boundary is None:
                    boundary = await _fetchone(conn, boundary_query, params)
                    if boundary is None:
                        return 0
                    params["b_at"], params["b_id"] = boundary
                if resume is not None:
                    params["after_at"], params["after_id"] = resume
                counted = await _fetchone(conn, first if resume is None else after, params)
                if counted is None or counted[2] is None:
                    return 0  # nothing left to look at
                resume = (counted[1], counted[2])
                # A batch whose rows a concurrent rerun moved on deletes fewer (even none)
                # but still moves on: only a batch that looks at nothing ends the pass.
                return int(counted[0])

        while True:
            before = resume
            deleted = await self._run(batch)
            if deleted is None:
                return total
            total += deleted
            if resume is None or resume == before:
                return total

    async def _drop_old_partitions(
        self, spec: PruneSpec, selected: str, params: dict[str, Any]
    ) -> int | None:
        """The partitioned layout's share of a prune: create the coming days' partitions,
        then detach and drop each day partition that ended before ``spec``'s cutoff and holds
        only jobs it selects. Returns the jobs dropped, or None when another node prunes.

        Only an age spec for every executor can drop a day whole; what it leaves (a day that
        also holds jobs kept longer, jobs in the live partition) the batched delete prunes.
        """
        schema, jobs = self._schema, self._identifiers["jobs"]
        whole = spec.max_age is not None and spec.only is None and not spec.exclude
        others = self._render(
            f"SELECT EXISTS (SELECT 1 FROM {{jobs}} WHERE {partitions.KEY} >= %(start)s "
            f"AND {partitions.KEY} < %(end)s AND NOT ({selected}))"
        )

        async def work(conn: Conn) -> int | None:
            row = await _fetchone(
                conn,
                f"SELECT ({_NOW} AT TIME ZONE 'UTC')::date, {_before('age')}",
                {"now": params["now"], "age": spec.max_age or timedelta(0)},
            )
            assert row is not None
            today, cutoff = row
            await partitions.ensure_ahead(conn, schema, jobs, today)
            dropped = 0
            for partition in await partitions.finished_partitions(conn, schema, jobs):
                if not whole or partition.end > cutoff:
                    break
                bounds = {**params, "start": partition.start, "end": partition.end}
                # Detaching locks the parent: a busy moment gives up after LOCK_TIMEOUT, and
                # a few more tries usually find a gap between claims.
                for _ in range(_DETACH_TRIES):
                    count: int | None = 0
                    async with _atomic(conn):
                        row = await _fetchone(conn, self._q["try_lock"], {"key": params["lock"]})
                        if not (row and row[0]):
                            return None
                        # Checked before the parent's lock is taken, so that workers never wait
                        # on the scan; only a job stamped with a finished time in the past
                        # (a test clock, a hand-written row) could enter the day meanwhile.
                        row = await _fetchone(conn, others, bounds)
                        if row is not None and not row[0]:
                            count = await partitions.drop_partition(
                                conn, schema, self._identifiers, partition
                            )
                    if count is not None:
                        dropped += count
                        break
            return dropped

        return await self._run(work)

    async def record_heartbeat(self, node: NodeInfo) -> None:
        """Record that ``node`` is alive now (inserting it on its first beat)."""
        params = {
            "node_id": node.node_id,
            "host": node.host,
            "pid": int(node.pid),
            "now": _db_now(),
        }

        async def work(conn: Conn) -> int:
            return await _execute(conn, self._q["heartbeat"], params)

        await self._run(work, retry=True)

    async def remove_node(self, node_id: str) -> None:
        """Forget a node that stopped cleanly."""

        async def work(conn: Conn) -> int:
            return await _execute(conn, self._q["remove_node"], {"node_id": node_id})

        await self._run(work, retry=True)

    async def count_jobs(self) -> dict[tuple[str, JobStatus], int]:
        """How many jobs each executor has in each status."""

        async def work(conn: Conn) -> list[Row]:
            return await _fetchall(conn, self._q["count_jobs"])

        rows = await self._run(work, retry=True)
        return tally(rows)

    async def finished_per_minute(self, since: timedelta) -> list[tuple[datetime, JobStatus, int]]:
        """Jobs finished within the last ``since``, per minute and terminal status."""

        async def work(conn: Conn) -> list[Row]:
            params = {"since": since, "now": _db_now()}
            return await _fetchall(conn, self._q["finished_per_minute"], params)

        rows = await self._run(work, retry=True)
        return [(_utc_required(bucket), JobStatus(status), int(n)) for bucket, status, n in rows]

    async def list_nodes(self) -> list[NodeInfo]:
        """Nodes that have recorded a heartbeat, most recent first."""

        async def work(conn: Conn) -> list[Row]:
            return await _fetchall(conn, self._q["list_nodes"])

        return [
            NodeInfo(
                node_id=node_id,
                host=host,
                pid=int(pid),
                started_at=_utc(started_at),
                heartbeat_at=_utc(heartbeat_at),
            )
            for node_id, host, pid, started_at, heartbeat_at in await self._run(work, retry=True)
        ]

    async def orphaned_jobs(self, dead_after: timedelta) -> list[Job[Any, Any]]:
        """Executing jobs whose node has been silent for longer than ``dead_after`` (or whose
        node is unknown and whose attempted_at is older than ``dead_after``); the silent nodes
        are forgotten. The caller decides (lifecycle.orphaned) and applies each with
        Fence(EXECUTING, job.attempt, job.attempted_by).

        One node looks at a time (``pg_try_advisory_xact_lock``); while another node does,
        this returns ``[]``.
        """
        params = {"dead_after": dead_after, "key": self._lock_key("rescue"), "now": _db_now()}

        async def work(conn: Conn) -> list[Row]:
            async with _atomic(conn):
                row = await _fetchone(conn, self._q["try_lock"], {"key": params["key"]})
                if not (row and row[0]):
                    return []
                return await _fetchall(conn, self._q["orphaned"], params, binary=True)

        return [_read_job(row) for row in await self._run(work)]

    async def lost_jobs(self, node_id: str, leases: dict[int, int]) -> list[int]:
        """Of the jobs ``node_id`` runs (id → attempt), those it no longer holds."""
        if not leases:
            return []
        lost = [job_id for job_id in leases if not storable_id(int(job_id))]
        items = [(int(j), int(a)) for j, a in leases.items() if storable_id(int(j))]
        params = {
            "ids": [j for j, _ in items],
            "attempts": [a for _, a in items],
            "node": node_id,
        }

        async def work(conn: Conn) -> list[Row]:
            return await _fetchall(conn, self._q["lost_jobs"], params)

        found = {int(row[0]) for row in await self._run(work, retry=True)}
        return [job_id for job_id in leases if int(job_id) in found or job_id in lost]
