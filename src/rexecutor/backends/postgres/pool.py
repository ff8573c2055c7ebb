"""The connection pool of ``PostgresBackend``: opening it (and migrating), running work on
its connections with retries where that is safe, and closing it."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout
from psycopg_pool.abc import AsyncConninfoParam, AsyncKwargsParam

from rexecutor._json import stable_hash
from rexecutor._payload import DEFAULT_MAX_PAYLOAD_BYTES
from rexecutor.backends.postgres.codec import _JsonbBinaryLoader
from rexecutor.backends.postgres.connection import (
    Conn,
    _check_connection,
    _Target,
    _validate_schema,
)
from rexecutor.backends.postgres.errors import (
    _describe_connect_failure,
    _first_line,
    _is_connection_loss,
    _translate,
)
from rexecutor.backends.postgres.listener import _Listening
from rexecutor.backends.postgres.migrations import check_version, migrate_on, partition_on
from rexecutor.backends.postgres.partitions import KEY, is_partitioned
from rexecutor.backends.postgres.statements import _STATEMENTS
from rexecutor.errors import BackendError, ConfigurationError, RexecutorError, ValidationError

logger = logging.getLogger("rexecutor.backends.postgres")

T = TypeVar("T")

_CONNECT_TIMEOUT: Final = 10


class _Pooled(_Listening):
    """The pool half of ``PostgresBackend``, shared by its domain operations."""

    _conninfo: AsyncConninfoParam
    _kwargs: AsyncKwargsParam | None
    _min_size: int
    _max_size: int
    _owns_pool: bool
    _target: _Target

    def _setup(
        self,
        schema: str,
        poll_interval: float,
        migrate: bool,
        *,
        listen_url: str | None = None,
        transaction_pooling: bool = False,
        layout: str | None = None,
    ) -> None:
        self._schema = _validate_schema(schema)
        if listen_url is not None:
            _check_url(listen_url, "listen_url")
        self._listen_url = listen_url
        self._transaction_pooling = bool(transaction_pooling)
        if layout not in (None, "partitioned"):
            raise ConfigurationError(
                f"layout must be None (the schema's own) or 'partitioned', got {layout!r}"
            )
        self._layout = layout
        #: Whether the jobs table has the partitioned layout (found out by ``connect()``).
        self._partitioned = False
        if not poll_interval > 0:
            raise ConfigurationError(f"poll_interval must be positive, got {poll_interval}")
        self.poll_interval = float(poll_interval)
        self.max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES
        self._migrate_on_connect = migrate
        self._pool: AsyncConnectionPool[Any] | None = None
        self._connected = False
        self._connect_lock: asyncio.Lock | None = None
        self._setup_listener()
        identifiers = {
            "schema": sql.Identifier(self._schema),
            "jobs": sql.Identifier(self._schema, "rexecutor_jobs"),
            "nodes": sql.Identifier(self._schema, "rexecutor_nodes"),
            "executors": sql.Identifier(self._schema, "rexecutor_executors"),
            "starts": sql.Identifier(self._schema, "rexecutor_job_starts"),
            "dependencies": sql.Identifier(self._schema, "rexecutor_job_dependencies"),
            "migrations": sql.Identifier(self._schema, "rexecutor_migrations"),
            "notify_fn": sql.Identifier(self._schema, "rexecutor_jobs_notify"),
        }
        self._identifiers = identifiers
        self._render_statements()

    def _render_statements(self) -> None:
        """Render every statement for this schema and the layout found (see ``{live}`` in
        :mod:`~rexecutor.backends.postgres.statements`)."""
        self._q = {name: self._render(text) for name, text in _STATEMENTS.items()}
        self._unique_cache: dict[tuple[Any, ...], bytes] = {}

    def _render(self, template: str) -> bytes:
        live = sql.SQL(f" AND {KEY} IS NULL" if self._partitioned else "")
        return sql.SQL(template).format(**self._identifiers, live=live).as_bytes(None)

    def _lock_key(self, *parts: str) -> int:
        return stable_hash(["rexecutor", self._schema, *parts])

    async def _connect_params(self) -> tuple[str, dict[str, Any]]:
        """The conninfo and connection keyword arguments, resolving callables."""
        conninfo: Any = self._conninfo
        if callable(conninfo):
            conninfo = conninfo()
            if inspect.isawaitable(conninfo):
                conninfo = await conninfo
        kwargs: Any = self._kwargs or {}
        if callable(kwargs):
            kwargs = kwargs()
            if inspect.isawaitable(kwargs):
                kwargs = await kwargs
        return str(conninfo or ""), dict(kwargs or {})

    def _session_kwargs(self) -> dict[str, Any]:
        """What every connection of this backend is opened with, over the caller's kwargs."""
        if self._transaction_pooling:
            # psycopg prepares a statement on its fifth run; a server-side prepared
            # statement lives in one server session, which a transaction pooler
            # (PgBouncer before 1.21) hands to other clients between transactions.
            return {"autocommit": True, "prepare_threshold": None}
        return {"autocommit": True}

    async def _pool_kwargs(self) -> dict[str, Any]:
        _, kwargs = await self._connect_params()
        return {**kwargs, **self._session_kwargs()}

    async def _open_connection(self, *, listener: bool = False) -> Conn:
        """A new connection outside the pool: migrations before the pool opens, and (with
        ``listener``) a LISTEN session, which goes to ``listen_url`` when one was given."""
        conninfo, kwargs = await self._connect_params()
        if listener and self._listen_url is not None:
            conninfo = self._listen_url
        params = {**kwargs, **self._session_kwargs()}
        try:
            has_timeout = "connect_timeout" in conninfo_to_dict(conninfo)
        except psycopg.Error:
            has_timeout = False
        if not has_timeout and "connect_timeout" not in params:
            params["connect_timeout"] = _CONNECT_TIMEOUT
        try:
            return await psycopg.AsyncConnection.connect(conninfo, **params)
        except psycopg.Error as exc:
            target = _Target.parse(conninfo, kwargs)
            raise BackendError(_describe_connect_failure(exc, target)) from exc

    async def _configure(self, conn: Conn) -> None:
        if not self._transaction_pooling:
            # Only saves converting timestamps (the statements work in any time zone); a
            # transaction pooler would carry the SET to whichever client gets the session.
            await conn.execute("SET TIME ZONE 'UTC'")
        conn.adapters.register_loader("jsonb", _JsonbBinaryLoader)

    async def connect(self) -> None:
        """Open the pool and apply pending migrations (or check the schema); idempotent.

        Raises:
            BackendError: the server is unreachable, refuses the credentials, has no such
                database, or the role lacks privileges; or, with ``migrate=False``, the schema
                is missing or out of date.
            SchemaVersionError: the schema is newer than this library understands.
        """
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if self._connected:
                return
            if self._owns_pool:
                conn = await self._open_connection()
                try:
                    await self._prepare_schema(conn)
                finally:
                    await conn.close()
                kwargs: AsyncKwargsParam = (
                    self._pool_kwargs
                    if callable(self._kwargs)
                    else {**(self._kwargs or {}), **self._session_kwargs()}
                )
                pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                    self._conninfo,
                    kwargs=kwargs,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    open=False,
                    configure=self._configure,
                    check=_check_connection,
                    name=f"rexecutor-{self._schema}",
                )
                try:
                    await pool.open(wait=True, timeout=30.0)
                except PoolTimeout as exc:
                    await pool.close()
                    raise BackendError(
                        f"could not open {self._min_size} connection(s) to the PostgreSQL "
                        f"server at {self._target.address} within 30 s"
                    ) from exc
                self._pool = pool
            else:
                assert self._pool is not None
                try:
                    await self._pool.open()
                except PoolClosed as exc:
                    raise BackendError(
                        "the connection pool given to PostgresBackend.from_pool is closed"
                    ) from exc
                try:
                    await self._run(self._prepare_schema)
                except BackendError as exc:
                    if isinstance(exc.__cause__, PoolTimeout):
                        # Say why the pool could not connect, if a direct attempt can tell.
                        conn = await self._open_connection()
                        await conn.close()
                    raise
            self._connected = True
            self._announce_polling()
            if self.wakeups.subscribed:
                self._ensure_listener()

    async def close(self) -> None:
        """Stop the listener and close the pool if this backend opened it; idempotent."""
        await self._stop_listener()
        self._connected = False
        self._connect_lock = None
        if self._owns_pool and self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def _require_pool(self) -> AsyncConnectionPool[Any]:
        if not self._connected or self._pool is None:
            raise BackendError(
                "the PostgreSQL backend is not connected: call `await backend.connect()` "
                "(or use `async with backend:`) first"
            )
        return self._pool

    async def _run(
        self,
        work: Callable[[Conn], Awaitable[T]],
        *,
        retry: bool = False,
    ) -> T:
        """Run ``work`` on a pool connection; errors become rexecutor errors.

        With ``retry`` (only for reads, and for writes that are idempotent or fenced), work
        that failed because its connection was lost runs again on another connection, until
        every connection the pool may hold has been tried: a caller's pool that does not
        check its connections may hand out several dead ones in a row. A serialization
        failure runs it again too (as often).

        Our own pool checks every connection it hands out (``_check_connection``: a round
        trip only when the socket has something to read, that is when the server ended it).
        """
        pool = self._pool
        if pool is None:
            pool = self._require_pool()
        attempts = (pool.max_size + 1) if retry else 1
        for attempt in range(attempts):
            try:
                # pool.connection(), without its context-manager machinery (a hot path):
                # commit or roll back as the block ends, then hand the connection back.
                conn = await pool.getconn()
                try:
                    self._own_conns.add(conn)
                    async with conn:
                        return await work(conn)
                finally:
                    await pool.putconn(conn)
            except (PoolTimeout, PoolClosed) as exc:
                raise self._pool_error(exc) from exc
            except psycopg.errors.SerializationFailure as exc:
                # In the partitioned layout a concurrent finish can move the row a fenced
                # write waits on to another partition: PostgreSQL fails the write instead
                # of re-checking it, and running it again lets the fence answer.
                if attempt + 1 < attempts:
                    continue
                raise self._translate(exc) from exc
            except psycopg.OperationalError as exc:
                if attempt + 1 < attempts and _is_connection_loss(exc):
                    logger.warning(
                        "rexecutor: lost a PostgreSQL connection (%s); retrying",
                        _first_line(exc),
                    )
                    continue
                raise self._translate(exc) from exc
            except psycopg.Error as exc:
                raise self._translate(exc) from exc
            except UnicodeError as exc:
                raise ValidationError(f"a value cannot be encoded for PostgreSQL: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _pool_error(self, exc: Exception) -> BackendError:
        if isinstance(exc, PoolClosed):
            return BackendError(
                "the PostgreSQL backend is not connected (its pool is closed): call "
                "`await backend.connect()` first"
            )
        return BackendError(
            f"no PostgreSQL connection became available in time (pool max_size="
            f"{self._max_size}); the server at {self._target.address} may be unreachable or "
            f"the pool too small: {_first_line(exc)}"
        )

    def _translate(self, exc: psycopg.Error) -> RexecutorError:
        return _translate(exc, self._target, self._schema)

    # -- migrations --------------------------------------------------------------------------

    async def migrate(self) -> int:
        """Bring the schema up to date and return its version; safe to run from many nodes.

        Usable on its own, before (or without) ``connect()``. Runs in one transaction under an
        advisory lock, so concurrent migrations wait for each other and apply each step once.

        Raises:
            SchemaVersionError: the database was migrated by a newer version of rexecutor.
            BackendError: the database is unreachable or the role may not create the schema.
        """
        if self._connected and self._pool is not None:
            return await self._run(self._migrate_on)
        conn = await self._open_connection()
        try:
            return await self._migrate_on(conn)
        except psycopg.Error as exc:
            raise self._translate(exc) from exc
        finally:
            await conn.close()

    async def _migrate_on(self, conn: Conn) -> int:
        dbname = self._target.dbname
        version = await migrate_on(conn, self._schema, self._identifiers, dbname)
        if self._layout == "partitioned":
            await partition_on(conn, self._schema, self._identifiers, dbname)
            self._use_layout(True)
        return version

    def _use_layout(self, partitioned: bool) -> None:
        if partitioned != self._partitioned:
            self._partitioned = partitioned
            self._render_statements()

    async def _prepare_schema(self, conn: Conn) -> None:
        try:
            if self._migrate_on_connect:
                await self._migrate_on(conn)
            else:
                await check_version(conn, self._schema, self._identifiers, self._target.dbname)
            self._use_layout(await is_partitioned(conn, self._identifiers["jobs"]))
        except psycopg.Error as exc:
            raise self._translate(exc) from exc
        if self._layout == "partitioned" and not self._partitioned:
            raise BackendError(
                f"schema {self._schema!r} in database {self._target.dbname!r} does not have "
                "the partitioned layout: connect once with migrate=True (or run "
                "`await backend.migrate()`) to convert it"
            )


def _check_url(url: object, what: str | None = None) -> str:
    """``url`` if libpq can parse it, else a ConfigurationError (naming ``what``)."""
    where = f" for {what}" if what else ""
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"a PostgreSQL connection URL is required{where}")
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        from rexecutor._redact import mask_secrets  # psycopg quotes the bad part

        raise ConfigurationError(
            f"invalid PostgreSQL connection URL{where}: {mask_secrets(str(exc))}"
        ) from None
    return url
