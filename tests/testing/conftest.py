"""Backends for the testing-kit tests: those whose job times follow the fake clock."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rexecutor.backend import Backend


@pytest.fixture(params=["memory", "sqlite"])
async def clocked_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A fresh, connected memory or SQLite backend (both read the library's clock)."""
    factory = importlib.import_module(f"tests.support.{request.param}")
    async with factory.make_backend(request, tmp_path) as backend:
        yield backend
