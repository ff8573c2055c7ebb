"""The ``backend`` fixture's "postgres_partitioned" kind: PostgreSQL with the partitioned
layout, in a schema of its own in the session's test database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from rexecutor.backends.postgres import PostgresBackend
from tests.support.postgres import reset_tables

SCHEMA = "partitioned"

#: The test databases whose partitioned schema this process has created already.
_converted: set[str] = set()


@asynccontextmanager
async def make_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[PostgresBackend]:
    """A connected backend on the partitioned schema, with empty tables."""
    url = request.getfixturevalue("postgres_url")
    first = url not in _converted
    async with PostgresBackend(url, schema=SCHEMA, migrate=first, layout="partitioned") as backend:
        _converted.add(url)
        await reset_tables(backend)
        yield backend
