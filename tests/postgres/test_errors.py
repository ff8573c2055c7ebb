"""Connection and permission problems become BackendError with a message that names the
server, database or role; bad values become ValidationError, never BackendError."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool

from rexecutor.backends.postgres import PostgresBackend
from rexecutor.backends.postgres.connection import _Target
from rexecutor.backends.postgres.errors import _describe_connect_failure
from rexecutor.errors import BackendError, ValidationError
from rexecutor.query import And, DataEquals

from ..backends._helpers import enqueue, new_job

pytestmark = pytest.mark.postgres

Admin = psycopg.AsyncConnection[Any]


async def _connect_error(url: str, **options: Any) -> BackendError:
    backend = PostgresBackend(url, **options)
    with pytest.raises(BackendError) as caught:
        await backend.connect()
    await backend.close()
    return caught.value


async def test_unreachable_server_names_host_and_port(postgres_url: str) -> None:
    url = make_conninfo(postgres_url, host="127.0.0.1", port=1)
    error = await _connect_error(url)
    assert "cannot reach the PostgreSQL server at 127.0.0.1:1" in str(error)
    assert "refused" in str(error).lower()


async def test_missing_database_is_named(postgres_url: str) -> None:
    name = f"rexecutor_missing_{secrets.token_hex(4)}"
    error = await _connect_error(make_conninfo(postgres_url, dbname=name))
    assert f'database "{name}" does not exist' in str(error)
    host = conninfo_to_dict(postgres_url).get("host", "localhost")
    assert str(host) in str(error)


async def test_unknown_role_is_named(postgres_url: str) -> None:
    # The server trusts every local connection (pg_hba.conf: trust), so a wrong password cannot
    # be provoked here; an unknown role is the credential failure we can produce.
    role = f"rexecutor_nobody_{secrets.token_hex(4)}"
    error = await _connect_error(make_conninfo(postgres_url, user=role))
    assert f'role "{role}" does not exist' in str(error)


def test_wrong_password_message() -> None:
    target = _Target("db.example.com", "5433", "app", "worker")
    failure = psycopg.OperationalError(
        'connection failed: connection to server at "10.0.0.1", port 5433 failed: FATAL:  '
        'password authentication failed for user "worker"'
    )
    message = _describe_connect_failure(failure, target)
    assert message.startswith('authentication failed for role "worker"')
    assert "db.example.com:5433" in message


def test_messages_never_contain_the_password() -> None:
    url = "postgresql://worker:s3cret-pw@db.example.com:5433/app"
    backend = PostgresBackend(url)
    assert "s3cret-pw" not in repr(backend)
    failure = psycopg.OperationalError("connection failed: Connection refused")
    assert "s3cret-pw" not in _describe_connect_failure(failure, backend._target)


async def test_migrate_alone_reports_connection_errors_too(postgres_url: str) -> None:
    url = make_conninfo(postgres_url, host="127.0.0.1", port=1)
    with pytest.raises(BackendError, match="cannot reach"):
        await PostgresBackend(url).migrate()


@pytest.fixture
async def weak_role(admin: Admin, postgres_url: str) -> AsyncIterator[str]:
    """A login role with no privileges in the test database; dropped afterwards."""
    role = f"rexecutor_weak_{secrets.token_hex(4)}"
    await admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        yield make_conninfo(postgres_url, user=role)
    finally:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role]
        )
        await admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        await admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


async def test_insufficient_privileges_are_reported(
    weak_role: str, postgres_url: str, admin: Admin, new_schema: Callable[[str], str]
) -> None:
    role = conninfo_to_dict(weak_role)["user"]
    locked = new_schema("locked")
    await PostgresBackend(postgres_url, schema=locked).migrate()

    # No USAGE on the schema at all.
    for migrate in (True, False):
        error = await _connect_error(weak_role, schema=locked, migrate=migrate)
        assert "insufficient privileges" in str(error)
        assert f'role "{role}"' in str(error)

    # May not create a schema of its own.
    error = await _connect_error(weak_role, schema=new_schema("mine"))
    assert "insufficient privileges" in str(error)

    # USAGE on the schema, but no rights on the tables.
    await admin.execute(
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
            sql.Identifier(locked), sql.Identifier(role)
        )
    )
    error = await _connect_error(weak_role, schema=locked, migrate=False)
    assert "insufficient privileges" in str(error)

    # Reading the version is allowed, writing jobs is not.
    await admin.execute(
        sql.SQL("GRANT SELECT ON {} TO {}").format(
            sql.Identifier(locked, "rexecutor_migrations"), sql.Identifier(role)
        )
    )
    async with PostgresBackend(weak_role, schema=locked, migrate=False) as backend:
        with pytest.raises(BackendError, match="insufficient privileges"):
            await backend.enqueue(new_job())
        with pytest.raises(BackendError, match="insufficient privileges"):
            await backend.claim_ready_jobs("ex", 1, "node")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("data", {"x": float("nan")}),
        ("data", {"x": float("inf")}),
        ("data", {"x": "nul\x00"}),
        ("metadata", ["\x00"]),
        ("executor", "nul\x00executor"),
        ("tags", ("ok", "nul\x00")),
        ("max_attempts", 2**40),
        ("data", {"x": object()}),
    ],
)
async def test_bad_values_raise_validation_errors(
    pg: PostgresBackend, field: str, value: Any
) -> None:
    fields: dict[str, Any] = {field: value}
    executor = fields.pop("executor", "ex")
    with pytest.raises(ValidationError) as caught:
        await pg.enqueue(new_job(executor, **fields))
    assert not isinstance(caught.value, BackendError)
    with pytest.raises(ValidationError):
        await pg.enqueue_many([new_job(), new_job(executor, **fields)])
    assert await pg.query(And(())) == []


async def test_bad_values_in_updates_and_queries_raise_validation_errors(
    pg: PostgresBackend,
) -> None:
    job = await pg.get_job(await enqueue(pg))
    job.data = {"x": float("nan")}
    with pytest.raises(ValidationError):
        await pg.update_job(job)
    job.data = {}
    job.tags = ["\x00"]
    with pytest.raises(ValidationError):
        await pg.update_job(job)
    with pytest.raises(ValidationError):
        await pg.query(DataEquals(float("nan")))


async def test_a_caller_pool_that_cannot_connect_is_diagnosed(postgres_url: str) -> None:
    url = make_conninfo(postgres_url, host="127.0.0.1", port=1)
    async with AsyncConnectionPool(url, min_size=0, max_size=1, timeout=1, open=False) as pool:
        with pytest.raises(
            BackendError, match=r"cannot reach the PostgreSQL server at 127\.0\.0\.1:1"
        ):
            await PostgresBackend.from_pool(pool).connect()


async def test_a_closed_caller_pool_is_reported(postgres_url: str) -> None:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        postgres_url, min_size=0, max_size=1, open=False
    )
    await pool.open()
    await pool.close()
    with pytest.raises(BackendError, match="closed"):
        await PostgresBackend.from_pool(pool).connect()
