"""Backends: where jobs live.

``InMemoryBackend`` (tests), ``SqliteBackend`` (the embedded default) and ``PostgresBackend``
(production). :func:`backend_from_url` picks one from a URL such as ``sqlite:///jobs.db`` or
``postgresql://user@host/db``; the SQL backends are imported only when asked for. Behind a
transaction pooler (PgBouncer), ``$REXECUTOR_TRANSACTION_POOLING`` and ``$REXECUTOR_LISTEN_URL``
give ``PostgresBackend`` its ``transaction_pooling`` and ``listen_url`` (libpq refuses unknown
URL parameters, so they cannot ride in the URL).
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
    "LISTEN_URL_ENV_VAR",
    "TRANSACTION_POOLING_ENV_VAR",
    "InMemoryBackend",
    "PostgresBackend",
    "SqliteBackend",
    "backend_from_url",
]

#: The environment variable that names the backend when no URL is given.
ENV_VAR = "REXECUTOR_BACKEND"
#: The backend used when neither a URL nor the environment variable is given.
DEFAULT_URL = "sqlite:///rexecutor.db"
#: The environment variable with a direct PostgreSQL URL for the wake-up listeners.
LISTEN_URL_ENV_VAR = "REXECUTOR_LISTEN_URL"
#: The environment variable that says the PostgreSQL URL goes through a transaction pooler.
TRANSACTION_POOLING_ENV_VAR = "REXECUTOR_TRANSACTION_POOLING"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def backend_from_url(
    url: str | None = None,
    *,
    migrate: bool = True,
    listen_url: str | None = None,
    transaction_pooling: bool | None = None,
) -> Backend:
    """Make a backend from a URL, else ``$REXECUTOR_BACKEND``, else ``sqlite:///rexecutor.db``.

    Schemes: ``memory://``, ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``
    (``?synchronous=normal`` trades the last commits on power loss for speed, see
    :class:`SqliteBackend`), ``postgresql://...`` (or ``postgres://``). ``migrate`` is the SQL
    backends' own option. ``listen_url`` (default ``$REXECUTOR_LISTEN_URL``) and
    ``transaction_pooling`` (default ``$REXECUTOR_TRANSACTION_POOLING``: 1/true/yes/on or
    0/false/no/off) are ``PostgresBackend``'s; set for another backend they are a
    ``ConfigurationError``.

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
    if listen_url is None:
        listen_url = os.environ.get(LISTEN_URL_ENV_VAR) or None
    if transaction_pooling is None:
        transaction_pooling = _flag(TRANSACTION_POOLING_ENV_VAR)
    if scheme in ("postgresql", "postgres"):
        from rexecutor.backends.postgres import PostgresBackend

        return PostgresBackend(
            target,
            migrate=migrate,
            listen_url=listen_url,
            transaction_pooling=transaction_pooling,
        )
    if listen_url is not None or transaction_pooling:
        raise ConfigurationError(
            f"listen_url and transaction_pooling (${LISTEN_URL_ENV_VAR}, "
            f"${TRANSACTION_POOLING_ENV_VAR}) apply to PostgreSQL only, but the backend is "
            f"{mask_url(target)!r}: unset them or use a postgresql:// URL"
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
        return SqliteBackend(path, migrate=migrate, synchronous=_sqlite_synchronous(target, query))
    raise ConfigurationError(
        f"unknown backend scheme {scheme!r} in {mask_url(target)!r}: "
        "use sqlite, postgresql or memory"
    )


def _flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(
        f"${name} is {os.environ[name]!r}: use 1, true, yes or on (or 0, false, no, off)"
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
