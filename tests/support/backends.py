"""The backends the shared ``backend`` fixture runs a test on, and how one is opened."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from rexecutor.backend import Backend

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
#: ``BACKENDS`` and PostgreSQL through a real PgBouncer in transaction pooling mode
#: (tests/support/pgbouncer.py): the conformance suite (tests/backends) and the dashboard's
#: tests (tests/web/test_dashboard.py) run on it too. Running everything on it would add
#: minutes for code paths these already cover.
WITH_PGBOUNCER = [*BACKENDS, pytest.param("pgbouncer", marks=pytest.mark.postgres)]
#: The conformance suite's backends: ``WITH_PGBOUNCER`` and PostgreSQL with the opt-in
#: partitioned layout (tests/support/postgres_partitioned.py).
CONFORMANCE = [
    *WITH_PGBOUNCER,
    pytest.param("postgres_partitioned", marks=pytest.mark.postgres),
]


@asynccontextmanager
async def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """The connected backend that ``request.param`` names (a module of tests/support)."""
    factory = importlib.import_module(f"tests.support.{request.param}")
    async with factory.make_backend(request, tmp_path) as b:
        yield b
