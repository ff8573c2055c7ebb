"""``rexecutor executors [list]|pause|resume|scale``: in-process on SQLite and PostgreSQL
(state checked through ``control.control``), and as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rexecutor import ExecutorControl, RateLimit, control
from rexecutor.backends import SqliteBackend, backend_from_url
from rexecutor.cli import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, main
from rexecutor.cli.executors import format_period
from rexecutor.limits import ClaimLimits
from tests.cli.conftest import SeededUrl
from tests.cli.seed import seed
from tests.support.processes import ROOT

# A day-long window: the start counted below stays in it however slow the machine is.
REPORT_LIMITS = ClaimLimits(
    global_max=4, partition_max=2, rate=RateLimit(allowed=100, period=timedelta(days=1))
)
TENANT_LIMITS = ClaimLimits(rate=RateLimit(5, timedelta(seconds=90), per_partition=True))


def run(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--backend", url, *args])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = run(url, capsys, *args, "--json")
    assert code == EXIT_OK, err
    return json.loads(out)


def state(url: str, name: str) -> ExecutorControl:
    async def read() -> ExecutorControl:
        async with backend_from_url(url) as backend:
            return await control.control(backend, name)

    return asyncio.run(read())


def declare_limits_and_start_a_report(url: str) -> None:
    """What a starting node stores for two limited executors, and one report job started
    under its rate limit (so the headroom is one less than allowed)."""

    async def go() -> None:
        async with backend_from_url(url) as backend:
            await backend.declare_limits("report", REPORT_LIMITS)
            await backend.declare_limits("tenant", TENANT_LIMITS)
            claimed = await backend.claim_ready_jobs("report", 1, "node-a", limits=REPORT_LIMITS)
            assert len(claimed) == 1

    asyncio.run(go())


def test_list_shows_state_limits_counts_and_headroom(
    seeded: SeededUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    declare_limits_and_start_a_report(seeded.url)
    assert run(seeded.url, capsys, "executors", "pause", "email")[0] == EXIT_OK
    assert run(seeded.url, capsys, "executors", "scale", "email", "5")[0] == EXIT_OK
    rows = {row["name"]: row for row in run_json(seeded.url, capsys, "executors")}
    assert list(rows) == ["email", "report", "tenant"]
    assert rows["email"] == {
        "name": "email",
        "paused": True,
        "max_concurrency": 5,
        "scaled": True,
        "global_max_concurrency": None,
        "partition_max_concurrency": None,
        "rate_limit": None,
        "rate_headroom": None,
        "started_in_window": 0,
        "scheduled": 2,  # scheduled and retryable
        "executing": 1,
        "failed": 2,
    }
    report = rows["report"]
    assert report["paused"] is False and report["scaled"] is False
    assert report["max_concurrency"] is None  # the class's own: not known without its code
    assert (report["global_max_concurrency"], report["partition_max_concurrency"]) == (4, 2)
    assert report["rate_limit"] == {
        "allowed": 100,
        "period_seconds": 86400.0,
        "per_partition": False,
    }
    assert (report["started_in_window"], report["rate_headroom"]) == (1, 99)
    assert (report["scheduled"], report["executing"], report["failed"]) == (0, 1, 0)
    assert rows["tenant"]["rate_limit"]["per_partition"] is True
    assert rows["tenant"]["rate_headroom"] == 5
    assert run_json(seeded.url, capsys, "executors", "list") == list(rows.values())

    code, table, _ = run(seeded.url, capsys, "executors", "list")
    assert code == EXIT_OK
    assert "STATE" in table and "PER NODE" in table and "HEADROOM" in table
    lines = {line.split()[0]: line.split() for line in table.splitlines() if line.strip()}
    assert lines["email"][1:4] == ["paused", "5", "(scaled)"]
    assert lines["email"][-3:] == ["2", "1", "2"]
    assert lines["report"][1:5] == ["active", "default", "4", "2"]
    assert "100 / 1d" in table and "99 left" in table
    assert "5 / 1m30s per partition" in table and "up to 5 per partition" in table
    assert "the executor's own max_concurrency" in table  # what "default" means


def test_an_empty_backend_lists_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert run(url, capsys, "migrate")[0] == EXIT_OK
    assert run_json(url, capsys, "executors") == []
    code, out, _ = run(url, capsys, "executors")
    assert code == EXIT_OK and "no executor is known to the backend yet" in out


def test_pause_and_resume_change_the_stored_state(
    seeded: SeededUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(seeded.url, capsys, "executors", "pause", "email")
    assert code == EXIT_OK and out.startswith("paused email: no node claims its jobs now")
    assert state(seeded.url, "email").paused
    code, out, _ = run(seeded.url, capsys, "executors", "pause", "email")
    assert code == EXIT_OK and "email was already paused: nothing changed" in out
    report = run_json(seeded.url, capsys, "executors", "resume", "email")
    assert (report["action"], report["changed"], report["known"]) == ("resume", True, True)
    assert report["before"]["paused"] is True and report["after"]["paused"] is False
    assert not state(seeded.url, "email").paused
    code, out, _ = run(seeded.url, capsys, "executors", "resume", "email")
    assert code == EXIT_OK and "email was not paused: nothing changed" in out
    assert "no node has run" not in out


def test_scale_sets_the_per_node_limit_and_default_clears_it(
    seeded: SeededUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(seeded.url, capsys, "executors", "scale", "email", "20")
    assert code == EXIT_OK
    assert "scaled email to 20 per node (was the class default)" in out
    scaled = state(seeded.url, "email")
    assert (scaled.max_concurrency, scaled.scaled, scaled.paused) == (20, True, False)
    code, out, _ = run(seeded.url, capsys, "executors", "scale", "email", "20")
    assert code == EXIT_OK and "email is already at 20 per node: nothing changed" in out
    report = run_json(seeded.url, capsys, "executors", "scale", "email", "default")
    assert report["changed"] is True
    assert report["before"]["max_concurrency"] == 20 and report["after"]["scaled"] is False
    back = state(seeded.url, "email")
    assert (back.max_concurrency, back.scaled) == (None, False)
    unchanged = run_json(seeded.url, capsys, "executors", "scale", "email", "DEFAULT")
    assert unchanged["changed"] is False


def test_a_name_no_node_knows_is_stored_with_a_note(
    seeded: SeededUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(seeded.url, capsys, "executors", "pause", "billing")
    assert code == EXIT_OK and err == ""
    assert "paused billing" in out and "stored; no node has run billing yet" in out
    assert state(seeded.url, "billing").paused
    report = run_json(seeded.url, capsys, "executors", "scale", "billing", "3")
    assert report["known"] is True  # its state is stored now
    assert state(seeded.url, "billing").max_concurrency == 3
    fresh = run_json(seeded.url, capsys, "executors", "resume", "invoices")
    assert fresh["known"] is False and fresh["after"]["paused"] is False
    names = [row["name"] for row in run_json(seeded.url, capsys, "executors")]
    assert names == ["billing", "email", "invoices", "report"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("scale", "email", "0"), "got 0; to stop claiming altogether, use `rexecutor executors"),
        (("scale", "email", "-2"), "expected a whole number >= 1 or 'default', got -2"),
        (("scale", "email", "1.5"), "expected a whole number >= 1 or 'default'"),
        (("scale", "email", "many"), "got 'many'"),
        (("scale", "email"), "the following arguments are required: N"),
        (("pause", ""), "an executor name must be a non-empty str"),
        (("pause", "a\x00b"), "no NUL"),
        (("resume",), "the following arguments are required: name"),
        (("stop", "email"), "invalid choice: 'stop'"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(
    seeded: SeededUrl, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    before = state(seeded.url, "email")
    code, out, err = run(seeded.url, capsys, "executors", *args)
    assert code == EXIT_USAGE and out == ""
    assert message in err and "Traceback" not in err
    assert state(seeded.url, "email") == before


def test_json_may_come_before_or_after_the_action(
    seeded: SeededUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(seeded.url, capsys, "executors", "--json", "pause", "email")
    assert code == EXIT_OK and json.loads(out)["after"]["paused"] is True
    code, out, _ = run(seeded.url, capsys, "executors", "--json", "list")
    assert code == EXIT_OK and json.loads(out)[0]["name"] == "email"
    code, out, _ = run(seeded.url, capsys, "executors", "resume", "email")
    assert code == EXIT_OK and out.startswith("resumed email")  # not JSON by default


def test_an_unreachable_backend_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://postgres@127.0.0.1:1/nothing"
    for args in (("executors",), ("executors", "pause", "email")):
        code, out, err = run(url, capsys, *args)
        assert code == EXIT_UNAVAILABLE and out == ""
        assert err.startswith("rexecutor: error: cannot reach the PostgreSQL server")


def test_periods_are_shown_in_duration_units() -> None:
    assert format_period(timedelta(minutes=1)) == "1m"
    assert format_period(timedelta(minutes=90)) == "1h30m"
    assert format_period(timedelta(days=8)) == "1w1d"
    assert format_period(timedelta(seconds=1.5)) == "1.5s"
    assert format_period(timedelta(milliseconds=250)) == "250ms"
    assert format_period(timedelta(hours=1, seconds=5)) == "1h5s"


def test_as_a_real_process(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"

    async def prepare() -> None:
        async with SqliteBackend(db) as backend:
            await seed(backend)

    asyncio.run(prepare())
    url = f"sqlite:///{db}"
    env = {**os.environ, "REXECUTOR_BACKEND": url, "PYTHONPATH": str(ROOT)}

    def rexecutor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rexecutor", "executors", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=env,
            check=False,
        )

    paused = rexecutor("pause", "email")
    assert paused.returncode == EXIT_OK, paused.stderr
    assert "paused email" in paused.stdout
    scaled = rexecutor("scale", "email", "7", "--json")
    assert scaled.returncode == EXIT_OK, scaled.stderr
    assert json.loads(scaled.stdout)["after"]["max_concurrency"] == 7
    now = state(url, "email")
    assert (now.paused, now.max_concurrency) == (True, 7)
    listed = rexecutor("--json")
    assert listed.returncode == EXIT_OK
    assert [row["name"] for row in json.loads(listed.stdout)] == ["email", "report"]
    table = rexecutor()
    assert table.returncode == EXIT_OK and "paused" in table.stdout and "7 (scaled)" in table.stdout
    unknown = rexecutor("pause", "ghost")
    assert unknown.returncode == EXIT_OK and "no node has run ghost yet" in unknown.stdout
    bad = rexecutor("scale", "email", "0")
    assert bad.returncode == EXIT_USAGE and "expected a whole number >= 1" in bad.stderr
    assert state(url, "email").max_concurrency == 7
