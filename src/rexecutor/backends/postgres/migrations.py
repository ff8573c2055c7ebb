"""The schema's versioned migrations: numbered ``.sql`` files shipped in ``migrations/``.

``migrations/NNNN_<name>.sql`` is version ``NNNN``; its first line (``-- <description>``) is
the description recorded in ``<schema>.rexecutor_migrations``. Placeholders in braces are
identifiers filled in per schema (``{jobs}``, ``{nodes}``, ``{notify_fn}``). Migrations run in
one transaction under an advisory lock, so nodes migrating at once wait for each other and
apply each version once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

from psycopg import sql

from rexecutor._json import stable_hash
from rexecutor.backends.postgres import partitions
from rexecutor.backends.postgres.codec import _db_now
from rexecutor.backends.postgres.connection import Conn, _atomic, _execute, _fetchone
from rexecutor.errors import BackendError, SchemaVersionError

__all__ = [
    "SCHEMA_VERSION",
    "Migration",
    "check_version",
    "migrate_on",
    "migrations",
    "partition_on",
]

logger = logging.getLogger("rexecutor.backends.postgres")

#: The newest schema version this library knows how to use.
SCHEMA_VERSION: Final = 3

_FILE_NAME: Final = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: its number, its description and its SQL (a template)."""

    version: int
    description: str
    template: str


@cache
def migrations() -> tuple[Migration, ...]:
    """Every migration shipped with the package, in version order."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        text = entry.read_text(encoding="utf-8")
        first = text.split("\n", 1)[0]
        if not first.startswith("-- "):
            raise AssertionError(f"migration {entry.name} must start with '-- <description>'")
        found.append(Migration(int(match.group(1)), first[3:].strip(), text))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise AssertionError(f"migration versions must run 1, 2, ...: {found}")
    if found[-1].version != SCHEMA_VERSION:
        raise AssertionError(f"the newest migration is not SCHEMA_VERSION {SCHEMA_VERSION}")
    return tuple(found)


async def _stored_version(conn: Conn, table: sql.Identifier) -> int | None:
    """The schema's version, or None when it has no migrations table."""
    row = await _fetchone(conn, "SELECT to_regclass(%s) IS NOT NULL", [table.as_string(None)])
    if row is None or not row[0]:
        return None
    row = await _fetchone(conn, sql.SQL("SELECT COALESCE(max(version), 0) FROM {}").format(table))
    return int(row[0]) if row is not None else 0


def _too_new(schema: str, dbname: str, version: int) -> SchemaVersionError:
    return SchemaVersionError(
        f"the rexecutor schema {schema!r} in database {dbname!r} is at "
        f"version {version}, but this version of rexecutor only knows versions up to "
        f"{SCHEMA_VERSION}: upgrade rexecutor on this node"
    )


async def check_version(
    conn: Conn, schema: str, identifiers: dict[str, sql.Identifier], dbname: str
) -> None:
    """Raise unless the schema is at exactly ``SCHEMA_VERSION`` (``migrate=False``)."""
    version = await _stored_version(conn, identifiers["migrations"])
    if version is None or version < SCHEMA_VERSION:
        found = "no rexecutor tables" if version is None else f"version {version}"
        raise BackendError(
            f"schema {schema!r} in database {dbname!r} has {found}, but "
            f"this rexecutor needs version {SCHEMA_VERSION}: run `await backend.migrate()` "
            "or connect with migrate=True"
        )
    if version > SCHEMA_VERSION:
        raise _too_new(schema, dbname, version)


def _lock(schema: str) -> int:
    return stable_hash(["rexecutor", schema, "migrate"])


async def migrate_on(
    conn: Conn, schema: str, identifiers: dict[str, sql.Identifier], dbname: str
) -> int:
    """Apply the pending migrations on ``conn``, atomically and under the advisory lock;
    returns the schema's version."""
    async with _atomic(conn):
        await _execute(conn, "SELECT pg_advisory_xact_lock(%s)", [_lock(schema)])
        row = await _fetchone(
            conn, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", [schema]
        )
        if not (row and row[0]):
            await _execute(conn, sql.SQL("CREATE SCHEMA {}").format(identifiers["schema"]))
        version = await _stored_version(conn, identifiers["migrations"])
        if version is None:
            await _execute(
                conn,
                sql.SQL(
                    "CREATE TABLE {} (version integer PRIMARY KEY, description text NOT "
                    "NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(identifiers["migrations"]),
            )
            version = 0
        if version > SCHEMA_VERSION:
            raise _too_new(schema, dbname, version)
        for migration in migrations():
            if migration.version <= version:
                continue
            # Without parameters the file runs as one simple query: all its statements.
            await _execute(conn, sql.SQL(migration.template).format(**identifiers))
            await _execute(
                conn,
                sql.SQL("INSERT INTO {} (version, description) VALUES (%s, %s)").format(
                    identifiers["migrations"]
                ),
                [migration.version, migration.description],
            )
            logger.info(
                "rexecutor: migrated schema %r to version %d (%s)",
                schema,
                migration.version,
                migration.description,
            )
        return max(version, SCHEMA_VERSION)


async def partition_on(
    conn: Conn, schema: str, identifiers: dict[str, sql.Identifier], dbname: str
) -> bool:
    """Convert an up-to-date schema's jobs table to the partitioned layout (see
    :mod:`rexecutor.backends.postgres.partitions`), atomically and under the migrations'
    advisory lock; returns False when it had the layout already.

    Not a numbered version: a schema keeps its version either way, and later versions apply
    to both layouts.
    """
    async with _atomic(conn):
        await _execute(conn, "SELECT pg_advisory_xact_lock(%s)", [_lock(schema)])
        await check_version(conn, schema, identifiers, dbname)
        row = await _fetchone(
            conn, "SELECT (COALESCE(%s::timestamptz, now()) AT TIME ZONE 'UTC')::date", [_db_now()]
        )
        assert row is not None
        changed = await partitions.convert_on(conn, schema, identifiers, row[0])
    if changed:
        logger.info("rexecutor: schema %r now has the partitioned layout", schema)
    return changed
