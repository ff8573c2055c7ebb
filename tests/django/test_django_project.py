"""The Django integration, tested with real Django 6 on the example project.

Django 6 needs Python 3.12 or newer, and the project's own virtualenv may be older. This test
makes ``.venv-django`` (once, and again whenever pyproject.toml changes) with a Python 3.12+
found on the machine, installs rexecutor there with its ``django`` and ``postgres`` extras,
and runs ``tests/django/suite`` in it, once on SQLite and once on PostgreSQL. Without a
Python 3.12+ it fails, saying what is missing: it is never skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-django"
PACKAGES = ["pytest>=8", "pytest-asyncio>=0.24", "pytest-timeout>=2.3"]


def _candidates() -> Iterator[str]:
    named = os.environ.get("REXECUTOR_DJANGO_PYTHON")
    if named:
        yield named
    for name in ("python3.14", "python3.13", "python3.12", "python3"):
        found = shutil.which(name)
        if found:
            yield found
    home = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    yield from sorted(glob.glob(f"{home}/versions/3.1[2-9]*/bin/python"), reverse=True)


def find_python() -> str:
    """A Python 3.12+ interpreter with venv, or fail saying how to provide one."""
    for candidate in _candidates():
        check = subprocess.run(
            [candidate, "-c", "import sys, venv; assert sys.version_info >= (3, 12)"],
            capture_output=True,
        )
        if check.returncode == 0:
            return candidate
    pytest.fail(
        "the Django tests need Python 3.12 or newer (Django 6 requires it), and none was "
        "found: not REXECUTOR_DJANGO_PYTHON, python3.12/3.13/3.14 on PATH, nor "
        "~/.pyenv/versions/3.12+. Install one (for example `pyenv install 3.12`) or point "
        "REXECUTOR_DJANGO_PYTHON at it.",
        pytrace=False,
    )


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    VENV.mkdir(exist_ok=True)
    with open(VENV / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building it right now
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def django_python() -> Path:
    """The interpreter of ``.venv-django``, built or refreshed as needed."""
    digest = hashlib.sha1((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    stamp = VENV / f".installed-{digest}"
    python = VENV / "bin" / "python"
    with _locked():
        if stamp.exists() and python.exists():
            return python
        base = find_python()
        if not python.exists():
            subprocess.run([base, "-m", "venv", str(VENV)], check=True, capture_output=True)
        install = subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-e",
                f"{ROOT}[django,postgres]",
                *PACKAGES,
            ],
            capture_output=True,
            text=True,
        )
        if install.returncode != 0:
            pytest.fail(
                f"installing Django 6 into {VENV} failed:\n{install.stdout}{install.stderr}",
                pytrace=False,
            )
        for old in VENV.glob(".installed-*"):
            old.unlink()
        stamp.touch()
    return python


@pytest.mark.timeout(1200)
@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_the_django_suite(database: str) -> None:
    python = django_python()
    env = {
        **os.environ,
        "REXECUTOR_DJANGO_SUITE": "1",
        "REXECUTOR_DJANGO_DB": database,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    out = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "tests/django/suite",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=--strict-markers",
            # The suite runs the worker as a child process; the child's pipes, closed by the
            # garbage collector after it is stopped, are not what this suite tests.
            "-W",
            "ignore::ResourceWarning",
            "-W",
            "ignore::pytest.PytestUnraisableExceptionWarning",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = out.stdout + out.stderr
    assert out.returncode == 0, f"the Django suite failed on {database}:\n{report}"
    summary = re.search(r"(\d+) passed", out.stdout)
    assert summary and int(summary[1]) >= 10, report
    assert "Django 6." in out.stdout, report
    print(f"{sys.executable}: {summary[0]} on {database}")
