"""Backend factory for the conformance suite: a fresh SQLite file per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from rexecutor.backends.sqlite import SqliteBackend


@asynccontextmanager
async def make_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[SqliteBackend]:
    async with SqliteBackend(tmp_path / "jobs.db") as backend:
        yield backend
