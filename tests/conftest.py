"""Shared fixtures: ``backend`` runs a test once per backend (memory, sqlite, postgres)."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from rexecutor import _clock
from rexecutor.backend import Backend

pytest_plugins = ["tests.support.postgres", "tests.support.pgbouncer"]

BACKENDS = [
    "memory",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    # PostgreSQL through a real PgBouncer in transaction pooling mode (tests/support/pgbouncer.py).
    pytest.param("pgbouncer", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A fresh, connected backend of each kind; the suite in tests/backends runs on all."""
    factory = importlib.import_module(f"tests.support.{request.param}")
    async with factory.make_backend(request, tmp_path) as b:
        yield b


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    yield
    _clock.set_clock(None)
