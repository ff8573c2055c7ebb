"""Wake-ups from other processes: a listener task on a dedicated connection.

The trigger of the jobs table notifies ``<schema>_rexecutor_jobs`` with the executor of every
job that became ready, and external cancels notify ``<schema>_rexecutor_cancel``. The
listener (started by the first ``subscribe()``) LISTENs to both, reconnects with backoff and
wakes every subscriber after a reconnect. Notifications sent by this backend's own pool
connections are skipped (it already woke its subscribers), and payloads are only ever compared
as executor names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Collection
from typing import Final

from psycopg import sql

from rexecutor._notify import Wakeups
from rexecutor.backend import Backend
from rexecutor.backends.postgres.connection import Conn
from rexecutor.backends.postgres.errors import _first_line
from rexecutor.backends.postgres.statements import _MAX_PAYLOAD

logger = logging.getLogger("rexecutor.backends.postgres")

_LISTEN_PING: Final = 30.0
_LISTEN_BACKOFF: Final = (0.1, 5.0)


class _Listening(Backend):
    """The listener half of ``PostgresBackend``: LISTEN, and wake the local subscribers."""

    _schema: str
    _connected: bool

    def _setup_listener(self) -> None:
        self.wakeups = Wakeups(on_subscribe=self._ensure_listener)
        self._channel = f"{self._schema}_rexecutor_jobs"
        self._cancel_channel = f"{self._schema}_rexecutor_cancel"
        self._own_conns: weakref.WeakSet[Conn] = weakref.WeakSet()
        self._listener_task: asyncio.Task[None] | None = None
        self._listener_loop: asyncio.AbstractEventLoop | None = None
        self._listener_pid: int | None = None
        self._listening = asyncio.Event()

    async def _open_connection(self) -> Conn:
        """A new connection outside the pool (see ``_Pooled``)."""
        raise NotImplementedError

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
