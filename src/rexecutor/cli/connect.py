"""Opening the configured backend for the management commands, without touching its schema.

Only ``rexecutor migrate`` (and a worker) creates or upgrades a schema: the commands here
connect with ``migrate=False``, so pointing one at the wrong database is an error that names
the database and says to run ``rexecutor migrate``, never new empty tables there.

The read-only commands (and the dashboard's pages) may read from another database than the
one actions go to: ``--read-url URL`` or ``$REXECUTOR_READ_URL``, typically a streaming
replica of the primary. A backend on it only reads: it is never migrated, registers no node
and starts no listener, so a hot standby (which refuses every write) serves it.
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

__all__ = [
    "READ_ENV_VAR",
    "Handler",
    "connect",
    "existing_backend",
    "read_url",
    "url",
    "with_backend",
]

#: The environment variable naming the database the read-only commands read from.
READ_ENV_VAR = "REXECUTOR_READ_URL"

#: A management command: given the connected backend, its arguments and the output, the exit code.
Handler = Callable[[Backend, argparse.Namespace, "Output"], Awaitable[int]]


def url() -> str:
    """The configured backend URL (``--backend`` is copied into the environment first)."""
    return os.environ.get(ENV_VAR) or DEFAULT_URL


def read_url() -> str | None:
    """The URL reads go to when it is not the backend's (``--read-url`` is copied into the
    environment first), else None."""
    return os.environ.get(READ_ENV_VAR) or None


def existing_backend(target: str | None = None) -> Backend:
    """The backend at ``target`` (default: the configured one), set not to create or upgrade
    its schema.

    A SQLite file that does not exist yet is refused (a typo in the path would otherwise
    create an empty database and show nothing); :func:`connect` refuses a database without
    the schema.
    """
    backend = backend_from_url(target or url(), migrate=False)
    from rexecutor.backends import InMemoryBackend

    if isinstance(backend, InMemoryBackend):
        return backend
    # Imported here: a command that never opens SQLite does not load its driver module.
    from rexecutor.backends.sqlite import SqliteBackend

    if isinstance(backend, SqliteBackend) and not os.path.exists(backend.path):
        raise CliError(
            f"no SQLite database at {os.path.abspath(backend.path)}: check --backend or "
            f"${ENV_VAR}, or create it with `rexecutor migrate`"
        )
    return backend


async def connect(backend: Backend, target: str | None = None) -> None:
    """Connect ``backend`` (made by :func:`existing_backend` for ``target``, default the
    configured URL); a missing or old schema is a ``CliError`` that names the database and
    says to run ``rexecutor migrate``."""
    try:
        await backend.connect()
    except BackendError as exc:
        # Both SQL backends, asked not to migrate, say so by pointing at migrate=True or at
        # backend.migrate(): that is the one failure `rexecutor migrate` fixes.
        text = str(exc)
        if "migrate" not in text:
            raise
        where = target or url()
        option = "--read-url or $" + READ_ENV_VAR if where != url() else "--backend or $" + ENV_VAR
        raise CliError(
            f"{mask_url(where)} holds no up-to-date rexecutor schema ({text.split(':')[0]}): "
            f"check {option}, or create it with `rexecutor migrate` (on the primary)"
        ) from None


async def with_backend(
    handler: Handler, args: argparse.Namespace, out: Output, *, reads_only: bool = False
) -> int:
    """Run ``handler`` on the configured backend, connected for it and closed afterwards;
    a handler that only reads (``reads_only``) gets the :func:`read_url`'s when one is set."""
    target = (read_url() if reads_only else None) or url()
    backend = existing_backend(target)
    await connect(backend, target)
    try:
        return await handler(backend, args, out)
    finally:
        await backend.close()
