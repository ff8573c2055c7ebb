"""Backend factory for the conformance suite: a fresh in-memory backend per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from rexecutor.backends import InMemoryBackend


@asynccontextmanager
async def make_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[InMemoryBackend]:
    async with InMemoryBackend() as backend:
        yield backend
