"""Shared fixtures: ``backend`` runs a test once per backend (memory, sqlite, postgres)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from rexecutor import _clock
from rexecutor.backend import Backend
from tests.support.backends import BACKENDS, open_backend

pytest_plugins = ["tests.support.postgres", "tests.support.pgbouncer", "tests.support.replica"]


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A fresh, connected backend of each kind; the suite in tests/backends runs on all."""
    async with open_backend(request, tmp_path) as b:
        yield b


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    yield
    _clock.set_clock(None)
