"""``rexecutor cron list``: the node's schedules, read from its code, with the last tick each
enqueued read from the backend; in-process on SQLite and PostgreSQL, and as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rexecutor import Executor, Job
from rexecutor._cron_jobs import enqueue_tick
from rexecutor.backends import SqliteBackend, backend_from_url
from rexecutor.cli import EXIT_OK, EXIT_USAGE, main
from rexecutor.cron import CronSchedule
from tests.cli.conftest import SeededUrl

ROOT = Path(__file__).resolve().parents[2]

APP = textwrap.dedent(
    """
    from rexecutor import Executor, Job, Rexecutor


    class Report(Executor[str, None]):
        name = "report"

        async def execute(self, job: Job[str, None]) -> None:
            return None


    def make(backend):
        return (
            Rexecutor(backend)
            .with_cron_executor(
                Report, "0 * * * *", data="hourly", catch_up="all", catch_up_limit=24
            )
            .with_cron_executor(
                Report, "30 9 * * MON-FRI", data="weekdays", timezone="Europe/London",
                catch_up="latest",
            )
        )


    def bare(backend):
        return Rexecutor(backend)
    """
)


class Report(Executor[str, None]):
    """The app's executor, as far as the tags of its tick jobs go (they name it by name)."""

    name = "report"

    async def execute(self, job: Job[str, None]) -> None:
        return None


HOURLY = CronSchedule.parse("0 * * * *")


def an_hour_ago() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def enqueue_ticks(url: str, *ticks: datetime) -> None:
    async def go() -> None:
        async with backend_from_url(url) as backend:
            for tick in ticks:
                await enqueue_tick(Report, HOURLY, "hourly", None, backend, tick)

    asyncio.run(go())


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The module name of a node's code in the working directory (unique: imports are cached)."""
    name = f"cron_app_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / f"{name}.py").write_text(APP)
    monkeypatch.chdir(folder)
    yield name
    sys.modules.pop(name, None)


def test_lists_each_schedule_with_its_policy_and_ticks(
    seeded: SeededUrl, app: str, capsys: pytest.CaptureFixture[str]
) -> None:
    last = an_hour_ago()
    enqueue_ticks(seeded.url, last - timedelta(hours=2), last)
    code = main(["--backend", seeded.url, "cron", "list", f"{app}:make", "--json"])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    hourly, weekdays = json.loads(out)
    now = datetime.now(UTC)
    assert {k: v for k, v in hourly.items() if k != "next_tick"} == {
        "executor": "report",
        "expression": "0 * * * *",
        "timezone": "UTC",
        "data": "hourly",
        "catch_up": "all",
        "catch_up_limit": 24,
        "last_enqueued_tick": last.isoformat(),
    }
    upcoming = datetime.fromisoformat(hourly["next_tick"])
    assert upcoming > now - timedelta(minutes=1) and upcoming.minute == 0
    assert weekdays["timezone"] == "Europe/London"
    assert weekdays["catch_up"] == "latest"
    assert weekdays["last_enqueued_tick"] is None  # its jobs are told apart by their tag
    assert datetime.fromisoformat(weekdays["next_tick"]).weekday() < 5

    code = main(["--backend", seeded.url, "cron", "list", f"{app}:make"])
    table, err = capsys.readouterr()
    assert code == EXIT_OK, err
    assert "EXECUTOR" in table and "LAST ENQUEUED" in table
    assert "30 9 * * MON-FRI" in table and "Europe/London" in table
    assert "all (at most 24)" in table and "latest" in table
    assert f"{last.strftime('%Y-%m-%d %H:%M:%S')}Z" in table
    assert "none on record" in table


def test_a_node_without_schedules_says_so(
    seeded: SeededUrl, app: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--backend", seeded.url, "cron", "list", f"{app}:bare"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"{app}:bare registers no cron schedule"
    assert main(["--backend", seeded.url, "cron", "list", f"{app}:bare", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == []


def test_as_a_real_process(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    url = f"sqlite:///{db}"

    async def prepare() -> None:
        async with SqliteBackend(db):
            pass

    asyncio.run(prepare())
    last = an_hour_ago()
    enqueue_ticks(url, last)
    (tmp_path / "cronapp.py").write_text(APP)
    env = {**os.environ, "REXECUTOR_BACKEND": url, "PYTHONPATH": str(ROOT)}

    def rexecutor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rexecutor", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=env,
            check=False,
        )

    listed = rexecutor("cron", "list", "cronapp:make", "--json")
    assert listed.returncode == EXIT_OK, listed.stderr
    assert [row["last_enqueued_tick"] for row in json.loads(listed.stdout)] == [
        last.isoformat(),
        None,
    ]
    table = rexecutor("cron", "list", "cronapp:make")
    assert table.returncode == EXIT_OK and "0 * * * *" in table.stdout
    wrong = rexecutor("cron", "list", "cronapp:nothing")
    assert wrong.returncode == EXIT_USAGE
    assert "has no attribute 'nothing'" in wrong.stderr
    usage = rexecutor("cron", "list")
    assert usage.returncode == EXIT_USAGE
    missing = rexecutor("--backend", f"sqlite:///{tmp_path / 'other.db'}", "cron", "list", "x:y")
    assert missing.returncode == EXIT_USAGE and "no SQLite database" in missing.stderr
