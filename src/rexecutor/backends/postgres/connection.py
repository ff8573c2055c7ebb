"""Talking to the server: running statements on a connection, checking pooled
connections, and naming where a connection goes (for error messages, never the password)."""

from __future__ import annotations

import contextlib
import os
import select
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.abc import Params
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from rexecutor.errors import ConfigurationError

Conn = psycopg.AsyncConnection[Any]
Row = tuple[Any, ...]
Query = str | bytes | sql.SQL | sql.Composed

#: Longest schema name: a channel name ("<schema>_rexecutor_jobs") must fit in 63 bytes.
_MAX_SCHEMA_BYTES: Final = 48


def _validate_schema(schema: object) -> str:
    if not isinstance(schema, str) or not schema:
        raise ConfigurationError("schema must be a non-empty string")
    if "\x00" in schema:
        raise ConfigurationError("schema must not contain NUL characters")
    if len(schema.encode()) > _MAX_SCHEMA_BYTES:
        raise ConfigurationError(
            f"schema name {schema!r} is too long: at most {_MAX_SCHEMA_BYTES} bytes, so that "
            "its notification channel name fits PostgreSQL's 63-byte identifier limit"
        )
    if schema.lower().startswith("pg_"):
        raise ConfigurationError(f"schema name {schema!r} is reserved by PostgreSQL (pg_*)")
    return schema


async def _fetchall(
    conn: Conn, query: Query, params: Params | None = None, *, binary: bool = False
) -> list[Row]:
    # Binary results decode jobs noticeably faster (timestamps, arrays); used for job rows.
    async with conn.cursor(row_factory=tuple_row, binary=binary) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def _fetchone(conn: Conn, query: Query, params: Params | None = None) -> Row | None:
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


async def _execute(conn: Conn, query: Query, params: Params | None = None) -> int:
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query, params)
        return cur.rowcount


@contextlib.asynccontextmanager
async def _atomic(conn: Conn) -> AsyncIterator[None]:
    """Make the block atomic without taking a caller's transaction away from it.

    An autocommit connection outside a transaction gets its own transaction, committed at
    the end. A connection already in a transaction, or one in manual-commit mode, is used as
    it is: the block joins the transaction its owner commits or rolls back.
    """
    if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
        async with conn.transaction():
            yield
    else:
        yield


async def _check_connection(conn: Conn) -> None:
    """The pool's check of a connection it hands out, without a round trip when it can.

    An idle connection has nothing to read: when its socket is readable, the server closed it
    or sent why it is about to (a restart, ``pg_terminate_backend``), and the full check (an
    empty query) runs and fails, so the pool hands out another connection. Only then does the
    check cost a round trip, instead of on every checkout.
    """
    try:
        idle = conn.info.transaction_status == TransactionStatus.IDLE and not conn.broken
        if idle:
            poller = select.poll()
            poller.register(conn.fileno(), select.POLLIN)
            readable = bool(poller.poll(0))
        else:
            readable = True
    except (OSError, ValueError, psycopg.Error):
        idle, readable = False, True
    if not idle or readable:
        await AsyncConnectionPool.check_connection(conn)


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a connection goes, for error messages (never the password)."""

    host: str
    port: str
    dbname: str
    user: str

    @classmethod
    def parse(cls, conninfo: str, kwargs: dict[str, Any]) -> _Target:
        try:
            params = conninfo_to_dict(conninfo)
        except psycopg.Error:
            params = {}
        for name in ("host", "hostaddr", "port", "dbname", "user"):
            if kwargs.get(name) is not None:
                params[name] = kwargs[name]
        user = str(params.get("user") or os.environ.get("PGUSER") or _os_user())
        return cls(
            host=str(
                params.get("host")
                or params.get("hostaddr")
                or os.environ.get("PGHOST")
                or "localhost"
            ),
            port=str(params.get("port") or os.environ.get("PGPORT") or 5432),
            dbname=str(params.get("dbname") or os.environ.get("PGDATABASE") or user),
            user=user,
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _os_user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:
        return "the current user"
