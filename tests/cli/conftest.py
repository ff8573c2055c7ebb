"""``seeded``: a backend URL (SQLite file or PostgreSQL test database) holding seeded jobs."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from rexecutor.backends import ENV_VAR, backend_from_url
from tests.cli.seed import Seeded, seed
from tests.support.postgres import admin_url, reset_tables


@dataclass
class SeededUrl:
    """A backend URL and the ids seeded into it."""

    url: str
    ids: Seeded


def postgres_url_for(conninfo: str) -> str:
    """The session's test database as a ``postgresql://`` URL."""
    base = admin_url().rsplit("/", 1)[0]
    return f"{base}/{conninfo_to_dict(conninfo)['dbname']}"


async def _seed(url: str) -> Seeded:
    backend = backend_from_url(url)
    async with backend:
        return await seed(backend)


@pytest.fixture(autouse=True)
def _no_backend_env() -> Iterator[None]:
    """No ``$REXECUTOR_BACKEND`` from outside; and fail if a command leaves one behind."""
    saved = os.environ.pop(ENV_VAR, None)
    try:
        yield
        assert ENV_VAR not in os.environ, "main() left $REXECUTOR_BACKEND set"
    finally:
        os.environ.pop(ENV_VAR, None)
        if saved is not None:
            os.environ[ENV_VAR] = saved


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> SeededUrl:
    """Seeded jobs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
    else:
        conninfo = request.getfixturevalue("postgres_url")
        asyncio.run(reset_tables(conninfo))
        url = postgres_url_for(conninfo)
    return SeededUrl(url, asyncio.run(_seed(url)))
