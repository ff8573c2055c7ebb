"""A real PgBouncer in transaction pooling mode, in front of the test PostgreSQL server.

``pgbouncer`` (session-scoped) starts Debian's ``/usr/sbin/pgbouncer`` (``scripts/test``
installs it where it is missing) on a free loopback port, with ``pool_mode = transaction``
and trust authentication, forwarding every database name to the server of
``REXECUTOR_TEST_PG_URL``; it runs from a temporary directory as the ``postgres`` user when
the suite runs as root (PgBouncer refuses to run as root) and is stopped when the session
ends. ``make_backend`` is the conformance suite's factory for the ``pgbouncer`` parameter: a
backend whose pool goes through PgBouncer (``transaction_pooling=True``) and whose listeners
connect to the server directly (``listen_url``).

Like the other PostgreSQL tests, these are never skipped: without the binary they fail, saying
how to install it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from rexecutor.backends.postgres import PostgresBackend
from tests.support.postgres import admin_url, reset_tables

BINARY = "/usr/sbin/pgbouncer"
_START_TIMEOUT = 10.0


@dataclass(frozen=True)
class Bouncer:
    """A running PgBouncer: where it listens, and the log it writes."""

    host: str
    port: int
    log: Path

    def url(self, direct: str) -> str:
        """The database of ``direct`` (a conninfo of the test server) through PgBouncer, as
        a ``postgresql://`` URL (what the command line takes)."""
        params = conninfo_to_dict(direct)
        user = params.get("user") or "postgres"
        return f"postgresql://{user}@{self.host}:{self.port}/{params['dbname']}"

    def log_text(self) -> str:
        """What PgBouncer has logged so far (for a failing test's message)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(server: dict[str, str], port: int, directory: Path) -> str:
    host = server.get("host") or "127.0.0.1"
    server_port = server.get("port") or "5432"
    # A pool bigger than any test's connections: a test that holds a transaction open
    # (transactional enqueue) must not starve the others of server connections.
    return f"""\
[databases]
* = host={host} port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory / "userlist.txt"}
pool_mode = transaction
default_pool_size = 40
max_client_conn = 400
logfile = {directory / "pgbouncer.log"}
pidfile = {directory / "pgbouncer.pid"}
"""


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    process.kill()
    process.wait()
    text = log.read_text(errors="replace") if log.exists() else ""
    pytest.fail(f"pgbouncer did not start listening on port {port}: {text[-2000:]}")


@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[Bouncer]:
    """A PgBouncer in transaction pooling mode for the test session."""
    if not os.access(BINARY, os.X_OK):
        pytest.fail(
            f"the PgBouncer tests need {BINARY}: install Debian's package "
            "(`apt-get install -y pgbouncer`; scripts/test does so); these tests are never "
            "skipped",
            pytrace=False,
        )
    server = conninfo_to_dict(admin_url())
    user = str(server.get("user") or "postgres")
    directory = Path(tempfile.mkdtemp(prefix="rexecutor-pgbouncer-"))
    command = [BINARY]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root: it drops to postgres, which must read the files.
        account = pwd.getpwnam("postgres")
        os.chown(directory, account.pw_uid, account.pw_gid)
        command += ["-u", "postgres"]
    port = _free_port()
    (directory / "userlist.txt").write_text(f'"{user}" ""\n')
    config = directory / "pgbouncer.ini"
    config.write_text(_config({k: str(v) for k, v in server.items()}, port, directory))
    log = directory / "pgbouncer.log"
    process = subprocess.Popen(
        [*command, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_listening(process, port, log)
        yield Bouncer("127.0.0.1", port, log)
        if process.poll() is not None:
            pytest.fail(
                f"pgbouncer exited during the session (status {process.returncode}): "
                f"{log.read_text(errors='replace')[-3000:]}"
            )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


@asynccontextmanager
async def make_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[PostgresBackend]:
    """A connected backend on the session's database, its pool through PgBouncer and its
    listeners direct, with empty tables."""
    direct = request.getfixturevalue("postgres_url")
    bouncer: Bouncer = request.getfixturevalue("pgbouncer")
    # Emptied on a direct connection: the reset sets a lock timeout, a session setting.
    await reset_tables(direct)
    backend = PostgresBackend(
        bouncer.url(direct), migrate=False, transaction_pooling=True, listen_url=direct
    )
    async with backend:
        yield backend
