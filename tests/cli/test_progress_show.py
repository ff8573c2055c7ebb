"""``rexecutor jobs show`` prints a running job's progress, as text and in ``--json``."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rexecutor.backend import EnqueuableJob, Lease
from rexecutor.backends import SqliteBackend
from rexecutor.cli import EXIT_OK, main
from rexecutor.job import JobProgress


def _seed(path: Path) -> tuple[int, int]:
    async def seed() -> tuple[int, int]:
        async with SqliteBackend(path) as backend:
            reporting = (await backend.enqueue(EnqueuableJob("import", {}))).job_id
            quiet = (await backend.enqueue(EnqueuableJob("import", {}))).job_id
            claimed = await backend.claim_ready_jobs("import", 2, "node-a")
            lease = Lease("node-a", claimed[0].attempt)
            at = datetime.now(UTC)
            progress = JobProgress(42.5, "page 17 of 40", at)
            assert await backend.record_progress(reporting, lease, progress)
            return int(reporting), int(quiet)

    return asyncio.run(seed())


def test_show_prints_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "jobs.db"
    reporting, quiet = _seed(path)
    url = f"sqlite:///{path}"
    assert main(["--backend", url, "jobs", "show", str(reporting)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "progress" in out and "42.5% · page 17 of 40" in out
    assert main(["--backend", url, "jobs", "show", str(reporting), "--json"]) == EXIT_OK
    shown = json.loads(capsys.readouterr().out)["progress"]
    assert shown["percent"] == 42.5 and shown["message"] == "page 17 of 40"
    assert shown["earlier_attempt"] is False and shown["updated_at"].endswith("+00:00")
    assert main(["--backend", url, "jobs", "show", str(quiet), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["progress"] is None
