"""Wake-ups from other processes: a listener task on a dedicated connection.

The trigger of the jobs table notifies ``<schema>_rexecutor_jobs`` with the executor of every
job that became ready, external cancels notify ``<schema>_rexecutor_cancel``, and every write
that finishes jobs is followed by ``<schema>_rexecutor_done`` with their ids
(:meth:`_Listening._announce_finished`). The listener (started by the first subscription)
LISTENs to all three, reconnects with backoff and wakes every subscriber after a reconnect.
Notifications sent by this backend's own pool connections are skipped (it already woke its
subscribers); payloads are only ever compared as executor names or parsed as ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Final, TypeVar

from psycopg import sql
from psycopg.rows import tuple_row

from rexecutor._notify import Wakeups
from rexecutor.backend import Backend
from rexecutor.backends.postgres.connection import Conn, Row, _fetchone
from rexecutor.backends.postgres.errors import _first_line
from rexecutor.backends.postgres.statements import _MAX_FINISHED_PAYLOAD, _MAX_PAYLOAD
from rexecutor.errors import RexecutorError

logger = logging.getLogger("rexecutor.backends.postgres")

_LISTEN_PING: Final = 30.0
_LISTEN_BACKOFF: Final = (0.1, 5.0)

T = TypeVar("T")


class _Listening(Backend):
    """The listener half of ``PostgresBackend``: LISTEN, and wake the local subscribers."""

    _schema: str
    _connected: bool
    _q: dict[str, bytes]

    def _setup_listener(self) -> None:
        self.wakeups = Wakeups(on_subscribe=self._ensure_listener)
        self._channel = f"{self._schema}_rexecutor_jobs"
        self._cancel_channel = f"{self._schema}_rexecutor_cancel"
        self._done_channel = f"{self._schema}_rexecutor_done"
        self._own_conns: weakref.WeakSet[Conn] = weakref.WeakSet()
        self._listener_task: asyncio.Task[None] | None = None
        self._listener_loop: asyncio.AbstractEventLoop | None = None
        self._listener_pid: int | None = None
        self._listening = asyncio.Event()

    async def _open_connection(self) -> Conn:
        """A new connection outside the pool (see ``_Pooled``)."""
        raise NotImplementedError

    async def _run(
        self,
        work: Callable[[Conn], Awaitable[T]],
        *,
        retry: bool = False,
        verify: bool | None = None,
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
        notice = {"channel": self._done_channel, "payloads": _finished_payloads(ids)}
        async with conn.pipeline(), conn.cursor(row_factory=tuple_row) as cur:
            await cur.execute(query, params)
            await conn.execute(self._q["notify_finished"], notice)
            return await cur.fetchone()

    async def _announce_finished(self, job_ids: Collection[int]) -> None:
        """Tell the waiters of this process and of every other that ``job_ids`` finished.

        Called after the write that finished them committed, so that a waiter woken by it
        reads them finished. Every such write sends it, whether or not anyone waits: no
        process can see who LISTENs elsewhere, and one notification per write (a batch of
        completions included) is cheap beside the write itself. A notification that cannot
        be sent is logged and dropped: the write stands, and waiters elsewhere find the jobs
        at their next safety re-check (``rexecutor._waiting``).
        """
        ids = [int(job_id) for job_id in job_ids]
        if not ids:
            return
        self.wakeups.notify_finished(ids)
        params = {"channel": self._done_channel, "payloads": _finished_payloads(ids)}

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

    def _ensure_listener(self) -> None:
        if not self._connected:
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
                conn = await self._open_connection()
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                await conn.execute(
                    sql.SQL("LISTEN {}").format(sql.Identifier(self._cancel_channel))
                )
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._done_channel)))
                self._listener_pid = conn.info.backend_pid
                if connected_before or missed:
                    self.notify()  # catch up on whatever happened while nobody listened
                # Waiters may have read their jobs before this LISTEN took effect: they look
                # again now, so nothing that finished meanwhile goes unseen.
                self.wakeups.notify_finished(None)
                connected_before, missed = True, False
                delay = _LISTEN_BACKOFF[0]
                self._listening.set()
                while True:
                    async for note in conn.notifies(timeout=_LISTEN_PING):
                        if note.channel == self._cancel_channel:
                            if note.pid not in self._own_pids():
                                self.notify_cancellation()
                        elif note.channel == self._done_channel:
                            if note.pid not in self._own_pids():
                                self.wakeups.notify_finished(_parse_finished(note.payload))
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
