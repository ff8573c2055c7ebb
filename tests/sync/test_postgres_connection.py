"""rexecutor.sync on PostgreSQL: the insert joins the caller's own synchronous transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from rexecutor import ConfigurationError, Executor, Job, JobStatus, Rexecutor, sync
from rexecutor.backends.postgres import PostgresBackend
from rexecutor.uniqueness import UniquenessCriteria
from tests.postgres._util import listening
from tests.support.waiting import wait_for_status

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("backend", ["postgres"], indirect=True)]


class Ship(Executor[int, None]):
    name = "ship"

    async def execute(self, job: Job[int, None]) -> None:
        return None


@pytest.fixture(autouse=True)
def _close_facade() -> Iterator[None]:
    yield
    sync.close()


def stored(backend: PostgresBackend) -> list[int]:
    return [j.data for j in sync.query_jobs(Ship, None, backend)]


def setup_orders(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS sync_orders (id int PRIMARY KEY)")
        conn.execute("DELETE FROM sync_orders")


def test_committed_with_the_callers_transaction(
    backend: PostgresBackend, postgres_url: str
) -> None:
    setup_orders(postgres_url)
    with psycopg.connect(postgres_url) as conn:  # manual-commit: one transaction
        conn.execute("INSERT INTO sync_orders (id) VALUES (1)")
        job_id = sync.enqueue(Ship.builder().with_data(1), backend, connection=conn)
        assert stored(backend) == []  # not visible to others before the commit
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    # leaving the block commits
    assert stored(backend) == [1]
    assert sync.get_job(Ship, job_id, backend).status is JobStatus.SCHEDULED


def test_gone_with_a_rollback(backend: PostgresBackend, postgres_url: str) -> None:
    setup_orders(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        with pytest.raises(RuntimeError, match="payment failed"), conn.transaction():
            conn.execute("INSERT INTO sync_orders (id) VALUES (2)")
            sync.enqueue(Ship.builder().with_data(2), backend, connection=conn)
            raise RuntimeError("payment failed")
        count = conn.execute("SELECT count(*) FROM sync_orders").fetchone()
    assert count == (0,)
    assert stored(backend) == []


def test_unique_and_bulk_enqueues_in_one_transaction(
    backend: PostgresBackend, postgres_url: str
) -> None:
    once = UniquenessCriteria.by_key("order-3")
    with psycopg.connect(postgres_url) as conn:
        first = sync.enqueue_with_result(
            Ship.builder().with_data(3).unique(once), backend, connection=conn
        )
        again = sync.enqueue_with_result(
            Ship.builder().with_data(3).unique(once), backend, connection=conn
        )
        assert (again.job_id, again.duplicate) == (first.job_id, True)
        results = sync.enqueue_many(
            [Ship.builder().with_data(n) for n in (4, 5)], backend, connection=conn
        )
        assert [r.duplicate for r in results] == [False, False]
    assert sorted(stored(backend)) == [3, 4, 5]


def test_an_autocommit_connection_outside_a_transaction_commits_at_once(
    backend: PostgresBackend, postgres_url: str
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        sync.enqueue(Ship.builder().with_data(6), backend, connection=conn)
        sync.enqueue(
            Ship.builder().with_data(7).unique(UniquenessCriteria.by_key("7")),
            backend,
            connection=conn,
        )
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert sorted(stored(backend)) == [6, 7]


async def test_a_node_is_woken_when_the_transaction_commits(
    backend: PostgresBackend, postgres_url: str
) -> None:
    async with Rexecutor(backend, poll_interval=60).with_executor(Ship):
        await listening(backend)  # the wake-up arrives through LISTEN/NOTIFY

        def caller() -> int:
            with psycopg.connect(postgres_url) as conn:
                return int(sync.enqueue(Ship.builder().with_data(8), backend, connection=conn))

        job_id = await asyncio.to_thread(caller)
        await wait_for_status(backend, job_id, JobStatus.COMPLETE, timeout=5)


async def test_an_async_connection_is_refused(backend: PostgresBackend, postgres_url: str) -> None:
    conn: Any = await psycopg.AsyncConnection.connect(postgres_url)
    try:
        with pytest.raises(ConfigurationError, match=r"needs a synchronous psycopg\.Connection"):
            sync.enqueue(Ship.builder().with_data(9), backend, connection=conn)
    finally:
        await conn.close()


def test_errors_are_the_backends_own(backend: PostgresBackend, postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        with pytest.raises(ConfigurationError, match="READ COMMITTED"):
            sync.enqueue(
                Ship.builder().with_data(10).unique(UniquenessCriteria.by_key("x")),
                backend,
                connection=conn,
            )


def test_a_client_side_binding_connection_as_django_makes(
    backend: PostgresBackend, postgres_url: str
) -> None:
    with psycopg.connect(postgres_url, cursor_factory=psycopg.ClientCursor) as conn:
        results = sync.enqueue_many(
            [Ship.builder().with_data(n) for n in (11, 12)], backend, connection=conn
        )
        sync.enqueue(
            Ship.builder().with_data(13).unique(UniquenessCriteria.by_key("13")),
            backend,
            connection=conn,
        )
    assert len(results) == 2
    assert sorted(stored(backend)) == [11, 12, 13]
