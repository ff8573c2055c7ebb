"""Enqueue inside the caller's transaction: the job exists only if it commits, and other
nodes hear about it only then."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from rexecutor.backends.postgres import PostgresBackend
from rexecutor.errors import ConfigurationError, ValidationError
from rexecutor.query import ExecutorEquals
from rexecutor.uniqueness import UniquenessCriteria

from ..backends._helpers import new_job
from ._util import PROMPT, QUIET_AT_LEAST, QUIET_WAIT, drain, listening, seconds_waited

pytestmark = pytest.mark.postgres


class Rollback(Exception):
    pass


async def _count(backend: PostgresBackend, executor: str = "ex") -> int:
    return len(await backend.query(ExecutorEquals(executor)))


async def _connect(url: str, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(url, **kwargs)


async def test_rolled_back_transaction_leaves_no_job(
    pg: PostgresBackend, postgres_url: str
) -> None:
    async with await _connect(postgres_url) as conn:
        with pytest.raises(Rollback):
            async with conn.transaction():
                result = await pg.enqueue(new_job(), connection=conn)
                assert result.job_id >= 1
                assert await _count(pg) == 0  # not visible outside the transaction yet
                raise Rollback
    assert await _count(pg) == 0


async def test_committed_transaction_stores_the_job(pg: PostgresBackend, postgres_url: str) -> None:
    async with await _connect(postgres_url) as conn:
        async with conn.transaction():
            await conn.execute("CREATE TEMP TABLE orders (id int)")
            await conn.execute("INSERT INTO orders VALUES (42)")
            result = await pg.enqueue(new_job(data={"order": 42}), connection=conn)
        job = await pg.get_job(result.job_id)
    assert job.data == {"order": 42}


async def test_notification_is_delivered_on_commit_only(
    pg: PostgresBackend, postgres_url: str
) -> None:
    sub = pg.subscribe(["ex"])
    await listening(pg)
    await drain(sub)
    async with await _connect(postgres_url) as conn:
        async with conn.transaction():
            await pg.enqueue(new_job(), connection=conn)
            assert await seconds_waited(sub, QUIET_WAIT) >= QUIET_AT_LEAST
        assert await seconds_waited(sub, 5) < PROMPT
        with pytest.raises(Rollback):
            async with conn.transaction():
                await pg.enqueue(new_job(), connection=conn)
                raise Rollback
        assert await seconds_waited(sub, QUIET_WAIT) >= QUIET_AT_LEAST
    sub.close()


async def test_manual_commit_connection_leaves_the_transaction_to_its_owner(
    pg: PostgresBackend, postgres_url: str
) -> None:
    async with await _connect(postgres_url) as conn:
        assert not conn.autocommit
        await pg.enqueue(new_job(), connection=conn)
        await conn.rollback()
        assert await _count(pg) == 0
        results = await pg.enqueue_many([new_job(), new_job()], connection=conn)
        await conn.commit()
    assert sorted(j.id for j in await pg.query(ExecutorEquals("ex"))) == sorted(
        r.job_id for r in results
    )


async def test_autocommit_connection_outside_a_transaction_commits_at_once(
    pg: PostgresBackend, postgres_url: str
) -> None:
    async with await _connect(postgres_url, autocommit=True) as conn:
        await pg.enqueue(new_job(), connection=conn)
        criteria = UniquenessCriteria.by_key("k")
        first = await pg.enqueue(new_job(uniqueness=criteria), connection=conn)
        assert await _count(pg) == 2
        again = await pg.enqueue(new_job(uniqueness=criteria))
        assert (again.job_id, again.duplicate) == (first.job_id, True)


async def test_unique_job_rolled_back_does_not_count_as_a_duplicate(
    pg: PostgresBackend, postgres_url: str
) -> None:
    criteria = UniquenessCriteria.by_key("order-7")
    async with await _connect(postgres_url) as conn:
        with pytest.raises(Rollback):
            async with conn.transaction():
                first = await pg.enqueue(new_job(uniqueness=criteria), connection=conn)
                inside = await pg.enqueue(new_job(uniqueness=criteria), connection=conn)
                assert (inside.job_id, inside.duplicate) == (first.job_id, True)
                raise Rollback
    result = await pg.enqueue(new_job(uniqueness=criteria))
    assert not result.duplicate
    assert await _count(pg) == 1


async def test_enqueue_many_in_a_transaction(pg: PostgresBackend, postgres_url: str) -> None:
    criteria = UniquenessCriteria.by_key("k")
    batch = [new_job(), new_job(uniqueness=criteria), new_job(uniqueness=criteria)]
    async with await _connect(postgres_url) as conn:
        with pytest.raises(Rollback):
            async with conn.transaction():
                results = await pg.enqueue_many(batch, connection=conn)
                assert [r.duplicate for r in results] == [False, False, True]
                raise Rollback
        assert await _count(pg) == 0
        async with conn.transaction():
            results = await pg.enqueue_many(batch, connection=conn)
    assert await _count(pg) == 2
    assert results[2].job_id == results[1].job_id


async def test_unique_jobs_need_read_committed(pg: PostgresBackend, postgres_url: str) -> None:
    async with await _connect(postgres_url) as conn:
        await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
        with pytest.raises(ConfigurationError, match="READ COMMITTED"):
            await pg.enqueue(new_job(uniqueness=UniquenessCriteria.by_key("k")), connection=conn)
        await pg.enqueue(new_job(), connection=conn)  # plain jobs are fine
        await conn.commit()
    assert await _count(pg) == 1


async def test_invalid_values_raise_validation_errors_on_a_caller_connection(
    pg: PostgresBackend, postgres_url: str
) -> None:
    async with await _connect(postgres_url) as conn:
        with pytest.raises(ValidationError):
            await pg.enqueue(new_job(data={"x": float("nan")}), connection=conn)
        with pytest.raises(ValidationError):
            await pg.enqueue(new_job(data={"x": "nul\x00"}), connection=conn)
        await conn.rollback()
