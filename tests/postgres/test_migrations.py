"""Migrations: versioned, idempotent, safe to run from several nodes at once, and refused
when the database is newer than the library."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import psycopg
import pytest
from psycopg import sql

from rexecutor.backends.postgres import SCHEMA_VERSION, PostgresBackend
from rexecutor.errors import BackendError, ConfigurationError, SchemaVersionError

from ..backends._helpers import new_job

pytestmark = pytest.mark.postgres

Admin = psycopg.AsyncConnection[tuple[object, ...]]

EXPECTED_INDEXES = {
    "rexecutor_jobs_pkey",
    "rexecutor_jobs_ready_idx",
    "rexecutor_jobs_executor_status_idx",
    "rexecutor_jobs_uniqueness_key_idx",
    "rexecutor_jobs_finished_idx",
    "rexecutor_jobs_executing_idx",
}


async def _versions(admin: Admin, schema: str) -> list[tuple[object, ...]]:
    cur = await admin.execute(
        sql.SQL("SELECT version, description FROM {} ORDER BY version").format(
            sql.Identifier(schema, "rexecutor_migrations")
        )
    )
    return await cur.fetchall()


async def test_migrate_creates_the_schema_and_is_idempotent(
    postgres_url: str, admin: Admin, new_schema: Callable[[str], str]
) -> None:
    schema = new_schema("mig")
    backend = PostgresBackend(postgres_url, schema=schema)
    assert await backend.migrate() == SCHEMA_VERSION
    assert await backend.migrate() == SCHEMA_VERSION
    assert [v for v, _ in await _versions(admin, schema)] == list(range(1, SCHEMA_VERSION + 1))

    cur = await admin.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", [schema])
    assert {name for (name,) in await cur.fetchall()} >= EXPECTED_INDEXES
    cur = await admin.execute(
        "SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND NOT tgisinternal",
        [schema],
    )
    assert {name for (name,) in await cur.fetchall()} == {
        "rexecutor_jobs_notify_insert",
        "rexecutor_jobs_notify_update",
    }


async def test_migrate_works_on_a_connected_backend_too(
    postgres_url: str, new_schema: Callable[[str], str]
) -> None:
    async with PostgresBackend(postgres_url, schema=new_schema("mig")) as backend:
        assert await backend.migrate() == SCHEMA_VERSION
        assert (await backend.enqueue(new_job())).job_id == 1


async def test_concurrent_migrations_apply_each_version_once(
    postgres_url: str, admin: Admin, new_schema: Callable[[str], str]
) -> None:
    schema = new_schema("mig")
    backends = [PostgresBackend(postgres_url, schema=schema) for _ in range(4)]
    results = await asyncio.gather(
        *(b.migrate() for b in backends[:2]), backends[2].connect(), backends[3].connect()
    )
    try:
        assert results[:2] == [SCHEMA_VERSION, SCHEMA_VERSION]
        assert [v for v, _ in await _versions(admin, schema)] == list(range(1, SCHEMA_VERSION + 1))
        assert (await backends[2].enqueue(new_job())).job_id == 1
    finally:
        for b in backends:
            await b.close()


async def test_a_newer_schema_is_refused(
    postgres_url: str, admin: Admin, new_schema: Callable[[str], str]
) -> None:
    schema = new_schema("mig")
    await PostgresBackend(postgres_url, schema=schema).migrate()
    future = SCHEMA_VERSION + 41
    await admin.execute(
        sql.SQL("INSERT INTO {} (version, description) VALUES (%s, 'from the future')").format(
            sql.Identifier(schema, "rexecutor_migrations")
        ),
        [future],
    )
    with pytest.raises(SchemaVersionError) as caught:
        await PostgresBackend(postgres_url, schema=schema).migrate()
    message = str(caught.value)
    assert str(future) in message and str(SCHEMA_VERSION) in message
    assert "upgrade rexecutor" in message

    for migrate in (True, False):
        backend = PostgresBackend(postgres_url, schema=schema, migrate=migrate)
        with pytest.raises(SchemaVersionError):
            await backend.connect()
        await backend.close()


async def test_connect_without_migrating_needs_an_up_to_date_schema(
    postgres_url: str, new_schema: Callable[[str], str]
) -> None:
    schema = new_schema("mig")
    backend = PostgresBackend(postgres_url, schema=schema, migrate=False)
    with pytest.raises(BackendError, match=r"migrate\(\)") as caught:
        await backend.connect()
    assert not isinstance(caught.value, SchemaVersionError)
    assert await backend.migrate() == SCHEMA_VERSION
    async with backend:
        assert (await backend.enqueue(new_job())).job_id == 1


async def test_operations_before_connect_say_so(postgres_url: str) -> None:
    backend = PostgresBackend(postgres_url)
    with pytest.raises(BackendError, match="not connected"):
        await backend.enqueue(new_job())


@pytest.mark.parametrize("schema", ["", "x" * 49, "pg_jobs", "PG_x", "a\x00b"])
def test_invalid_schema_names_are_rejected(postgres_url: str, schema: str) -> None:
    with pytest.raises(ConfigurationError):
        PostgresBackend(postgres_url, schema=schema)


def test_invalid_settings_are_rejected(postgres_url: str) -> None:
    with pytest.raises(ConfigurationError):
        PostgresBackend(postgres_url, min_size=5, max_size=2)
    with pytest.raises(ConfigurationError):
        PostgresBackend(postgres_url, poll_interval=0)
    with pytest.raises(ConfigurationError):
        PostgresBackend("")
    with pytest.raises(ConfigurationError):
        PostgresBackend("host=localhost dbname")


def test_poll_interval_comes_from_the_constructor(postgres_url: str) -> None:
    assert PostgresBackend(postgres_url, poll_interval=0.25).poll_interval == 0.25
    assert PostgresBackend(postgres_url).poll_interval == 1.0
