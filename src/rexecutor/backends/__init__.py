"""Backends: where jobs live.

``InMemoryBackend`` (tests), ``SqliteBackend`` (the embedded default) and ``PostgresBackend``
(production). :func:`backend_from_url` picks one from a URL such as ``sqlite:///jobs.db`` or
``postgresql://user@host/db``; the SQL backends are imported only when asked for.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import TYPE_CHECKING, Any

from rexecutor._redact import mask_url
from rexecutor.backend import Backend
from rexecutor.backends.memory import InMemoryBackend
from rexecutor.errors import ConfigurationError

if TYPE_CHECKING:
    from rexecutor.backends.postgres import PostgresBackend
    from rexecutor.backends.sqlite import SqliteBackend

__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "InMemoryBackend",
    "PostgresBackend",
    "SqliteBackend",
    "backend_from_url",
]

#: The environment variable that names the backend when no URL is given.
ENV_VAR = "REXECUTOR_BACKEND"
#: The backend used when neither a URL nor the environment variable is given.
DEFAULT_URL = "sqlite:///rexecutor.db"


def backend_from_url(url: str | None = None) -> Backend:
    """Make a backend from a URL, else ``$REXECUTOR_BACKEND``, else ``sqlite:///rexecutor.db``.

    Schemes: ``memory://``, ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``
    (``?synchronous=normal`` trades the last commits on power loss for speed, see
    :class:`SqliteBackend`), ``postgresql://...`` (or ``postgres://``).

    Example:
        >>> backend_from_url("memory://")  # doctest: +ELLIPSIS
        <rexecutor.backends.memory.InMemoryBackend object at ...>
    """
    target = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    scheme, sep, rest = target.partition("://")
    if not sep:
        raise ConfigurationError(
            f"backend URL {mask_url(target)!r} has no scheme: use sqlite:///path/to/jobs.db, "
            "postgresql://user@host/db or memory://"
        )
    if scheme == "memory":
        return InMemoryBackend()
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise ConfigurationError(
                f"SQLite URL {mask_url(target)!r} needs a path: sqlite:///relative.db or sqlite:////abs.db"
            )
        from rexecutor.backends.sqlite import SqliteBackend

        path, _, query = rest[1:].partition("?")
        return SqliteBackend(path, synchronous=_sqlite_synchronous(target, query))
    if scheme in ("postgresql", "postgres"):
        from rexecutor.backends.postgres import PostgresBackend

        return PostgresBackend(target)
    raise ConfigurationError(
        f"unknown backend scheme {scheme!r} in {mask_url(target)!r}: "
        "use sqlite, postgresql or memory"
    )


def _sqlite_synchronous(target: str, query: str) -> str:
    """The ``synchronous`` level a SQLite URL's query string gives (its only option)."""
    level = "full"
    for name, values in urllib.parse.parse_qs(query, keep_blank_values=True).items():
        if name != "synchronous" or len(values) != 1:
            raise ConfigurationError(
                f"SQLite URL {mask_url(target)!r}: unknown or repeated option {name!r}; the "
                "only one is synchronous=full|normal (sqlite:///jobs.db?synchronous=normal)"
            )
        level = values[0]
    return level


def __getattr__(name: str) -> Any:
    # The SQL backends import their drivers lazily, so that the in-memory backend needs none.
    if name == "SqliteBackend":
        from rexecutor.backends.sqlite import SqliteBackend

        return SqliteBackend
    if name == "PostgresBackend":
        from rexecutor.backends.postgres import PostgresBackend

        return PostgresBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
