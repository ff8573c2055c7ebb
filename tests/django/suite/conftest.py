"""The example Django project (examples/django_project), set up for the suite.

``REXECUTOR_DJANGO_DB`` picks the database: ``sqlite`` (Django in a SQLite file, the jobs in
a rexecutor SQLite file) or ``postgres`` (Django and the jobs in one throw-away PostgreSQL
database, made by ``tests.support.postgres``). A worker (``manage.py rexecutor_worker``) runs
in its own process for the whole session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

ROOT = Path(__file__).resolve().parents[3]
PROJECT = ROOT / "examples" / "django_project"
DATABASE = os.environ.get("REXECUTOR_DJANGO_DB", "sqlite")

sys.path.insert(0, str(PROJECT))


def pytest_report_header() -> str:
    import django

    return f"Django {django.__version__} on {DATABASE}"


@pytest.fixture(scope="session")
def project_env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Configure and set up Django for the chosen database; returns the environment a worker
    process needs to see the same databases."""
    env = {"DJANGO_SETTINGS_MODULE": "shop.settings", "DJANGO_DB": DATABASE}
    if DATABASE == "sqlite":
        where = tmp_path_factory.mktemp("django")
        env["DJANGO_SQLITE_PATH"] = str(where / "db.sqlite3")
        env["REXECUTOR_URL"] = f"sqlite:///{where / 'jobs.db'}"
    else:
        params = conninfo_to_dict(request.getfixturevalue("postgres_url"))
        env["DJANGO_PG_NAME"] = str(params["dbname"])
        env["DJANGO_PG_HOST"] = str(params.get("host", "127.0.0.1"))
        env["DJANGO_PG_PORT"] = str(params.get("port", "5432"))
        env["DJANGO_PG_USER"] = str(params.get("user", "postgres"))
        env["DJANGO_PG_PASSWORD"] = str(params.get("password", ""))
    os.environ.update(env)
    from django.core.management import call_command

    import django

    django.setup()
    call_command("migrate", verbosity=0)
    return env


@pytest.fixture(scope="session")
def worker(project_env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """``manage.py rexecutor_worker`` for the queues default and reports, in its own process.

    ``$REXECUTOR_TEST_IMPORT_MARKER`` names the file that ``not_tasks`` writes if it is ever
    imported (it must not be).
    """
    marker = Path(tempfile.mkdtemp(prefix="rexecutor-django-")) / "imported"
    os.environ["REXECUTOR_TEST_IMPORT_MARKER"] = str(marker)
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "rexecutor_worker",
            "--poll-interval",
            "0.5",
            "--import-module",
            "tests.django.suite.extra_tasks",
        ],
        cwd=PROJECT,
        env={**os.environ, **project_env, "PYTHONPATH": f"{ROOT}{os.pathsep}{PROJECT}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert "rexecutor worker" in first and "running" in first, first + process.stdout.read()
    lines: list[str] = [first]
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True)
    reader.start()
    yield process
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    reader.join(timeout=10)
    output = "".join(lines)
    assert process.returncode == 0, output
    assert "rexecutor worker stopped" in output, output
