"""The caller's own connection: joining the transaction an application holds, whatever its driver.

``enqueue(..., connection=c)`` runs the backend's own statements inside ``c``'s transaction.
Every accepted kind of connection is turned into the part of ``psycopg.AsyncConnection`` that
the enqueue code awaits (cursors, ``autocommit``, ``info.transaction_status``,
``transaction()``, ``isolation_level``), so the enqueue logic exists once:

- a psycopg ``AsyncConnection`` is used as it is;
- a SQLAlchemy ``AsyncSession`` or ``AsyncConnection`` on psycopg is unwrapped to its psycopg
  connection; on any other driver (asyncpg) the statements go through SQLAlchemy, in the
  session's transaction (begun as SQLAlchemy begins it);
- an asyncpg ``Connection`` (or a pool's connection proxy) runs them itself;
- through :mod:`rexecutor.sync`: a synchronous psycopg ``Connection``, or a SQLAlchemy
  ``Session`` or ``Connection`` (unwrapped when on psycopg, else through SQLAlchemy); every
  await then completes at once, in the caller's thread.

A driver other than psycopg gets each statement as text with its values rendered as literals
by psycopg's own quoting (``sql.Literal``), so values carry the types psycopg would give them,
a NUL character is refused by psycopg as on the native path, and the SQL is the same. Errors
the server raises are turned into the psycopg error of their SQLSTATE, so the backend reports
them as it reports its own.

The libraries are never imported here: a connection can only be of a library the caller has
loaded, so the checks look in ``sys.modules``.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any, Final, Protocol

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from rexecutor.backends.postgres.connection import Conn, Query, Row
from rexecutor.errors import ConfigurationError

#: What ``connection=`` accepts, for error messages.
ACCEPTED: Final = (
    "a psycopg AsyncConnection, a SQLAlchemy AsyncSession or AsyncConnection, or an asyncpg "
    "Connection (and, through rexecutor.sync, a psycopg Connection or a SQLAlchemy Session or "
    "Connection)"
)

# psycopg's placeholders: %% and %s / %b / %t, named as %(name)s.
_PLACEHOLDER: Final = re.compile(rb"%(?:\(([^)]*)\))?(.)", re.DOTALL)
_COUNT: Final = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+|MERGE|COPY) (\d+)")


def render(query: Query, params: Sequence[Any] | Mapping[str, Any] | None) -> str:
    """``query`` with its parameters replaced by literals, as psycopg would quote them."""
    if isinstance(query, str):
        text = query.encode()
    elif isinstance(query, bytes):
        text = query
    else:
        text = query.as_bytes(None)
    if params is None:
        return text.decode()
    positional = None if isinstance(params, Mapping) else iter(params)

    def literal(match: re.Match[bytes]) -> bytes:
        name, kind = match.groups()
        if kind == b"%" and name is None:
            return b"%"
        if kind not in (b"s", b"b", b"t"):
            raise ValueError(f"unsupported placeholder {match.group(0)!r} in a statement")
        if name is not None:
            assert isinstance(params, Mapping)
            value = params[name.decode()]
        else:
            assert positional is not None
            value = next(positional)
        return sql.Literal(value).as_bytes(None)

    return _PLACEHOLDER.sub(literal, text).decode()


async def joined(connection: object) -> Conn:
    """The caller's async connection (or a view made by :func:`synchronous`), as the
    connection the enqueue code runs on."""
    if isinstance(connection, (psycopg.AsyncConnection, _SyncView)):
        return connection  # type: ignore[return-value]  # the view has the awaited part
    if isinstance(connection, _SqlAlchemy):
        return await _literal(connection)
    sa_async = sys.modules.get("sqlalchemy.ext.asyncio")
    if sa_async is not None:
        if isinstance(connection, sa_async.AsyncSession):
            connection = await connection.connection()
        if isinstance(connection, sa_async.AsyncConnection):
            if not connection.in_transaction():
                # Begun as SQLAlchemy would begin it, so that its commit() commits the job.
                await connection.begin()
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            if isinstance(driver, psycopg.AsyncConnection):
                return driver
            return await _literal(_SqlAlchemy(connection, asynchronous=True))
    asyncpg = sys.modules.get("asyncpg")
    if asyncpg is not None and isinstance(
        connection, (asyncpg.Connection, asyncpg.pool.PoolConnectionProxy)
    ):
        return await _literal(_Asyncpg(connection, asyncpg))
    if isinstance(connection, (psycopg.Connection, *_sqlalchemy_sync_types())):
        raise ConfigurationError(
            f"this synchronous {type(connection).__name__} cannot be used from async code: call "
            "rexecutor.sync.enqueue(builder, connection=...) (or sync.enqueue_many) with it, or "
            "pass an async connection here"
        )
    raise TypeError(
        f"connection= got a {type(connection).__module__}.{type(connection).__qualname__}; "
        f"it takes {ACCEPTED}"
    )


def synchronous(connection: object) -> object:
    """The view of a synchronous connection that :func:`joined` accepts, for
    :mod:`rexecutor.sync` to drive in the caller's thread; anything else is returned as it is
    (the backend refuses what it cannot join)."""
    if isinstance(connection, psycopg.AsyncConnection) or _asynchronous(connection):
        raise ConfigurationError(
            "rexecutor.sync needs a synchronous psycopg.Connection or SQLAlchemy Session or "
            f"Connection; this {type(connection).__name__} belongs to its event loop: there, "
            "await builder.enqueue_to_backend(backend, connection=conn) instead"
        )
    if isinstance(connection, psycopg.Connection):
        return _SyncView(connection)
    sa_conn = _sqlalchemy_sync(connection)
    if sa_conn is None:
        return connection
    driver = sa_conn.connection.driver_connection
    if isinstance(driver, psycopg.Connection):
        return _SyncView(driver)
    return _SqlAlchemy(sa_conn, asynchronous=False)  # its awaits complete at once


def _sqlalchemy_sync_types() -> tuple[type, ...]:
    """SQLAlchemy's sync ``Session`` and ``Connection``, those of them that are loaded."""
    orm = sys.modules.get("sqlalchemy.orm")
    engine = sys.modules.get("sqlalchemy.engine")
    return (
        *(() if orm is None else (orm.Session,)),
        *(() if engine is None else (engine.Connection,)),
    )


def _sqlalchemy_sync(connection: object) -> Any:
    """The SQLAlchemy ``Connection`` of a sync ``Session`` or ``Connection``, in a
    transaction (begun as SQLAlchemy would begin it), else None."""
    if not isinstance(connection, _sqlalchemy_sync_types()):
        return None
    orm = sys.modules.get("sqlalchemy.orm")
    is_session = orm is not None and isinstance(connection, orm.Session)
    conn: Any = connection.connection() if is_session else connection  # type: ignore[attr-defined]
    if not conn.in_transaction():
        conn.begin()
    return conn


def _asynchronous(connection: object) -> bool:
    sa_async = sys.modules.get("sqlalchemy.ext.asyncio")
    if sa_async is not None and isinstance(
        connection, (sa_async.AsyncSession, sa_async.AsyncConnection)
    ):
        return True
    asyncpg = sys.modules.get("asyncpg")
    return asyncpg is not None and isinstance(
        connection, (asyncpg.Connection, asyncpg.pool.PoolConnectionProxy)
    )


# -- drivers other than psycopg: statements as text ---------------------------------------------


class _Driver(Protocol):
    """Runs one statement without parameters in the caller's transaction."""

    async def run(self, text: str) -> tuple[list[Row], int]:
        """The rows the statement returned and the rows it affected; errors as psycopg's."""

    def in_transaction(self) -> bool:
        """Whether a transaction is open (the statements join it)."""

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """A transaction of its own, for a block that must be atomic outside one."""


def _psycopg_error(sqlstate: str | None, message: str) -> psycopg.Error:
    """The psycopg error of ``sqlstate`` (what the backend translates), carrying ``message``."""
    cls = psycopg.errors.lookup(sqlstate) if sqlstate else psycopg.DatabaseError
    return cls(message)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _Asyncpg:
    """An asyncpg connection: each statement prepared unnamed (so that its literal text does
    not fill the caller's statement cache, and poolers in transaction mode cope)."""

    def __init__(self, conn: Any, module: ModuleType) -> None:
        self._conn = conn
        self._errors: type[BaseException] = module.PostgresError

    async def run(self, text: str) -> tuple[list[Row], int]:
        try:
            statement = await self._conn.prepare(text, name="")
            records = await statement.fetch()
        except self._errors as exc:
            raise _psycopg_error(getattr(exc, "sqlstate", None), _first_line(exc)) from exc
        # No enqueue statement returns json, the one type asyncpg hands out undecoded.
        rows = [tuple(r) for r in records]
        return rows, _affected(statement.get_statusmsg(), rows)

    def in_transaction(self) -> bool:
        return bool(self._conn.is_in_transaction())

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Any]:
        block: contextlib.AbstractAsyncContextManager[Any] = self._conn.transaction()
        return block


class _SqlAlchemy:
    """A SQLAlchemy ``Connection`` or ``AsyncConnection``: statements go through
    ``exec_driver_sql``, so they run in its transaction (begun as SQLAlchemy begins it)."""

    def __init__(self, conn: Any, *, asynchronous: bool) -> None:
        self._conn = conn
        self._asynchronous = asynchronous
        exc = sys.modules["sqlalchemy.exc"]
        self._errors: type[BaseException] = exc.DBAPIError
        dbapi = conn.sync_connection if asynchronous else conn
        if getattr(dbapi.connection.dbapi_connection, "autocommit", False):
            raise ConfigurationError(
                "the SQLAlchemy connection is in AUTOCOMMIT mode: enqueue inside a transaction "
                "(session.begin(), engine.begin()) so that the job commits with it"
            )

    async def run(self, text: str) -> tuple[list[Row], int]:
        # no_parameters: the driver gets the text alone, so a % in a value is not a placeholder.
        options = {"no_parameters": True}
        try:
            if self._asynchronous:
                result = await self._conn.exec_driver_sql(text, execution_options=options)
            else:
                result = self._conn.exec_driver_sql(text, execution_options=options)
        except self._errors as exc:
            orig = getattr(exc, "orig", None)
            state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
            raise _psycopg_error(state, _first_line(orig or exc)) from exc
        rows = [tuple(r) for r in result.fetchall()] if result.returns_rows else []
        return rows, int(result.rowcount)

    def in_transaction(self) -> bool:
        return True  # SQLAlchemy begins one on the first statement; AUTOCOMMIT was refused

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return contextlib.nullcontext()  # the block joins the open transaction


def _affected(status: str | None, rows: list[Row]) -> int:
    match = _COUNT.match(status or "")
    return int(match.group(1)) if match else len(rows)


_ISOLATION: Final = {
    "read uncommitted": psycopg.IsolationLevel.READ_UNCOMMITTED,
    "read committed": psycopg.IsolationLevel.READ_COMMITTED,
    "repeatable read": psycopg.IsolationLevel.REPEATABLE_READ,
    "serializable": psycopg.IsolationLevel.SERIALIZABLE,
}


async def _literal(driver: _Driver) -> Conn:
    # The level of the transaction the statements join (or of the one _atomic would open):
    # read from the server, since each driver keeps it in its own way.
    rows, _ = await driver.run("SELECT current_setting('transaction_isolation')")
    view = _LiteralView(driver, _ISOLATION[str(rows[0][0])])
    return view  # type: ignore[return-value]  # the view has the awaited part


@dataclass(frozen=True, slots=True)
class _Info:
    transaction_status: TransactionStatus


class _LiteralCursor:
    """The cursor interface the backend awaits, over a :class:`_Driver`."""

    def __init__(self, driver: _Driver) -> None:
        self._driver = driver
        self._rows: list[Row] = []
        self._count = -1

    async def __aenter__(self) -> _LiteralCursor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def execute(self, query: Query, params: Any = None, **_: Any) -> _LiteralCursor:
        self._rows, self._count = await self._driver.run(render(query, params))
        return self

    async def fetchone(self) -> Row | None:
        return self._rows.pop(0) if self._rows else None

    async def fetchall(self) -> list[Row]:
        rows, self._rows = self._rows, []
        return rows

    @property
    def rowcount(self) -> int:
        return self._count


class _LiteralView:
    """The part of ``psycopg.AsyncConnection`` that the enqueue code uses, over a driver that
    runs statements as text."""

    def __init__(self, driver: _Driver, isolation: psycopg.IsolationLevel) -> None:
        self._driver = driver
        self.isolation_level = isolation

    def cursor(self, *args: Any, **kwargs: Any) -> _LiteralCursor:
        return _LiteralCursor(self._driver)

    @property
    def autocommit(self) -> bool:
        return not self._driver.in_transaction()

    @property
    def info(self) -> _Info:
        status = TransactionStatus.INTRANS if self._driver.in_transaction() else None
        return _Info(status or TransactionStatus.IDLE)

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self._driver.transaction()


# -- a synchronous psycopg connection --------------------------------------------------------


class _SyncCursor:
    """A sync psycopg cursor behind the async cursor interface the backend awaits."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> _SyncCursor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._cursor.close()

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> _SyncCursor:
        self._cursor.execute(query, params, **kwargs)
        return self

    async def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        self._cursor.executemany(query, params_seq, **kwargs)

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int = 0) -> list[Any]:
        return list(self._cursor.fetchmany(size))

    async def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())

    async def close(self) -> None:
        self._cursor.close()

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def statusmessage(self) -> str | None:
        message = self._cursor.statusmessage
        return None if message is None else str(message)


class _SyncTransaction:
    """A sync ``conn.transaction()`` block behind ``async with``."""

    def __init__(self, block: Any) -> None:
        self._block = block

    async def __aenter__(self) -> Any:
        return self._block.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return bool(self._block.__exit__(exc_type, exc, tb))


class _SyncView:
    """The part of ``psycopg.AsyncConnection`` that the backend's enqueue uses, over a sync
    ``psycopg.Connection``; every await completes at once, in the caller's thread."""

    def __init__(self, connection: Any) -> None:
        self._conn = connection

    def cursor(self, *args: Any, **kwargs: Any) -> _SyncCursor:
        return _SyncCursor(self._conn.cursor(*args, **kwargs))

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> _SyncCursor:
        return _SyncCursor(self._conn.execute(query, params, **kwargs))

    def transaction(self, *args: Any, **kwargs: Any) -> _SyncTransaction:
        return _SyncTransaction(self._conn.transaction(*args, **kwargs))

    @property
    def autocommit(self) -> bool:
        return bool(self._conn.autocommit)

    @property
    def isolation_level(self) -> Any:
        return self._conn.isolation_level

    @property
    def info(self) -> Any:
        return self._conn.info

    @property
    def closed(self) -> bool:
        return bool(self._conn.closed)

    @property
    def pgconn(self) -> Any:
        return self._conn.pgconn
