"""PostgreSQL for the test suite: one throw-away database per test session.

``postgres_url`` (session-scoped) creates a uniquely named database through the maintenance
database at ``REXECUTOR_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``),
migrates it once and drops it, with ``WITH (FORCE)``, when the session ends. ``make_backend``
hands each test a connected backend on that database after emptying its tables.

The PostgreSQL tests are never skipped: without a reachable server they fail, saying why.
Registered as a plugin in ``tests/conftest.py`` (``pytest_plugins = ["tests.support.postgres"]``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from rexecutor.backends.postgres import PostgresBackend

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    """The maintenance database the test databases are created from."""
    return os.environ.get("REXECUTOR_TEST_PG_URL", DEFAULT_URL)


def _admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    url = admin_url()
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        target = conninfo_to_dict(url)
        where = f"{target.get('host', 'localhost')}:{target.get('port', 5432)}"
        pytest.fail(
            f"the PostgreSQL tests need a server at {where} (REXECUTOR_TEST_PG_URL={url!r}), "
            f"but connecting failed: {exc}. Start PostgreSQL or point REXECUTOR_TEST_PG_URL "
            "at one; these tests are never skipped.",
            pytrace=False,
        )


def _in_thread(coro_factory: object) -> None:
    """Run an async function to completion on a fresh loop in another thread (a session
    fixture may be set up while a test's loop is already running)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro_factory())  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a fresh, migrated database that lives as long as the test session."""
    name = f"rexecutor_test_{os.getpid()}_{secrets.token_hex(4)}"
    with _admin_connection() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(admin_url(), dbname=name)
    try:

        async def migrate() -> None:
            await PostgresBackend(url, migrate=False).migrate()

        _in_thread(migrate)
        yield url
    finally:
        with _admin_connection() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def pg_url(conninfo: str) -> str:
    """The test database as a ``postgresql://`` URL (what the worker command takes)."""
    base = admin_url().rsplit("/", 1)[0]
    return f"{base}/{conninfo_to_dict(conninfo)['dbname']}"


async def reset_tables(target: str | PostgresBackend, schema: str = "public") -> None:
    """Empty the rexecutor tables and restart job ids at 1.

    ``target`` is a connected backend (its own pool is used, and its schema) or a connection
    URL (a connection is opened for the purpose, on ``schema``). ``DELETE`` plus ``setval``
    rather than ``TRUNCATE``: on the handful of rows a test leaves behind it is several times
    faster (TRUNCATE recreates every table and index file).
    """
    if isinstance(target, PostgresBackend):
        pool = target._pool
        assert pool is not None, "connect the backend first"
        async with pool.connection() as conn:
            await _reset(conn, target.schema)
    else:
        async with await psycopg.AsyncConnection.connect(target, autocommit=True) as conn:
            await _reset(conn, schema)


async def _reset(conn: psycopg.AsyncConnection[Any], schema: str) -> None:
    jobs = sql.Identifier(schema, "rexecutor_jobs")
    statements = [sql.SQL("DELETE FROM {}").format(jobs)] + [
        sql.SQL("DELETE FROM {}").format(sql.Identifier(schema, table))
        for table in (
            "rexecutor_nodes",
            "rexecutor_executors",
            "rexecutor_job_starts",
            "rexecutor_job_dependencies",
        )
    ]
    await conn.execute("SET lock_timeout = '5s'")
    try:
        for statement in statements:
            await conn.execute(statement)
    except psycopg.errors.LockNotAvailable:
        # A previous test left a transaction holding row locks: end the other sessions of
        # this test database (never any other database) and try again.
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        for statement in statements:
            await conn.execute(statement)
    await conn.execute(
        "SELECT setval(pg_get_serial_sequence(%s, 'id'), 1, false)", [jobs.as_string(None)]
    )
    await conn.execute("RESET lock_timeout")


@asynccontextmanager
async def make_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[PostgresBackend]:
    """A connected backend on the session's database, with empty tables."""
    url = request.getfixturevalue("postgres_url")
    async with PostgresBackend(url, migrate=False) as backend:
        await reset_tables(backend)
        yield backend
