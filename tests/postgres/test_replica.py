"""Reads from a real streaming replica (``--read-url`` / ``read_backend``), actions on the primary.

The replica is ``scripts/replica``'s (see ``tests/support/replica.py``). To prove that reads
really go to it, its replay is paused: a job enqueued on the primary then is not seen through
the read URL until replay resumes, while an action on it still lands on the primary.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import psycopg
import pytest

from rexecutor import JobStatus
from rexecutor.backend import EnqueuableJob
from rexecutor.backends.postgres import PostgresBackend
from rexecutor.cli import main
from rexecutor.cli.connect import READ_ENV_VAR
from rexecutor.errors import RexecutorError
from rexecutor.web import dashboard_app
from tests.cli.seed import seed
from tests.support.postgres import pg_url, reset_tables
from tests.support.processes import ROOT
from tests.support.replica import caught_up

# The first test starts the session's replica: ~3 s on a small cluster, but pg_basebackup
# copies the whole cluster, which other sessions' large databases can make take minutes.
pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]


@pytest.fixture
def primary(postgres_url: str, replica_url: str) -> str:
    """The session's test database on the primary, emptied; the replica has caught up."""
    asyncio.run(reset_tables(postgres_url))
    url = pg_url(postgres_url)
    asyncio.run(caught_up(url, replica_url))
    return url


async def _enqueue(url: str) -> int:
    async with PostgresBackend(url, migrate=False) as backend:
        job = await backend.enqueue(EnqueuableJob("email", {"to": "a@example.com"}))
        return int(job.job_id)


async def _status(url: str, job_id: int) -> JobStatus:
    async with PostgresBackend(url, migrate=False) as backend:
        return (await backend.get_job(job_id)).status


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else err


def test_read_only_commands_read_the_replica_and_actions_go_to_the_primary(
    primary: str, replica_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def seeded() -> int:
        async with PostgresBackend(primary, migrate=False) as backend:
            return (await seed(backend)).complete

    complete = asyncio.run(seeded())
    asyncio.run(caught_up(primary, replica_url))
    both = ("--backend", primary, "--read-url", replica_url)
    # Every read-only command works on the standby, which would refuse any write.
    code, jobs = _cli(capsys, *both, "jobs", "list")
    assert code == 0 and complete in [job["id"] for job in jobs]
    for command in (["jobs", "show", str(complete)], ["stats"], ["nodes"], ["executors"]):
        code, _ = _cli(capsys, *both, *command)
        assert code == 0, command
    assert READ_ENV_VAR not in os.environ  # main() gave the environment back

    with psycopg.connect(replica_url, autocommit=True) as replica:
        replica.execute("SELECT pg_wal_replay_pause()")
        try:
            job_id = asyncio.run(_enqueue(primary))
            code, err = _cli(capsys, *both, "jobs", "show", str(job_id))
            assert code == 1 and f"job {job_id}" in err.lower()  # not on the replica yet
            code, shown = _cli(capsys, "--backend", primary, "jobs", "show", str(job_id))
            assert code == 0 and shown["id"] == job_id
            # An action with a read URL set still goes to the primary.
            code, _ = _cli(capsys, *both, "jobs", "cancel", str(job_id))
            assert code == 0
            assert asyncio.run(_status(primary, job_id)) is JobStatus.CANCELLED
        finally:
            replica.execute("SELECT pg_wal_replay_resume()")
    asyncio.run(caught_up(primary, replica_url))
    code, shown = _cli(capsys, *both, "jobs", "show", str(job_id))
    assert code == 0 and shown["status"] == "cancelled"


async def test_a_write_on_the_replica_fails(primary: str, replica_url: str) -> None:
    with pytest.raises(RexecutorError, match="read-only"):
        await _enqueue(replica_url)


async def test_dashboard_pages_read_the_replica_and_its_actions_reach_the_primary(
    primary: str, replica_url: str
) -> None:
    async with (
        PostgresBackend(primary, migrate=False) as writes,
        PostgresBackend(replica_url, migrate=False) as reads,
    ):
        app = dashboard_app(writes, read_backend=reads)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as web:
            # A job's page (read on the replica) carries the form token for the actions.
            shown_first = await _enqueue(primary)
            await caught_up(primary, replica_url)
            page = await web.get(f"/jobs/{shown_first}")
            assert page.status_code == 200
            match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
            assert match
            async with await psycopg.AsyncConnection.connect(
                replica_url, autocommit=True
            ) as replica:
                await replica.execute("SELECT pg_wal_replay_pause()")
                try:
                    job_id = await _enqueue(primary)
                    assert (await web.get(f"/api/jobs/{job_id}")).status_code == 404
                    cancelled = await web.post(
                        f"/jobs/{job_id}/cancel",
                        data={"csrf": match.group(1), "confirmed": "1", "next": "/jobs"},
                    )
                    assert cancelled.status_code == 303
                    assert (await writes.get_job(job_id)).status is JobStatus.CANCELLED
                finally:
                    await replica.execute("SELECT pg_wal_replay_resume()")
            await caught_up(primary, replica_url)
            shown = await web.get(f"/api/jobs/{job_id}")
            assert shown.status_code == 200 and shown.json()["status"] == "cancelled"


def test_read_only_dashboard_command_serves_the_replica_without_the_primary(
    primary: str, replica_url: str
) -> None:
    job_id = asyncio.run(_enqueue(primary))
    asyncio.run(caught_up(primary, replica_url))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    # The backend URL points at a port where nothing listens: only the replica can answer.
    command = [
        sys.executable,
        "-m",
        "rexecutor",
        "--backend",
        "postgresql://postgres@127.0.0.1:1/none",
    ]
    command += ["--read-url", replica_url, "--log-level", "WARNING", "dashboard", "--read-only"]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                shown = httpx.get(f"http://127.0.0.1:{port}/api/jobs/{job_id}", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "the dashboard did not start in 30 s"
                time.sleep(0.1)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert shown.status_code == 200 and shown.json()["id"] == job_id, output
