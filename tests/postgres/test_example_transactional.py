"""docs/postgres.md's transactional enqueue example runs as written."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.postgres import pg_url, reset_tables

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
def test_transactional_example_enqueues_only_committed_jobs(postgres_url: str) -> None:
    asyncio.run(reset_tables(postgres_url))
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "postgres_transactional.py"),
            pg_url(postgres_url),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "rejected sign-up" in out.stdout
    assert "1 welcome job(s) enqueued" in out.stdout
