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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # These tests SIGKILL real worker processes: the pipes of a killed child are closed by the
    # garbage collector, which Python reports as a ResourceWarning. That is the scenario under
    # test, not a leak, so it is not an error here (it is everywhere else).
    for item in items:
        if "tests/acceptance/" in str(item.path):
            item.add_marker(pytest.mark.filterwarnings("ignore::ResourceWarning"))
            item.add_marker(
                pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
            )
