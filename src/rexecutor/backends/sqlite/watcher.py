"""Wake-ups from other processes: a watcher thread that notices their commits.

Writes that make a job ready notify local subscribers after the commit. Commits made by other
processes are noticed by a :class:`Watcher` thread that reads ``PRAGMA data_version`` on a
second connection every ``poll_interval`` seconds while anyone is subscribed (runners, or
waiters for finished jobs, to whom such a commit says "some jobs may have finished").
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Collection

from rexecutor._notify import FinishedHub, Subscription, WakeHub


class WatchedHub(WakeHub):
    """A wake hub that lets the data_version watcher sleep while nobody is subscribed, to it
    or to its ``finished`` hub (the waiters for finished jobs)."""

    def __init__(self) -> None:
        super().__init__()
        self.activity = threading.Condition()
        self._live: set[Subscription] = set()
        self.finished = FinishedHub(on_change=self._changed)

    def _changed(self) -> None:
        with self.activity:
            self.activity.notify_all()

    def subscribe(self, executors: Collection[str] | None = None) -> Subscription:
        sub = super().subscribe(executors)
        with self.activity:
            self._live.add(sub)
            self.activity.notify_all()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        super().unsubscribe(sub)
        with self.activity:
            self._live.discard(sub)

    @property
    def active(self) -> bool:
        return bool(self._live) or self.finished.subscriber_count > 0


def open_watch_connection(path: str, timeout: float) -> tuple[sqlite3.Connection, int]:
    """The watcher's connection and its current ``data_version``."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        return conn, int(conn.execute("PRAGMA data_version").fetchone()[0])
    except BaseException:
        conn.close()
        raise


class Watcher:
    """Notices commits by other connections (other processes) through ``PRAGMA data_version``.

    Every ``interval`` seconds while anyone is subscribed, the watcher reads ``data_version`` on
    its own connection: a cheap read that touches neither the database thread nor the write
    lock, so an idle system makes no claim queries. That value also changes when this backend
    commits (its main connection is "another connection" to the watcher), and the backend's own
    writes already wake whom they concern; so on a change the watcher asks ``foreign`` (which
    reads ``data_version`` on the main connection, where the backend's own commits do not count)
    whether someone else committed, and only then wakes every subscriber.

    The baseline ``version`` is read during ``connect()`` and kept while nobody is subscribed, so
    a commit that lands after ``connect()`` returned is never absorbed into a baseline unseen,
    however soon it follows a ``subscribe()``.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        version: int,
        *,
        path: str,
        interval: float,
        timeout: float,
        hub: WatchedHub,
        foreign: Callable[[], concurrent.futures.Future[bool]],
        wake: Callable[[], None],
    ) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._last = version
        self._path = path
        self._interval = interval
        self._timeout = timeout
        self._hub = hub
        self._foreign = foreign
        self._wake = wake
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"rexecutor-sqlite-watch:{path}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._hub.activity:
            self._hub.activity.notify_all()
        self._thread.join(max(5.0, self._interval * 4))

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                with self._hub.activity:
                    while not self._hub.active and not self._stopping.is_set():
                        self._hub.activity.wait()
                if self._stopping.is_set():
                    return
                self._poll()
                self._stopping.wait(self._interval)
        finally:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()

    def _poll(self) -> None:
        try:
            if self._conn is None:
                # After a failure: what happened meanwhile is unknown, so wake once more.
                self._conn, self._last = open_watch_connection(self._path, self._timeout)
                self._wake()
                return
            version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            # Could not look: wake everyone so runners poll for themselves; start over.
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
            self._conn = None
            self._wake()
            return
        if version != self._last and self._ask_foreign():
            self._wake()
        self._last = version

    def _ask_foreign(self) -> bool:
        future = self._foreign()
        while True:
            try:
                return future.result(timeout=self._interval)
            except concurrent.futures.TimeoutError:
                if self._stopping.is_set():  # closing: the database thread may never answer
                    return False
            except Exception:
                return True  # cannot tell: a spurious wake-up is harmless, a missed one is not
