"""Wake-ups from other processes: a listener task on a dedicated connection.

The trigger of the jobs table notifies ``<schema>_rexecutor_jobs`` with the executor of every
job that became ready, and external cancels notify ``<schema>_rexecutor_cancel``. The
listener (started by the first ``subscribe()``) LISTENs to both, reconnects with backoff and
wakes every subscriber after a reconnect.

Waiters for finished jobs have a listener of their own, running only while this process has
any: it LISTENs to ``<schema>_rexecutor_done`` and holds an advisory lock shared, which tells
the writers of every process that someone waits; a write that finishes jobs then sends their
ids there, in the same round trip (:meth:`_Listening._fetch_announcing`).

Notifications sent by this backend's own pool connections are skipped (it already woke its
subscribers); payloads are only ever compared as executor names or parsed as ids.

Both listeners need a session of their own, so they connect to ``listen_url`` when one is
given (past a transaction pooler such as PgBouncer). Behind a transaction pooler without one
(``transaction_pooling=True``, no ``listen_url``) nothing LISTENs: connecting logs one warning,
runners find work from other processes when they poll (the node's ``poll_interval``), and
waiters for finished jobs re-read their jobs every backend ``poll_interval``
(:meth:`_Listening._poll_waiters`). A transaction pooler also hides which server session a
pool connection is, so this backend's own notifications are not recognised as its own: they
cost a redundant wake-up, never a missed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Final, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from rexecutor._json import stable_hash
from rexecutor._notify import FinishedHub, Wakeups
from rexecutor.backend import Backend
from rexecutor.backends.postgres.connection import Conn, Row, _fetchone
from rexecutor.backends.postgres.errors import _first_line
from rexecutor.backends.postgres.statements import _MAX_FINISHED_PAYLOAD, _MAX_PAYLOAD
from rexecutor.errors import RexecutorError

logger = logging.getLogger("rexecutor.backends.postgres")

_LISTEN_PING: Final = 30.0
_LISTEN_BACKOFF: Final = (0.1, 5.0)
#: Seconds the waiters' listener (and its lock) outlives the last waiter.
_WAITERS_LINGER: Final = 30.0

#: Whether the libpq in use has pipeline mode (14 and later).
_PIPELINES: Final = psycopg.AsyncPipeline.is_supported()

T = TypeVar("T")


class _Listening(Backend):
    """The listener half of ``PostgresBackend``: LISTEN, and wake the local subscribers."""

    _schema: str
    _connected: bool
    _q: dict[str, bytes]
    _listen_url: str | None
    _transaction_pooling: bool

    def _setup_listener(self) -> None:
        self.wakeups = Wakeups(
            on_subscribe=self._ensure_listener,
            finished=FinishedHub(on_change=self._waiters_changed),
        )
        self._waiters_task: asyncio.Task[None] | None = None
        self._waiters_linger: asyncio.TimerHandle | None = None
        self._channel = f"{self._schema}_rexecutor_jobs"
        self._cancel_channel = f"{self._schema}_rexecutor_cancel"
        self._done_channel = f"{self._schema}_rexecutor_done"
        self._own_conns: weakref.WeakSet[Conn] = weakref.WeakSet()
        self._listener_task: asyncio.Task[None] | None = None
        self._listener_loop: asyncio.AbstractEventLoop | None = None
        self._listener_pid: int | None = None
        self._listening = asyncio.Event()
        #: Set once the warning that nothing LISTENs was logged (twins made by
        #: ``for_thread`` start with it set: their original said it for the process).
        self._polling_announced = False

    async def _open_connection(self, *, listener: bool = False) -> Conn:
        """A new connection outside the pool (see ``_Pooled``)."""
        raise NotImplementedError

    async def _run(
        self,
        work: Callable[[Conn], Awaitable[T]],
        *,
        retry: bool = False,
    ) -> T:
        """Run ``work`` on a pool connection (see ``_Pooled``)."""
        raise NotImplementedError

    async def _fetch_announcing(
        self, conn: Conn, query: bytes, params: dict[str, Any], job_ids: Collection[int]
    ) -> Row | None:
        """``_fetchone(conn, query, params)`` for a write that may finish ``job_ids``, their
        notification to other processes sent after it in the same round trip (a pipeline).

        The notification names every id the write may finish: one it did not finish costs a
        waiter elsewhere one needless re-read, while waiting for the write's answer to name
        only the finished ones would cost every write a second round trip. If the write
        fails, the notification is not sent. The local waiters are the caller's to notify,
        with the ids the write did finish.
        """
        ids = [int(job_id) for job_id in job_ids]
        if not ids:
            return await _fetchone(conn, query, params)
        notice = self._finished_notice(ids)
        if not _PIPELINES:  # a libpq older than 14: two round trips
            row = await _fetchone(conn, query, params)
            await _fetchone(conn, self._q["notify_finished"], notice)
            return row
        async with conn.pipeline(), conn.cursor(row_factory=tuple_row) as cur:
            await cur.execute(query, params)
            await conn.execute(self._q["notify_finished"], notice)
            return await cur.fetchone()

    def _finished_notice(self, ids: list[int]) -> dict[str, Any]:
        return {
            "channel": self._done_channel,
            "payloads": _finished_payloads(ids),
            "waiters": self._waiters_key,
        }

    async def _announce_finished(self, job_ids: Collection[int]) -> None:
        """Tell the waiters of this process and of every other that ``job_ids`` finished.

        Called after the write that finished them committed, so that a waiter woken by it
        reads them finished; other processes are notified only while one of them waits (see
        :meth:`_serve_waiters`). A notification that cannot be sent is logged and dropped:
        the write stands, and waiters elsewhere find the jobs at their next safety re-check
        (``rexecutor._waiting``).
        """
        ids = [int(job_id) for job_id in job_ids]
        if not ids:
            return
        self.wakeups.notify_finished(ids)
        params = self._finished_notice(ids)

        async def work(conn: Conn) -> Any:
            return await _fetchone(conn, self._q["notify_finished"], params)

        try:
            await self._run(work, retry=True)
        except RexecutorError as exc:
            logger.warning(
                "rexecutor: could not announce that jobs finished (%s); waiters in other "
                "processes find them at their next re-check",
                _first_line(exc),
            )

    @property
    def _polls_only(self) -> bool:
        """Whether nothing may LISTEN: behind a transaction pooler, with no direct URL."""
        return self._transaction_pooling and self._listen_url is None

    def _announce_polling(self) -> None:
        """Say, once per backend, that wake-ups from other processes come by polling."""
        if self._polls_only and not self._polling_announced:
            self._polling_announced = True
            logger.warning(
                "rexecutor: transaction_pooling is set and no listen_url is given, so schema "
                "%r does not LISTEN: jobs enqueued by other processes are found when runners "
                "poll (the node's poll_interval), jobs finished by them when waiters poll "
                "(every %s s); give listen_url a direct (session) URL of the server to be "
                "woken at once",
                self._schema,
                self.poll_interval,
            )

    def _ensure_listener(self) -> None:
        if not self._connected or self._polls_only:
            return
        loop = asyncio.get_running_loop()
        task = self._listener_task
        if task is not None and not task.done():
            if self._listener_loop is loop:
                return
            old = self._listener_loop
            if old is not None and not old.is_closed():
                with contextlib.suppress(RuntimeError):
                    old.call_soon_threadsafe(task.cancel)
        self._listening = asyncio.Event()
        self._listener_loop = loop
        self._listener_task = loop.create_task(
            self._listen(), name=f"rexecutor-listener-{self._schema}"
        )

    async def _stop_listener(self) -> None:
        linger, self._waiters_linger = self._waiters_linger, None
        if linger is not None:
            linger.cancel()
        waiters, self._waiters_task = self._waiters_task, None
        if waiters is not None and not waiters.done():
            waiters.cancel()
            if waiters.get_loop() is asyncio.get_running_loop():
                await asyncio.wait([waiters])
        task, self._listener_task = self._listener_task, None
        if task is None or task.done():
            return
        loop = self._listener_loop
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - close() is async, so a loop runs
            current = None
        if loop is current:
            task.cancel()
            await asyncio.wait([task])
        elif loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)

    async def _listen(self) -> None:
        """LISTEN forever, reconnecting with backoff; wake everyone after each reconnect."""
        delay = _LISTEN_BACKOFF[0]
        connected_before = False
        missed = False
        while True:
            conn: Conn | None = None
            try:
                conn = await self._open_connection(listener=True)
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                await conn.execute(
                    sql.SQL("LISTEN {}").format(sql.Identifier(self._cancel_channel))
                )
                self._listener_pid = conn.info.backend_pid
                if connected_before or missed:
                    self.notify()  # catch up on whatever happened while nobody listened
                connected_before, missed = True, False
                delay = _LISTEN_BACKOFF[0]
                self._listening.set()
                while True:
                    async for note in conn.notifies(timeout=_LISTEN_PING):
                        if note.channel == self._cancel_channel:
                            if note.pid not in self._own_pids():
                                self.notify_cancellation()
                        else:
                            self._on_notification(note.payload, note.pid)
                    await conn.execute("SELECT 1")  # detect a silently dead connection
            except Exception as exc:
                missed = True
                logger.warning(
                    "rexecutor: the notification listener of schema %r lost its connection "
                    "(%s); reconnecting in %.1f s",
                    self._schema,
                    _first_line(exc),
                    delay,
                )
            finally:
                self._listening.clear()
                self._listener_pid = None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LISTEN_BACKOFF[1])

    # -- waiters for finished jobs ----------------------------------------------------------

    def _waiters_changed(self) -> None:
        """Run the waiters' listener while this process has anyone waiting, and for
        ``_WAITERS_LINGER`` seconds after the last one left (so that one wait after another
        does not open a connection each)."""
        linger, self._waiters_linger = self._waiters_linger, None
        if linger is not None:
            linger.cancel()
        task = self._waiters_task
        if self.wakeups.finished.subscriber_count == 0:
            if task is not None:
                self._waiters_linger = asyncio.get_running_loop().call_later(
                    _WAITERS_LINGER, self._end_waiters
                )
        elif (task is None or task.done()) and self._connected:
            serve = self._poll_waiters() if self._polls_only else self._serve_waiters()
            self._waiters_task = asyncio.get_running_loop().create_task(
                serve, name=f"rexecutor-waiters-{self._schema}"
            )

    def _end_waiters(self) -> None:
        self._waiters_linger = None
        task = self._waiters_task
        if task is not None and self.wakeups.finished.subscriber_count == 0:
            self._waiters_task = None
            task.cancel()

    async def _serve_waiters(self) -> None:
        """LISTEN for finished jobs on a connection of its own, holding the shared advisory
        lock that tells writers in every process that someone waits; reconnect with backoff.

        Writers send their notification only when they cannot take that lock (see the
        statement ``notify_finished``), so a store where nobody waits pays no NOTIFY. A
        writer that took the lock holds it until its transaction ends, so a waiter that
        asks for it meanwhile gets it only once that write committed: the re-read that
        follows here sees it.
        """
        delay = _LISTEN_BACKOFF[0]
        while True:
            conn: Conn | None = None
            try:
                conn = await self._open_connection(listener=True)
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._done_channel)))
                await conn.execute("SELECT pg_advisory_lock_shared(%s)", [self._waiters_key])
                # What finished before the lock was held announced nothing: look again.
                self.wakeups.notify_finished(None)
                delay = _LISTEN_BACKOFF[0]
                while True:
                    async for note in conn.notifies(timeout=_LISTEN_PING):
                        if note.pid not in self._own_pids():
                            self.wakeups.notify_finished(_parse_finished(note.payload))
                    await conn.execute("SELECT 1")  # detect a silently dead connection
            except Exception as exc:
                logger.warning(
                    "rexecutor: the finished-jobs listener of schema %r lost its connection "
                    "(%s); reconnecting in %.1f s",
                    self._schema,
                    _first_line(exc),
                    delay,
                )
            finally:
                if conn is not None:  # closing it releases the lock
                    with contextlib.suppress(Exception):
                        await conn.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LISTEN_BACKOFF[1])

    async def _poll_waiters(self) -> None:
        """Without a listener: have the waiters re-read their jobs every ``poll_interval``
        (a write in another process announces nothing that could reach them)."""
        while True:
            await asyncio.sleep(self.poll_interval)
            self.wakeups.notify_finished(None)

    @property
    def _waiters_key(self) -> int:
        """The advisory lock that waiting processes hold shared."""
        return stable_hash(["rexecutor", self._schema, "waiters"])

    def _on_notification(self, payload: object, pid: int) -> None:
        """Handle one notification: an untrusted hint, compared only as an executor name."""
        if not isinstance(payload, str) or len(payload) > _MAX_PAYLOAD:
            return
        if pid in self._own_pids():
            return  # this backend already woke its subscribers
        self.notify(payload or None)

    def _own_pids(self) -> set[int]:
        pids = set()
        for conn in list(self._own_conns):
            if not conn.closed:
                with contextlib.suppress(Exception):
                    pids.add(conn.info.backend_pid)
        return pids

    def _wake(self, executors: Collection[str]) -> None:
        for executor in set(executors):
            self.notify(executor)


def _finished_payloads(ids: list[int]) -> list[str]:
    """``ids`` as comma-separated texts, each at most ``_MAX_FINISHED_PAYLOAD`` bytes."""
    payloads: list[str] = []
    current: list[str] = []
    size = 0
    for text in map(str, ids):
        if current and size + 1 + len(text) > _MAX_FINISHED_PAYLOAD:
            payloads.append(",".join(current))
            current, size = [], 0
        size += len(text) + (1 if current else 0)
        current.append(text)
    if current:
        payloads.append(",".join(current))
    return payloads


def _parse_finished(payload: object) -> list[int] | None:
    """The ids of a "jobs finished" payload; None (unknown which) for anything else: an
    untrusted hint, so what does not parse only makes the waiters look at all their jobs."""
    if not isinstance(payload, str) or not payload or len(payload) > _MAX_FINISHED_PAYLOAD:
        return None
    parts = payload.split(",")
    if not all(part.isascii() and part.isdigit() and len(part) <= 19 for part in parts):
        return None
    return [int(part) for part in parts]
