"""``transaction_pooling`` and ``listen_url``: what is refused, and what a backend behind
PgBouncer without a direct URL does instead of LISTEN (tests/support/pgbouncer.py)."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from rexecutor import _waiting
from rexecutor.backends import (
    LISTEN_URL_ENV_VAR,
    TRANSACTION_POOLING_ENV_VAR,
    backend_from_url,
)
from rexecutor.backends.postgres import PostgresBackend
from rexecutor.errors import ConfigurationError
from rexecutor.job import JobStatus
from tests.backends._helpers import claim_one, enqueue
from tests.support.pgbouncer import Bouncer
from tests.support.postgres import reset_tables

POLLING = "does not LISTEN"


async def test_transaction_pooling_refuses_a_given_pool_that_prepares_statements() -> None:
    pool: AsyncConnectionPool[psycopg.AsyncConnection[object]] = AsyncConnectionPool(
        "postgresql://app@localhost/app", open=False
    )
    with pytest.raises(ConfigurationError, match="prepare_threshold"):
        PostgresBackend.from_pool(pool, transaction_pooling=True)
    ready: AsyncConnectionPool[psycopg.AsyncConnection[object]] = AsyncConnectionPool(
        "postgresql://app@localhost/app", kwargs={"prepare_threshold": None}, open=False
    )
    assert PostgresBackend.from_pool(ready, transaction_pooling=True).schema == "public"


def test_a_bad_listen_url_is_refused_naming_it() -> None:
    with pytest.raises(ConfigurationError, match="listen_url"):
        PostgresBackend(
            "postgresql://app@localhost/app",
            listen_url="postgresql://app@db/app?rexecutor_listen=1",
        )
    with pytest.raises(ConfigurationError, match="listen_url"):
        PostgresBackend("postgresql://app@localhost/app", listen_url=" ")


def test_the_environment_options_apply_to_postgresql_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TRANSACTION_POOLING_ENV_VAR, "maybe")
    with pytest.raises(ConfigurationError, match=f"{TRANSACTION_POOLING_ENV_VAR}.*'maybe'"):
        backend_from_url("postgresql://app@localhost/app")
    monkeypatch.setenv(TRANSACTION_POOLING_ENV_VAR, "0")
    monkeypatch.setenv(LISTEN_URL_ENV_VAR, "postgresql://app@db/app")
    with pytest.raises(ConfigurationError, match="PostgreSQL only"):
        backend_from_url("memory://")
    assert isinstance(backend_from_url("postgresql://app@localhost/app"), PostgresBackend)


async def listeners(postgres_url: str) -> int:
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN %%'"
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_without_listen_url_nothing_listens_and_waiters_poll(
    postgres_url: str,
    pgbouncer: Bouncer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No safety re-check: only the waiters' poll can tell them of a write elsewhere.
    monkeypatch.setattr(_waiting, "SAFETY_RECHECK", 3600.0)
    await reset_tables(postgres_url)
    bounced = PostgresBackend(
        pgbouncer.url(postgres_url), transaction_pooling=True, poll_interval=0.05, migrate=False
    )
    caplog.set_level(logging.WARNING, "rexecutor.backends.postgres")
    await bounced.connect()
    await bounced.close()
    async with bounced, PostgresBackend(postgres_url, migrate=False) as other:
        assert caplog.text.count(POLLING) == 1, "one warning per backend, not per connect"
        bounced.wakeups.subscribe()  # what a runner does: would start the LISTEN listener
        job_id = await enqueue(other)
        _, lease = await claim_one(other)
        waiter = asyncio.ensure_future(_waiting.wait_for_job(bounced, job_id))
        await asyncio.sleep(0.2)
        assert not waiter.done()
        assert await listeners(postgres_url) == 0
        assert await other.complete_jobs([(job_id, lease)]) == [True]
        done = await asyncio.wait_for(waiter, 60)
        assert done.status is JobStatus.COMPLETE
