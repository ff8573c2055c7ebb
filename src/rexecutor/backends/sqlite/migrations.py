"""The schema, as numbered ``.sql`` files shipped beside this module.

``migrations/NNNN_<name>.sql`` moves a file from schema version NNNN - 1 to NNNN (stored in
``PRAGMA user_version``); files are applied in order inside the caller's write transaction.
Append a file, never edit one: a database migrated by an earlier release must stay current.
"""

from __future__ import annotations

import re
import sqlite3
from functools import cache
from importlib import resources
from typing import Final

from rexecutor.errors import BackendError, SchemaVersionError

__all__ = ["SCHEMA_VERSION", "apply_migrations", "migrations"]

_NAME: Final = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def _statements(script: str) -> tuple[str, ...]:
    """The statements of ``script``, split where SQLite says one is complete (a ``;`` inside
    a comment or a string does not end one). ``executescript`` cannot be used: it commits the
    transaction the migration runs in."""
    found: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    if pending.strip(" \n\t;"):
        raise ValueError(f"migration ends with an incomplete statement: {pending.strip()!r}")
    # A trailing piece of only comments is complete for SQLite but is no statement.
    return tuple(s for s in found if _has_code(s))


def _has_code(statement: str) -> bool:
    lines = (line.split("--", 1)[0].strip() for line in statement.splitlines())
    return any(line and line != ";" for line in lines)


@cache
def migrations() -> tuple[tuple[str, ...], ...]:
    """Every migration's statements, in version order (entry i moves version i to i + 1)."""
    folder = resources.files("rexecutor.backends.sqlite").joinpath("migrations")
    numbered: dict[int, str] = {}
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match is not None:
            numbered[int(match.group(1))] = entry.read_text(encoding="utf-8")
    if sorted(numbered) != list(range(1, len(numbered) + 1)):
        raise RuntimeError(
            f"rexecutor's SQLite migrations are not numbered 1..n: {sorted(numbered)}"
        )
    return tuple(_statements(numbered[n]) for n in sorted(numbered))


#: The schema version this library writes and understands (stored in ``PRAGMA user_version``).
SCHEMA_VERSION: Final[int] = len(migrations())


def apply_migrations(conn: sqlite3.Connection, path: str) -> None:
    """Bring the database ``path`` to ``SCHEMA_VERSION`` (inside the caller's transaction)."""
    # Re-read inside the write transaction: another process may have migrated meanwhile.
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} has rexecutor schema version {version}, but this version of "
            f"rexecutor knows only up to {SCHEMA_VERSION}: upgrade rexecutor"
        )
    if version == 0:
        taken = [
            str(r[0])
            for r in conn.execute(
                "SELECT name FROM sqlite_schema WHERE name IN ('jobs', 'nodes')"
            ).fetchall()
        ]
        if taken:
            raise BackendError(
                f"{path} already holds tables that rexecutor did not create "
                f"({', '.join(taken)}), so it is not a rexecutor database: point "
                "SqliteBackend at a file of its own"
            )
    for statements in migrations()[version:]:
        for statement in statements:
            conn.execute(statement)
    # PRAGMA takes no bound parameters; SCHEMA_VERSION is our own integer.
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
