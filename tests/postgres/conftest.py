"""Fixtures for the PostgreSQL-only tests: a backend on the session database, an
administrative connection to it, and throw-away schemas."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from rexecutor.backends.postgres import PostgresBackend
from tests.support.postgres import make_backend


@pytest.fixture
async def pg(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PostgresBackend]:
    """A connected backend on the public schema of the session database, tables emptied."""
    async with make_backend(request, tmp_path) as backend:
        yield backend


@pytest.fixture
async def admin(postgres_url: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    """An autocommit superuser connection to the session's test database."""
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
async def new_schema(
    admin: psycopg.AsyncConnection[tuple[object, ...]],
) -> AsyncIterator[Callable[[str], str]]:
    """Make up unique schema names (``prefix`` + random); drops every one of them afterwards."""
    made: list[str] = []

    def make(prefix: str = "rx") -> str:
        name = f"{prefix}_{secrets.token_hex(4)}"
        made.append(name)
        return name

    yield make
    for name in made:
        await admin.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
        )
