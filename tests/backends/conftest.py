"""The conformance suite runs on every backend, PostgreSQL through PgBouncer included, and
moves time with a test clock, which every backend follows, instead of sleeping."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from rexecutor.backend import Backend
from rexecutor.testing import FakeClock
from tests.support.backends import WITH_PGBOUNCER, open_backend


@pytest.fixture(params=WITH_PGBOUNCER)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A fresh, connected backend of each kind, PostgreSQL through PgBouncer included."""
    async with open_backend(request, tmp_path) as b:
        yield b


@pytest.fixture
def clock(backend: Backend) -> Iterator[FakeClock]:
    """A test clock installed for the test, starting at the current time; a backend that does
    not declare ``follows_test_clock`` skips the test, saying so."""
    if not backend.capabilities.follows_test_clock:
        pytest.skip(f"{type(backend).__name__} lacks the capability 'follows_test_clock'")
    with FakeClock() as installed:
        yield installed
