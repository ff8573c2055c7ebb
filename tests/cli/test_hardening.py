"""The command line against hostile input (issue 11): huge ids, masked passwords, read-only
commands that never create tables, strict ``--json`` for hostile stored values, and the
dashboard's refusals (empty token, public bind without a token)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from rexecutor.backend import EnqueuableJob
from rexecutor.backends import SqliteBackend
from rexecutor.cli import EXIT_NOT_FOUND, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, main
from tests.support.postgres import admin_url
from tests.support.processes import ROOT

HUGE = "999999999999999999999999"


def strict_json(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``rexecutor ARGS`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "rexecutor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    db = tmp_path / "jobs.db"

    async def make() -> None:
        async with SqliteBackend(db) as backend:
            await backend.enqueue(EnqueuableJob("email", {"to": "a@example.com"}))

    asyncio.run(make())
    return db


def test_a_huge_job_id_is_not_found_not_a_traceback(sqlite_db: Path, tmp_path: Path) -> None:
    env = {"REXECUTOR_BACKEND": f"sqlite:///{sqlite_db}"}
    for command in (["jobs", "show", HUGE], ["jobs", "cancel", HUGE], ["jobs", "rerun", HUGE]):
        done = run(*command, cwd=tmp_path, env=env)
        assert done.returncode == EXIT_NOT_FOUND, done.stderr
        assert done.stderr.strip() == f"rexecutor: error: job {HUGE} not found"
    shown = run("jobs", "show", HUGE, "--json", cwd=tmp_path, env=env)
    assert shown.returncode == EXIT_NOT_FOUND and "Traceback" not in shown.stderr


# -- passwords -------------------------------------------------------------------------------


def test_passwords_never_appear_in_errors(capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        ("postgresql://postgres:hunter2@127.0.0.1:1/nothing", EXIT_UNAVAILABLE),
        ("postgres:hunter2@db.example.com/app", EXIT_USAGE),  # no scheme
        ("mysql://app:hunter2@db.example.com/app", EXIT_USAGE),
        ("postgresql://app:hunter2@db.example.com/app?bogus=1", EXIT_USAGE),
        ("postgresql://app@127.0.0.1:1/app?password=hunter2", EXIT_UNAVAILABLE),
        ("host=127.0.0.1 port=1 password=hunter2 dbname=x", EXIT_USAGE),
    ]
    for url, code in cases:
        assert main(["--backend", url, "jobs", "list"]) == code, url
        err = capsys.readouterr().err
        assert err.startswith("rexecutor: error:") and "hunter2" not in err, err
    assert main(["--backend", "mysql://app:hunter2@db/app", "migrate"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "mysql://app:***@db/app" in err and "hunter2" not in err


@pytest.mark.postgres
def test_migrate_prints_the_url_with_its_password_masked(postgres_url: str, tmp_path: Path) -> None:
    params = psycopg.conninfo.conninfo_to_dict(postgres_url)
    # The test server trusts local connections, so any password is accepted: enough to see
    # that it is not printed.
    url = f"postgresql://postgres:hunter2@{params.get('host', '127.0.0.1')}:5432/{params['dbname']}"
    done = run("--backend", url, "migrate", cwd=tmp_path)
    assert done.returncode == EXIT_OK, done.stderr
    assert "hunter2" not in done.stdout + done.stderr
    assert f"postgresql://postgres:***@{params.get('host', '127.0.0.1')}" in done.stdout


# -- read-only commands never create tables -------------------------------------------------------


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A PostgreSQL database without rexecutor's tables: the "wrong database"."""
    name = f"rexecutor_empty_{os.getpid()}_{os.urandom(3).hex()}"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = admin_url().rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return [str(row[0]) for row in rows]


@pytest.mark.postgres
def test_management_commands_on_the_wrong_postgres_database_create_nothing(
    empty_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (
        ["jobs", "list"],
        ["jobs", "show", "1"],
        ["jobs", "list", "--json"],
        ["stats"],
        ["nodes"],
        ["jobs", "cancel", "1"],
        ["jobs", "retry"],
        ["prune", "--status", "complete", "--max-age", "1d"],
    ):
        assert main(["--backend", empty_database, *command]) == EXIT_USAGE, command
        err = capsys.readouterr().err
        name = empty_database.rsplit("/", 1)[1]
        assert name in err and "rexecutor migrate" in err and "Traceback" not in err, err
    assert _tables(empty_database) == []
    assert main(["--backend", empty_database, "migrate"]) == EXIT_OK
    assert main(["--backend", empty_database, "jobs", "list"]) == EXIT_OK
    assert "rexecutor_jobs" in _tables(empty_database)


def test_management_commands_on_a_sqlite_file_without_the_schema_change_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    before = other.read_bytes()
    for command in (["jobs", "list"], ["stats"], ["nodes"], ["jobs", "show", "1"]):
        assert main(["--backend", f"sqlite:///{other}", *command]) == EXIT_USAGE, command
        err = capsys.readouterr().err
        assert str(other) in err and "rexecutor migrate" in err, err
    assert other.read_bytes() == before
    missing = tmp_path / "missing.db"
    assert main(["--backend", f"sqlite:///{missing}", "stats"]) == EXIT_USAGE
    assert not missing.exists()


# -- strict JSON for hostile stored values -----------------------------------------------------


def test_json_output_is_strict_for_hostile_stored_values(sqlite_db: Path, tmp_path: Path) -> None:
    conn = sqlite3.connect(sqlite_db)
    conn.execute(
        "UPDATE jobs SET data = ?, metadata = ? WHERE id = 1",
        ('{"x": NaN, "y": -Infinity, "s": "\\udc80", "u": "\u202e\u2028"}', '{"big": 1e400}'),
    )
    conn.commit()
    conn.close()
    env = {"REXECUTOR_BACKEND": f"sqlite:///{sqlite_db}"}
    shown = run("jobs", "show", "1", "--json", cwd=tmp_path, env=env)
    assert shown.returncode == EXIT_OK, shown.stderr
    job = strict_json(shown.stdout)
    # Not JSON (NaN is not a JSON value), so the backend hands the stored text over as it is.
    assert job["data"] == '{"x": NaN, "y": -Infinity, "s": "\\udc80", "u": "\u202e\u2028"}'
    assert job["metadata"] == {"big": "Infinity"}
    listed = run("jobs", "list", "--json", cwd=tmp_path, env=env)
    assert listed.returncode == EXIT_OK, listed.stderr
    assert "NaN" in strict_json(listed.stdout)[0]["data"]
    table = run("jobs", "show", "1", cwd=tmp_path, env=env)
    assert table.returncode == EXIT_OK, table.stderr
    assert "NaN" in table.stdout and "Traceback" not in table.stderr


# -- the dashboard's refusals ------------------------------------------------------------------


def test_the_dashboard_refuses_an_empty_token_and_a_public_bind_without_one(
    sqlite_db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REXECUTOR_DASHBOARD_TOKEN", raising=False)
    url = f"sqlite:///{sqlite_db}"
    assert main(["--backend", url, "dashboard", "--token", ""]) == EXIT_USAGE
    assert "--token is empty" in capsys.readouterr().err
    assert main(["--backend", url, "dashboard", "--token", "  "]) == EXIT_USAGE
    capsys.readouterr()
    for extra in (["--host", "0.0.0.0", "--allow-public"], ["--allow-public"]):
        assert main(["--backend", url, "dashboard", *extra]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert "without an access token" in err and "--token" in err, err
    assert main(["--backend", url, "dashboard", "--allowed-host", "https://x/"]) == EXIT_USAGE
    assert "not a host name" in capsys.readouterr().err


def test_log_lines_have_passwords_masked(tmp_path: Path) -> None:
    script = (
        "import logging, sys\n"
        "from rexecutor.cli import main\n"
        "code = main(['--backend', 'memory://', '--log-level', 'INFO', 'stats'])\n"
        "logging.getLogger('rexecutor').warning('cannot use %s', 'postgresql://a:hunter2@db/x')\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert "cannot use postgresql://a:***@db/x" in done.stderr and "hunter2" not in done.stderr


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://user:secret@host/db", "postgresql://user:***@host/db"),
        ("postgres://u:p@ss:w@rd@host:5432/db", "postgres://u:***@host:5432/db"),
        ("postgresql://:secret@host/db", "postgresql://:***@host/db"),
        (
            "postgresql://u@h/db?sslmode=require&password=secret",
            "postgresql://u@h/db?sslmode=require&password=***",
        ),
        (
            "host=db user=app password=secret dbname=jobs",
            "host=db user=app password=*** dbname=jobs",
        ),
        ("host=db password='se cret' dbname=jobs", "host=db password=*** dbname=jobs"),
        ("user:secret@host/db (no scheme)", "user:***@host/db (no scheme)"),
        ("postgresql://u@host:5432/db", "postgresql://u@host:5432/db"),
        ("sqlite:///var/lib/jobs.db", "sqlite:///var/lib/jobs.db"),
        ("memory://", "memory://"),
    ],
)
def test_mask_url(text: str, masked: str) -> None:
    from rexecutor._redact import mask_url

    assert mask_url(text) == masked
