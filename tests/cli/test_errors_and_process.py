"""Exit codes and error sentences, and the command run as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rexecutor.backends import SqliteBackend
from rexecutor.cli import EXIT_NOT_FOUND, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, main
from tests.cli.seed import seed
from tests.support.processes import ROOT


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs"]) == EXIT_USAGE
    assert main(["jobs", "list", "--status", "finished"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "unknown status 'finished': use one of scheduled, executing" in err
    assert main(["jobs", "list", "--limit", "0"]) == EXIT_USAGE
    assert main(["jobs", "show", "abc"]) == EXIT_USAGE
    assert main(["prune", "--status", "complete", "--max-age", "soon"]) == EXIT_USAGE
    assert "cannot read the duration 'soon'" in capsys.readouterr().err
    assert main(["--help"]) == EXIT_OK
    assert "Exit codes" in capsys.readouterr().out


def test_configuration_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--backend", "mysql://x", "stats"]) == EXIT_USAGE
    assert "unknown backend scheme 'mysql'" in capsys.readouterr().err
    missing = tmp_path / "typo.db"
    assert main(["--backend", f"sqlite:///{missing}", "jobs", "list"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"no SQLite database at {missing}" in err and "rexecutor migrate" in err
    assert not missing.exists()
    assert main(["--backend", "sqlite:///x.db", "--log-level", "LOUD", "stats"]) == EXIT_USAGE


def test_an_unreachable_backend_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://postgres@127.0.0.1:1/nothing"
    assert main(["--backend", url, "jobs", "list"]) == EXIT_UNAVAILABLE
    err = capsys.readouterr().err
    assert err.startswith("rexecutor: error: cannot reach the PostgreSQL server at 127.0.0.1:1")
    assert "Traceback" not in err


def test_the_dashboard_refuses_a_public_interface(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "jobs.db"
    assert main(["--backend", f"sqlite:///{db}", "migrate"]) == EXIT_OK
    capsys.readouterr()
    assert main(["--backend", f"sqlite:///{db}", "dashboard", "--host", "0.0.0.0"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "refusing to serve the dashboard on 0.0.0.0" in err and "--allow-public" in err


def test_loopback_detection() -> None:
    from rexecutor.cli import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert is_loopback("127.5.5.5") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    assert not is_loopback("example.com") and not is_loopback("::")


def test_as_a_real_process_json_output_and_exit_codes(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"

    async def prepare() -> int:
        async with SqliteBackend(db) as backend:
            return (await seed(backend)).discarded

    discarded = asyncio.run(prepare())
    env = {**os.environ, "REXECUTOR_BACKEND": f"sqlite:///{db}", "PYTHONPATH": str(ROOT)}

    def rexecutor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rexecutor", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=env,
        )

    listed = rexecutor("jobs", "list", "--status", "discarded", "--json")
    assert listed.returncode == 0, listed.stderr
    assert discarded in [job["id"] for job in json.loads(listed.stdout)]
    missing = rexecutor("jobs", "cancel", "777")
    assert missing.returncode == EXIT_NOT_FOUND
    assert missing.stderr.strip() == "rexecutor: error: job 777 not found"
    table = rexecutor("stats")
    assert table.returncode == 0 and "email" in table.stdout
