"""Enqueueing: plain jobs in one multi-row INSERT, unique jobs under advisory locks.

A unique enqueue takes, inside its transaction, the advisory locks named by
``UniquenessCriteria.lock_names`` (hashed with the schema name; shared or exclusive, in
sorted order), then probes for the earliest match and inserts or replaces in one statement:
every enqueue that could conflict with it waits for its commit. This needs READ COMMITTED
(the default), whose statements see what committed before them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.types.json import set_json_dumps

from rexecutor import dependencies
from rexecutor.backend import EnqueuableJob, EnqueueResult
from rexecutor.backends.postgres import foreign
from rexecutor.backends.postgres.codec import _TAGS_TEXT, _db_now, _Prepared
from rexecutor.backends.postgres.connection import Conn, _atomic, _execute, _fetchall, _fetchone
from rexecutor.backends.postgres.dependencies import _Depending
from rexecutor.backends.postgres.statements import _NOW, _after, _before
from rexecutor.errors import ConfigurationError, ValidationError
from rexecutor.job import JobId, JobStatus

#: Batches of plain jobs from this size go in by COPY (two round trips, but the fastest
#: ingest); smaller ones by one INSERT.
COPY_AT_LEAST: Final = 1000
_COPY_TYPES: Final = (
    "int8",
    "text",
    "jsonb",
    "jsonb",
    "int4",
    "int4",
    "text[]",
    "timestamptz",
    "timestamptz",
    "text",
)


class _Enqueuing(_Depending):
    """The enqueue operations of ``PostgresBackend``."""

    async def enqueue(
        self, job: EnqueuableJob, *, connection: object | None = None
    ) -> EnqueueResult:
        """Store ``job``, or resolve its uniqueness conflict; atomic and concurrency-safe.

        Args:
            job: the job to store.
            connection: run the insert on this connection, inside its current transaction:
                the job exists only if that transaction commits, and other nodes are woken
                when it does. A psycopg ``AsyncConnection``, a SQLAlchemy ``AsyncSession`` or
                ``AsyncConnection`` (its current transaction, begun if none is), or an
                asyncpg ``Connection`` (see :mod:`rexecutor.backends.postgres.foreign`). A
                connection in autocommit mode outside a transaction commits at once. Unique
                jobs need READ COMMITTED (the default isolation level).

        Example:
            >>> async with await psycopg.AsyncConnection.connect(url) as conn:
            ...     async with conn.transaction():
            ...         await conn.execute("INSERT INTO orders (id) VALUES (%s)", [42])
            ...         await backend.enqueue(
            ...             EnqueuableJob("ship", {"order": 42}), connection=conn
            ...         )
        """
        [result] = await self._enqueue_batch([job], connection)
        return result

    async def enqueue_many(
        self,
        jobs: Sequence[EnqueuableJob],
        *,
        connection: object | None = None,
    ) -> list[EnqueueResult]:
        """Store many jobs in one transaction; results come back in the order of ``jobs``.

        Jobs without uniqueness criteria go in with one statement (COPY from
        ``COPY_AT_LEAST`` jobs, see docs/postgres.md, else a multi-row INSERT); unique ones are
        resolved one by one, in order, against the stored jobs and the earlier jobs of the
        batch. ``connection`` works as for :meth:`enqueue`.
        """
        return await self._enqueue_batch(jobs, connection)

    async def _enqueue_batch(
        self, jobs: Sequence[EnqueuableJob], connection: object | None
    ) -> list[EnqueueResult]:
        limit = self.max_payload_bytes
        if connection is None and len(jobs) >= COPY_AT_LEAST and all(map(_plain, jobs)):
            dependencies.check_batch(jobs)
            return await self._stream_plain(jobs, limit)
        prepared = [_Prepared.of(job, limit) for job in jobs]
        if not prepared:
            return []
        dependencies.check_batch(jobs)

        async def work(conn: Conn) -> tuple[list[EnqueueResult], set[str]]:
            return await self._enqueue_on(conn, prepared)

        if connection is None:
            results, wakes = await self._run(work)
            self._wake(wakes)
            return results
        try:
            results, _ = await work(await foreign.joined(connection))
        except psycopg.Error as exc:
            raise self._translate(exc) from exc
        except UnicodeError as exc:
            raise ValidationError(f"a value cannot be encoded for PostgreSQL: {exc}") from exc
        return results

    async def _stream_plain(
        self, jobs: Sequence[EnqueuableJob], limit: int | None
    ) -> list[EnqueueResult]:
        """A large batch of plain jobs in a transaction of our own: each job is checked as
        COPY streams it, so the server stores the jobs before it meanwhile (10,000 jobs: the
        checks' 20 ms no longer come before the COPY's 60). A job the check refuses aborts the
        COPY and the transaction with it, so nothing of the batch is stored, as when every job
        is checked first. A caller's transaction is never aborted that way: on a caller's
        connection every job is checked before anything is sent."""
        now = _db_now()

        async def work(conn: Conn) -> list[int]:
            assert isinstance(conn, psycopg.AsyncConnection)
            checked = (_Prepared.of(job, limit) for job in jobs)
            return await self._copy_plain(conn, checked, len(jobs), now)

        ids = await self._run(work)
        self._wake({job.executor for job in jobs})
        return [EnqueueResult(JobId(i)) for i in ids]

    async def _enqueue_on(
        self, conn: Conn, prepared: list[_Prepared]
    ) -> tuple[list[EnqueueResult], set[str]]:
        wakes: set[str] = set()
        if any(p.job.workflow_id is not None or p.job.depends_on for p in prepared):
            return await self._enqueue_workflow(conn, prepared)
        if all(p.job.uniqueness is None for p in prepared):
            ids = await self._insert_plain(conn, prepared)
            wakes.update(p.job.executor for p in prepared)
            return [EnqueueResult(JobId(i)) for i in ids], wakes
        self._refuse_repeatable_read(conn, prepared)
        results: list[EnqueueResult] = []
        async with _atomic(conn):
            await self._take_unique_locks(conn, prepared)
            run: list[_Prepared] = []
            for item in [*prepared, None]:
                if item is not None and item.job.uniqueness is None:
                    run.append(item)
                    continue
                if run:
                    ids = await self._insert_plain(conn, run)
                    results.extend(EnqueueResult(JobId(i)) for i in ids)
                    wakes.update(p.job.executor for p in run)
                    run = []
                if item is not None:
                    result, wake = await self._insert_unique(conn, item)
                    results.append(result)
                    if wake is not None:
                        wakes.add(wake)
        return results, wakes

    async def _enqueue_workflow(
        self, conn: Conn, prepared: list[_Prepared]
    ) -> tuple[list[EnqueueResult], set[str]]:
        """Jobs of a workflow: each stored (blocked while it has dependencies) with its edges,
        in one transaction, then the dependencies already finished settle their dependents.
        Without uniqueness, the jobs go in with one statement and the edges with another."""
        self._refuse_repeatable_read(conn, prepared)
        async with _atomic(conn):
            if all(p.job.uniqueness is None for p in prepared):
                results = await self._insert_workflow_plain(conn, prepared)
                wakes = {p.job.executor for p in prepared}
            else:
                results, wakes = await self._insert_workflow_one_by_one(conn, prepared)
            dependents: list[int] = []
            targets: list[int] = []
            for item, result in zip(prepared, results, strict=True):
                if item.job.depends_on and not result.duplicate:
                    for position in item.job.depends_on:
                        dependents.append(int(result.job_id))
                        targets.append(int(results[position].job_id))
            if dependents:
                await _execute(conn, self._q["link_many"], {"jobs": dependents, "on": targets})
                await self._walk(dependencies.propagate(sorted(set(targets))), conn)
        return results, wakes

    async def _insert_workflow_plain(
        self, conn: Conn, prepared: list[_Prepared]
    ) -> list[EnqueueResult]:
        jobs = [p.job for p in prepared]
        params: dict[str, Any] = {
            "executor": [j.executor for j in jobs],
            "data": [p.data for p in prepared],
            "metadata": [p.metadata for p in prepared],
            "max_attempts": [j.max_attempts for j in jobs],
            "priority": [j.priority for j in jobs],
            "tags": [_TAGS_TEXT(p.tags) if p.tags else "[]" for p in prepared],
            "scheduled_at": [p.scheduled_at for p in prepared],
            "partition_key": [j.partition_key for j in jobs],
            "workflow_id": [j.workflow_id for j in jobs],
            "workflow_step": [j.workflow_step for j in jobs],
            "blocked": [bool(j.depends_on) for j in jobs],
            "policy": [
                dependencies.check_policy(j.on_failed_dependency) if j.depends_on else None
                for j in jobs
            ],
            "now": _db_now(),
        }
        rows = await _fetchall(conn, self._q["insert_workflow_many"], params)
        # Identities are drawn in the order of the SELECT (ordered by position).
        return [EnqueueResult(JobId(i)) for i in sorted(int(r[0]) for r in rows)]

    async def _insert_workflow_one_by_one(
        self, conn: Conn, prepared: list[_Prepared]
    ) -> tuple[list[EnqueueResult], set[str]]:
        results: list[EnqueueResult] = []
        wakes: set[str] = set()
        await self._take_unique_locks(conn, prepared)
        for item in prepared:
            job = item.job
            marks = {
                "workflow_id": job.workflow_id,
                "workflow_step": job.workflow_step,
                "blocked": bool(job.depends_on),
            }
            if job.uniqueness is None:
                params = {**item.params(), **marks, "now": _db_now()}
                row = await _fetchone(conn, self._q["insert_workflow_job"], params)
                assert row is not None
                result = EnqueueResult(JobId(int(row[0])))
                wakes.add(job.executor)
            else:
                result, wake = await self._insert_unique(conn, item)
                if not result.duplicate:
                    await _execute(
                        conn, self._q["mark_workflow_job"], {**marks, "id": int(result.job_id)}
                    )
                if wake is not None:
                    wakes.add(wake)
            if job.depends_on and not result.duplicate:
                await _execute(
                    conn,
                    self._q["set_policy"],
                    {"id": int(result.job_id), "policy": job.on_failed_dependency},
                )
            results.append(result)
        return results, wakes

    async def _insert_plain(self, conn: Conn, prepared: list[_Prepared]) -> list[int]:
        now = _db_now()
        if len(prepared) == 1:
            single = prepared[0].params()
            single["now"] = now
            row = await _fetchone(conn, self._q["insert"], single)
            assert row is not None
            return [int(row[0])]
        if len(prepared) >= COPY_AT_LEAST and isinstance(conn, psycopg.AsyncConnection):
            return await self._copy_plain(conn, prepared, len(prepared), now)
        params: dict[str, Any] = {
            "executor": [p.job.executor for p in prepared],
            "data": [p.data for p in prepared],
            "metadata": [p.metadata for p in prepared],
            "max_attempts": [p.job.max_attempts for p in prepared],
            "priority": [p.job.priority for p in prepared],
            "scheduled_at": [p.scheduled_at for p in prepared],
            "now": now,
        }
        if any(p.tags or p.job.partition_key is not None for p in prepared):
            params["tags"] = [_TAGS_TEXT(p.tags) if p.tags else "[]" for p in prepared]
            params["partition_key"] = [p.job.partition_key for p in prepared]
            statement = self._q["insert_many"]
        else:
            statement = self._q["insert_many_untagged"]
        rows = await _fetchall(conn, statement, params)
        # Identities are drawn in the order of the SELECT (ordered by position), so sorting the
        # ids restores the order of the batch.
        return sorted(int(r[0]) for r in rows)

    async def _copy_plain(
        self,
        conn: psycopg.AsyncConnection[Any],
        prepared: Iterable[_Prepared],
        count: int,
        now: datetime | None,
    ) -> list[int]:
        """Store a large batch (``count`` jobs) with COPY, the server's fastest way in (10,000
        jobs: 55 ms of server time, against 91 ms for the INSERT). COPY returns nothing, so the
        identities are drawn first; if the COPY fails they are skipped, as a failed INSERT
        skips its own."""
        table = self._identifiers["jobs"].as_string(None)
        row = await _fetchone(conn, self._q["reserve_ids"], {"jobs": table, "n": count, "now": now})
        assert row is not None
        ids: list[int] = sorted(row[0])
        at: datetime = row[1]
        async with conn.cursor() as cur:
            # The data and metadata are JSON texts already: dumped as they are.
            set_json_dumps(str, cur)
            async with cur.copy(self._q["copy_jobs"]) as copy:
                copy.set_types(_COPY_TYPES)
                for job_id, p in zip(ids, prepared, strict=True):
                    job = p.job
                    await copy.write_row(
                        (
                            job_id,
                            job.executor,
                            p.data,
                            p.metadata,
                            job.max_attempts,
                            job.priority,
                            p.tags,
                            at,
                            at if p.scheduled_at is None else p.scheduled_at,
                            job.partition_key,
                        )
                    )
        return ids

    @staticmethod
    def _refuse_repeatable_read(conn: Conn, prepared: list[_Prepared]) -> None:
        if any(p.job.uniqueness is not None for p in prepared) and conn.isolation_level in (
            psycopg.IsolationLevel.REPEATABLE_READ,
            psycopg.IsolationLevel.SERIALIZABLE,
        ):
            raise ConfigurationError(
                "unique jobs can only be enqueued on a READ COMMITTED connection: under "
                f"{conn.isolation_level.name} the duplicate check could miss jobs committed "
                "by other transactions"
            )

    async def _take_unique_locks(self, conn: Conn, prepared: list[_Prepared]) -> None:
        """Take the advisory locks of every unique job, sorted by name, exclusive when any
        job needs it exclusive."""
        wanted: dict[str, bool] = {}
        for p in prepared:
            criteria = p.job.uniqueness
            if criteria is None:
                continue
            for name, exclusive in criteria.lock_names(p.job.executor):
                wanted[name] = wanted.get(name, False) or exclusive
        calls = [
            sql.SQL(
                "pg_advisory_xact_lock(%s)" if wanted[name] else "pg_advisory_xact_lock_shared(%s)"
            )
            for name in sorted(wanted)
        ]
        keys = [self._lock_key("unique", name) for name in sorted(wanted)]
        await _execute(conn, sql.SQL("SELECT ") + sql.SQL(", ").join(calls), keys)

    def _unique_statement(self, job: EnqueuableJob) -> bytes:
        criteria = job.uniqueness
        assert criteria is not None
        plan = criteria.replace_plan()
        replace_fields = plan.fields if plan is not None else None
        shape = (
            criteria.key is not None,
            criteria.executor,
            criteria.window is not None,
            replace_fields,
        )
        cached = self._unique_cache.get(shape)
        if cached is not None:
            return cached
        filters = ""
        if criteria.key is not None:
            filters += " AND j.uniqueness_key = %(key)s"
        if criteria.executor:
            filters += " AND j.executor = %(executor)s"
        if criteria.window is not None:
            filters += (
                f" AND j.scheduled_at BETWEEN {_before('window', 'new.at')}"
                f" AND {_after('window', 'new.at')}"
            )
        values = {
            "scheduled_at": "new.at",
            "data": "%(data)s::jsonb",
            "metadata": "%(metadata)s::jsonb",
            "priority": "%(priority)s",
            "max_attempts": "%(max_attempts)s",
        }
        if replace_fields:
            sets = ", ".join(f"{field} = {values[field]}" for field in replace_fields)
            replaced = f"""
                replaced AS (
                    UPDATE {{jobs}} AS j SET {sets}
                    FROM found, new
                    WHERE j.id = found.id AND found.status = ANY(%(replace_statuses)s::text[])
                    RETURNING j.id, j.status, j.executor
                ),"""
            tail = """
                SELECT found.id, true, replaced.status, replaced.executor
                FROM found LEFT JOIN replaced ON replaced.id = found.id"""
        else:
            replaced = ""
            tail = "SELECT found.id, true, NULL::text, NULL::text FROM found"
        template = f"""
            WITH new AS (SELECT COALESCE(%(scheduled_at)s::timestamptz, {_NOW}) AS at),
            found AS (
                SELECT j.id, j.status FROM {{jobs}} AS j, new
                WHERE j.status = ANY(%(statuses)s::text[]){filters}
                ORDER BY j.id
                LIMIT 1
                FOR UPDATE OF j
            ),{replaced}
            inserted AS (
                INSERT INTO {{jobs}}
                    (executor, data, metadata, max_attempts, priority, tags, uniqueness_key,
                     inserted_at, scheduled_at, partition_key)
                SELECT %(executor)s, %(data)s::jsonb, %(metadata)s::jsonb, %(max_attempts)s,
                       %(priority)s, %(tags)s::text[], %(key)s::bigint, {_NOW}, new.at,
                       %(partition_key)s::text
                FROM new
                WHERE NOT EXISTS (SELECT 1 FROM found)
                RETURNING id, status, executor
            )
            SELECT id, false, status, executor FROM inserted
            UNION ALL
            {tail}
        """
        statement = self._render(template)
        self._unique_cache[shape] = statement
        return statement

    async def _insert_unique(self, conn: Conn, item: _Prepared) -> tuple[EnqueueResult, str | None]:
        criteria = item.job.uniqueness
        assert criteria is not None
        params = item.params()
        params["key"] = criteria.key
        params["now"] = _db_now()
        params["statuses"] = sorted(JobStatus(s).value for s in criteria.statuses)
        params["window"] = criteria.window
        plan = criteria.replace_plan()
        if plan is not None:
            params["replace_statuses"] = [s.value for s in plan.statuses]
        row = await _fetchone(conn, self._unique_statement(item.job), params)
        assert row is not None
        job_id, duplicate, status, executor = row
        wake = executor if status in JobStatus.READY else None
        return EnqueueResult(JobId(job_id), duplicate=bool(duplicate)), wake


def _plain(job: EnqueuableJob) -> bool:
    """Whether ``job`` asks for none of uniqueness, a workflow or dependencies."""
    return job.uniqueness is None and job.workflow_id is None and not job.depends_on
