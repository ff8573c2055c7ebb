"""Enqueue inside a transaction held by another driver: SQLAlchemy (async on asyncpg and on
psycopg, sync on psycopg2 and on psycopg through rexecutor.sync) and a raw asyncpg connection.
The job exists only if the caller's transaction commits, and the commit wakes workers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from rexecutor import Executor, Job, Workflow, sync
from rexecutor.backends.postgres import PostgresBackend
from rexecutor.errors import BackendError, ConfigurationError, ValidationError
from rexecutor.query import ExecutorEquals
from rexecutor.uniqueness import UniquenessCriteria
from tests.support.postgres import pg_url

from ..backends._helpers import new_job

pytestmark = pytest.mark.postgres

ASYNC_DRIVERS = ["sqlalchemy+asyncpg", "sqlalchemy+psycopg", "asyncpg"]
SYNC_DRIVERS = ["psycopg2", "psycopg"]
CHANNEL = "public_rexecutor_jobs"


class Rollback(Exception):
    pass


class Step(Executor[int, None]):
    name = "ex"

    async def execute(self, job: Job[int, None]) -> None:
        return None


def _url(postgres_url: str, driver: str) -> str:
    return pg_url(postgres_url).replace("postgresql://", f"postgresql+{driver}://", 1)


@asynccontextmanager
async def transaction(kind: str, postgres_url: str, **options: Any) -> AsyncIterator[Any]:
    """The connection object of driver ``kind`` inside an open transaction, committed when the
    block ends (rolled back when it raises). ``isolation``: that of the transaction."""
    isolation = options.get("isolation")
    if kind == "asyncpg":
        conn = await asyncpg.connect(pg_url(postgres_url))
        try:
            async with conn.transaction(isolation=isolation):
                yield conn
        finally:
            await conn.close()
        return
    if kind == "asyncpg pool":  # what it hands out is a proxy, not a Connection
        async with (
            asyncpg.create_pool(pg_url(postgres_url), min_size=1, max_size=1) as pool,
            pool.acquire() as proxy,
            proxy.transaction(isolation=isolation),
        ):
            yield proxy
        return
    engine = create_async_engine(_url(postgres_url, kind.split("+")[1]))
    if isolation is not None:
        engine = engine.execution_options(isolation_level=isolation.replace("_", " ").upper())
    try:
        async with AsyncSession(engine) as session, session.begin():
            yield session
    finally:
        await engine.dispose()


@contextmanager
def sync_session(kind: str, postgres_url: str) -> Iterator[Session]:
    """A SQLAlchemy sync session on driver ``kind``, in a transaction committed on exit."""
    engine = create_engine(_url(postgres_url, kind))
    try:
        with Session(engine) as session, session.begin():
            yield session
    finally:
        engine.dispose()


@asynccontextmanager
async def listening(postgres_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection LISTENing on the jobs channel: it hears what wakes every worker."""
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute(f"LISTEN {CHANNEL}")
        yield conn


async def heard(conn: psycopg.AsyncConnection[Any], count: int) -> list[str]:
    return [n.payload async for n in conn.notifies(timeout=10, stop_after=count)]


async def mark(postgres_url: str) -> None:
    """A notification sent now: whatever arrives before it was sent before it."""
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute("SELECT pg_notify(%s, 'marker')", [CHANNEL])


async def _ids(pg: PostgresBackend) -> list[int]:
    return sorted(int(j.id) for j in await pg.query(ExecutorEquals("ex")))


@pytest.mark.parametrize("kind", [*ASYNC_DRIVERS, "asyncpg pool"])
async def test_rollback_leaves_nothing_and_commit_stores_and_wakes(
    pg: PostgresBackend, postgres_url: str, kind: str
) -> None:
    async with listening(postgres_url) as listener:
        with pytest.raises(Rollback):
            async with transaction(kind, postgres_url) as conn:
                await pg.enqueue(new_job(), connection=conn)
                await pg.enqueue_many([new_job(), new_job()], connection=conn)
                raise Rollback
        assert await _ids(pg) == []
        async with transaction(kind, postgres_url) as conn:
            one = await pg.enqueue(new_job(), connection=conn)
            many = await pg.enqueue_many([new_job(), new_job()], connection=conn)
            assert await _ids(pg) == []  # not visible outside the transaction yet
            await mark(postgres_url)
        # The rolled-back enqueues sent nothing (else it would precede the marker), and the
        # committed ones woke the workers at commit (after it).
        assert await heard(listener, 2) == ["marker", "ex"]
    assert await _ids(pg) == sorted(int(r.job_id) for r in [one, *many])


@pytest.mark.parametrize("kind", ASYNC_DRIVERS)
async def test_values_are_stored_as_on_psycopg(
    pg: PostgresBackend, postgres_url: str, kind: str
) -> None:
    data = {"quote": 'it\'s 100% \\ {x} "y" $1 %(name)s', "nested": [1, None, 2.5], "é": "ü"}
    at = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    fields: dict[str, Any] = {
        "metadata": {"m": "\\"},
        "tags": ["a b", 'q"u', "{br}", "it's", "back\\slash", "NULL", ""],
        "scheduled_at": at,
        "priority": 3,
        "max_attempts": 7,
        "partition_key": "p'k",
    }
    async with transaction(kind, postgres_url) as conn:
        [first, second] = await pg.enqueue_many(
            [new_job(data=data, **fields), new_job(data=[])], connection=conn
        )
        single = await pg.enqueue(new_job(data=data, **fields), connection=conn)
    for job_id in (first.job_id, single.job_id):
        job = await pg.get_job(job_id)
        assert (job.data, job.metadata, job.tags, job.scheduled_at) == (
            data,
            {"m": "\\"},
            fields["tags"],
            at,
        )
        assert (job.priority, job.max_attempts, job.partition_key) == (3, 7, "p'k")
    assert (await pg.get_job(second.job_id)).data == []


@pytest.mark.parametrize("kind", ASYNC_DRIVERS)
async def test_unique_jobs_lock_inside_the_callers_transaction(
    pg: PostgresBackend, postgres_url: str, kind: str
) -> None:
    criteria = UniquenessCriteria.by_key("order-7").and_within(timedelta(hours=1)).and_executor()
    with pytest.raises(Rollback):
        async with transaction(kind, postgres_url) as conn:
            first = await pg.enqueue(new_job(uniqueness=criteria), connection=conn)
            again = await pg.enqueue(new_job(uniqueness=criteria), connection=conn)
            assert (again.job_id, again.duplicate) == (first.job_id, True)
            raise Rollback
    async with transaction(kind, postgres_url) as conn:
        batch = [new_job(), new_job(uniqueness=criteria), new_job(uniqueness=criteria)]
        results = await pg.enqueue_many(batch, connection=conn)
    assert [r.duplicate for r in results] == [False, False, True]
    assert await _ids(pg) == sorted({int(r.job_id) for r in results})
    outside = await pg.enqueue(new_job(uniqueness=criteria))
    assert (outside.job_id, outside.duplicate) == (results[1].job_id, True)


@pytest.mark.parametrize("kind", ASYNC_DRIVERS)
async def test_unique_jobs_refuse_repeatable_read(
    pg: PostgresBackend, postgres_url: str, kind: str
) -> None:
    with pytest.raises(ConfigurationError, match="READ COMMITTED"):
        async with transaction(kind, postgres_url, isolation="repeatable_read") as conn:
            await pg.enqueue(new_job(uniqueness=UniquenessCriteria.by_key("k")), connection=conn)
    assert await _ids(pg) == []


@pytest.mark.parametrize("kind", ASYNC_DRIVERS)
async def test_a_workflow_exists_only_if_the_transaction_commits(
    pg: PostgresBackend, postgres_url: str, kind: str
) -> None:
    def build() -> Workflow:
        wf = Workflow("foreign")
        first = wf.add(Step.builder().with_data(1))
        wf.add_group([Step.builder().with_data(i) for i in range(3)], depends_on=[first])
        return wf

    with pytest.raises(Rollback):
        async with transaction(kind, postgres_url) as conn:
            await build().enqueue_to_backend(pg, connection=conn)
            raise Rollback
    assert await pg.count_jobs() == {}
    wf = build()
    async with transaction(kind, postgres_url) as conn:
        ids = await wf.enqueue_to_backend(pg, connection=conn)
    stored = await pg.workflow_jobs(wf.id)
    assert [int(j.id) for j in stored] == [int(i) for i in ids]
    assert [j.blocked for j in stored] == [False, True, True, True]
    assert await pg.dependencies(ids) == {int(i): [int(ids[0])] for i in ids[1:]}


@pytest.mark.parametrize("kind", ASYNC_DRIVERS)
async def test_invalid_values_raise_validation_errors(
    pg: PostgresBackend, postgres_url: str, kind: str
) -> None:
    for job in (new_job(data={"x": "nul\x00"}), new_job(tags=["nul\x00"])):
        with pytest.raises(ValidationError):
            async with transaction(kind, postgres_url) as conn:
                await pg.enqueue(job, connection=conn)
    assert await _ids(pg) == []


async def test_unknown_and_synchronous_connections_are_refused_clearly(
    pg: PostgresBackend, postgres_url: str
) -> None:
    with pytest.raises(TypeError, match="asyncpg Connection"):
        await pg.enqueue(new_job(), connection="postgresql://nowhere")
    with (
        sync_session("psycopg", postgres_url) as session,
        pytest.raises(ConfigurationError, match=r"rexecutor\.sync"),
    ):
        await pg.enqueue(new_job(), connection=session)
    async with transaction("asyncpg", postgres_url) as conn:
        with pytest.raises(ConfigurationError, match="event loop"):
            sync.enqueue(Step.builder().with_data(1), pg, connection=conn)
    engine = create_engine(_url(postgres_url, "psycopg2"), isolation_level="AUTOCOMMIT")
    try:
        with (
            engine.connect() as autocommit,
            pytest.raises(ConfigurationError, match="AUTOCOMMIT"),
        ):
            sync.enqueue(Step.builder().with_data(1), pg, connection=autocommit)
    finally:
        engine.dispose()
    assert await _ids(pg) == []


@pytest.mark.parametrize("kind", SYNC_DRIVERS)
async def test_the_sync_facade_joins_a_sqlalchemy_session(
    pg: PostgresBackend, postgres_url: str, kind: str
) -> None:
    criteria = UniquenessCriteria.by_key("sync")
    async with listening(postgres_url) as listener:
        with pytest.raises(Rollback), sync_session(kind, postgres_url) as session:
            session.execute(text("SELECT 1"))
            sync.enqueue(Step.builder().with_data(1), pg, connection=session)
            raise Rollback
        assert await _ids(pg) == []
        with sync_session(kind, postgres_url) as session:
            one = sync.enqueue(
                Step.builder().with_data(1).with_tags(["100% it's"]), pg, connection=session
            )
            many = sync.enqueue_many(
                [Step.builder().with_data(2), Step.builder().with_data(3).unique(criteria)],
                pg,
                connection=session,
            )
            again = sync.enqueue_with_result(
                Step.builder().with_data(4).unique(criteria), pg, connection=session
            )
            assert (again.job_id, again.duplicate) == (many[1].job_id, True)
            await mark(postgres_url)
        assert await heard(listener, 2) == ["marker", "ex"]
    assert await _ids(pg) == sorted(int(i) for i in [one, *(r.job_id for r in many)])
    assert (await pg.get_job(one)).tags == ["100% it's"]


def test_the_package_never_imports_the_other_drivers() -> None:
    check = (
        "import sys, rexecutor.sync, rexecutor.backends.postgres.foreign; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'asyncpg', 'psycopg2')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_a_sqlalchemy_connection_commits_the_job_with_its_own_commit(
    pg: PostgresBackend, postgres_url: str, driver: str
) -> None:
    # No transaction begun before the enqueue: the job begins it, as a statement would.
    engine = create_async_engine(_url(postgres_url, driver))
    try:
        async with engine.connect() as conn:
            await pg.enqueue(new_job(), connection=conn)
            await conn.rollback()
            assert await _ids(pg) == []
            kept = await pg.enqueue(new_job(), connection=conn)
            await conn.commit()
    finally:
        await engine.dispose()
    sync_engine = create_engine(_url(postgres_url, "psycopg2" if driver == "asyncpg" else driver))
    try:
        with sync_engine.connect() as sync_conn:
            also = sync.enqueue(Step.builder().with_data(1), pg, connection=sync_conn)
            sync_conn.commit()
    finally:
        sync_engine.dispose()
    assert await _ids(pg) == sorted([int(kept.job_id), int(also)])


async def test_an_asyncpg_connection_outside_a_transaction_commits_at_once(
    pg: PostgresBackend, postgres_url: str
) -> None:
    criteria = UniquenessCriteria.by_key("k")
    conn = await asyncpg.connect(pg_url(postgres_url))
    try:
        plain = await pg.enqueue(new_job(), connection=conn)
        # The unique path's locks and insert need one transaction: it opens its own.
        unique = await pg.enqueue(new_job(uniqueness=criteria), connection=conn)
        assert not conn.is_in_transaction()
    finally:
        await conn.close()
    assert await _ids(pg) == sorted([int(plain.job_id), int(unique.job_id)])
    again = await pg.enqueue(new_job(uniqueness=criteria))
    assert (again.job_id, again.duplicate) == (unique.job_id, True)


@pytest.mark.parametrize("kind", [*ASYNC_DRIVERS, "psycopg2"])
async def test_server_errors_are_reported_as_on_psycopg(
    postgres_url: str,
    admin: psycopg.AsyncConnection[Any],
    new_schema: Callable[[str], str],
    kind: str,
) -> None:
    schema = new_schema("bare")
    await admin.execute(f"CREATE SCHEMA {schema}")  # never migrated: no rexecutor tables
    bare = PostgresBackend(pg_url(postgres_url), schema=schema)
    with pytest.raises(BackendError, match=r"tables are missing.*run `await backend\.migrate\(\)`"):
        if kind == "psycopg2":
            with sync_session(kind, postgres_url) as session:
                sync.enqueue(Step.builder().with_data(1), bare, connection=session)
        else:
            async with transaction(kind, postgres_url) as conn:
                await bare.enqueue(new_job(), connection=conn)
