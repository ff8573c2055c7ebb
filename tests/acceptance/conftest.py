"""``url``: a fresh backend URL for real worker processes, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.postgres import pg_url, reset_tables


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    conninfo = request.getfixturevalue("postgres_url")
    asyncio.run(reset_tables(conninfo))
    return pg_url(conninfo)


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> str:
    """A fresh PostgreSQL URL, for scenarios that only PostgreSQL has (server restarts)."""
    conninfo = request.getfixturevalue("postgres_url")
    asyncio.run(reset_tables(conninfo))
    return pg_url(conninfo)
