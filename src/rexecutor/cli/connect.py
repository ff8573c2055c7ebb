"""Opening the configured backend for the management commands, without touching its schema.

Only ``rexecutor migrate`` (and a worker) creates or upgrades a schema: the commands here
connect with ``migrate=False``, so pointing one at the wrong database is an error that names
the database and says to run ``rexecutor migrate``, never new empty tables there.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rexecutor._redact import mask_url
from rexecutor.backend import Backend
from rexecutor.backends import DEFAULT_URL, ENV_VAR, backend_from_url
from rexecutor.cli.errors import CliError
from rexecutor.errors import BackendError

if TYPE_CHECKING:
    from rexecutor.cli.output import Output

__all__ = ["Handler", "connect", "existing_backend", "url", "with_backend"]

#: A management command: given the connected backend, its arguments and the output, the exit code.
Handler = Callable[[Backend, argparse.Namespace, "Output"], Awaitable[int]]


def url() -> str:
    """The configured backend URL (``--backend`` is copied into the environment first)."""
    return os.environ.get(ENV_VAR) or DEFAULT_URL


def existing_backend() -> Backend:
    """The configured backend, set not to create or upgrade its schema.

    A SQLite file that does not exist yet is refused (a typo in the path would otherwise
    create an empty database and show nothing); :func:`connect` refuses a database without
    the schema.
    """
    backend = backend_from_url()
    from rexecutor.backends import InMemoryBackend

    if isinstance(backend, InMemoryBackend):
        return backend
    # Imported here: a command that never opens SQLite does not load its driver module.
    from rexecutor.backends.sqlite import SqliteBackend

    if isinstance(backend, SqliteBackend):
        path = backend.path
        if not os.path.exists(path):
            raise CliError(
                f"no SQLite database at {os.path.abspath(path)}: check --backend or "
                f"${ENV_VAR}, or create it with `rexecutor migrate`"
            )
        return SqliteBackend(path, migrate=False, synchronous=backend.synchronous)
    from rexecutor.backends.postgres import PostgresBackend

    return PostgresBackend(url(), migrate=False)


async def connect(backend: Backend) -> None:
    """Connect ``backend`` (made by :func:`existing_backend`); a missing or old schema is a
    ``CliError`` that names the database and says to run ``rexecutor migrate``."""
    try:
        await backend.connect()
    except BackendError as exc:
        # Both SQL backends, asked not to migrate, say so by pointing at migrate=True or at
        # backend.migrate(): that is the one failure `rexecutor migrate` fixes.
        text = str(exc)
        if "migrate" not in text:
            raise
        raise CliError(
            f"{mask_url(url())} holds no up-to-date rexecutor schema ({text.split(':')[0]}): "
            "check --backend or $REXECUTOR_BACKEND, or create it with `rexecutor migrate`"
        ) from None


async def with_backend(handler: Handler, args: argparse.Namespace, out: Output) -> int:
    """Run ``handler`` on the configured backend, connected for it and closed afterwards."""
    backend = existing_backend()
    await connect(backend)
    try:
        return await handler(backend, args, out)
    finally:
        await backend.close()
