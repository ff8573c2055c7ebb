"""The database thread and the connection it owns: opening the file, transactions, and
waiting out another process's write lock.

* **One thread per backend.** Every database call runs on a dedicated thread that owns the one
  connection; an ``async`` method hands it a closure and awaits a future that the thread resolves
  with ``call_soon_threadsafe``. The event loop never blocks on SQLite. A hand-rolled queue
  is used instead of ``loop.run_in_executor``: measured side by side on the project's 2-core
  machine, a round trip to a function that does nothing costs about 50 µs this way when the
  machine is quiet (100-200 µs when both cores are busy), against 130-220 µs through a
  ``ThreadPoolExecutor``, which adds a ``concurrent.futures.Future``, ``wrap_future`` and a
  semaphore to every call. A whole ``get_job`` costs about 140 µs on a quiet machine; an
  ``enqueue``, which waits for its fsync, about 1 ms.
* **Group commit.** Write transactions queued together (concurrent enqueues, a claim beside an
  ack) run in one ``BEGIN IMMEDIATE`` ... ``COMMIT``, each in its own savepoint, so one fsync
  serves them all and one wake-up of the event loop answers them all; a caller is answered
  only once its write is committed, and a write that fails is undone alone.
* **Durable and multi-process.** WAL journal, ``synchronous=FULL`` by default (a commit is on
  disk before ``enqueue`` returns; ``NORMAL`` on request, see ``SqliteBackend``) and
  ``BEGIN IMMEDIATE`` for every write transaction, so writers queue on the file's write lock
  instead of failing when they upgrade a read. ``SQLITE_BUSY`` is retried until
  ``busy_timeout`` has passed, then reported as a :class:`~rexecutor.errors.BackendError`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import queue
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

from rexecutor.backends.sqlite.codec import lenient_text, leniently
from rexecutor.backends.sqlite.errors import is_busy, is_undecodable, stayed_locked, translate
from rexecutor.errors import BackendError, ConfigurationError

T = TypeVar("T")

# RETURNING needs 3.35.
_MIN_SQLITE: Final = (3, 35, 0)

#: The ``PRAGMA synchronous`` levels a backend may ask for. OFF is not offered: with it a
#: power loss can corrupt the file, not only lose its last commits.
SYNCHRONOUS: Final = ("full", "normal")

_BUSY_FIRST_SLEEP: Final = 0.0005
_BUSY_MAX_SLEEP: Final = 0.005


class _Busy:
    """How long a busy operation has waited, and until when it may."""

    __slots__ = ("deadline", "limit", "retries")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.deadline = time.monotonic() + limit
        self.retries = 0


def check_synchronous(value: object) -> str:
    """``value`` as a ``PRAGMA synchronous`` level (lower case), or a clear error."""
    level = value.lower() if isinstance(value, str) else value
    if level not in SYNCHRONOUS:
        raise ConfigurationError(
            f"synchronous must be 'full' (the default: every commit is on disk when the call "
            f"returns) or 'normal' (faster; a power loss can undo the last commits), "
            f"got {value!r}"
        )
    return str(level)


def open_connection(path: str) -> sqlite3.Connection:
    """The backend's connection to ``path``, the file created (mode 0600) if missing."""
    if sqlite3.sqlite_version_info < _MIN_SQLITE:
        raise BackendError(
            f"SQLite {sqlite3.sqlite_version} is too old for SqliteBackend (it needs "
            f"{'.'.join(map(str, _MIN_SQLITE))} or newer); use a Python built with a newer "
            "SQLite"
        )
    _check_path(path)
    try:
        return sqlite3.connect(
            path,
            # No SQLite busy handler: _wait_busy retries instead (see there for why).
            timeout=0,
            isolation_level=None,  # autocommit: transactions are explicit BEGIN IMMEDIATE
            check_same_thread=False,
            cached_statements=256,
        )
    except sqlite3.Error as exc:
        raise translate(exc, path) from exc


def _check_path(given: str) -> None:
    """Turn the common set-up mistakes into messages that say what to do."""
    path = os.path.abspath(given)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise BackendError(
            f"cannot open SQLite database {given}: directory {directory} does not "
            "exist. Create it first, or choose a path in an existing directory."
        )
    if os.path.isdir(path):
        raise BackendError(
            f"cannot open SQLite database {given}: it is a directory. "
            "Pass the path of a file (for example jobs.db inside it)."
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise BackendError(
            f"cannot use SQLite database {given}: directory {directory} is not "
            "writable, and SQLite must create the -wal and -shm files beside the database. "
            "Make the directory writable by this process, or move the database."
        )
    if os.path.exists(path):
        if not os.access(path, os.R_OK | os.W_OK):
            raise BackendError(
                f"cannot use SQLite database {given}: the file is read-only for this "
                "process. Make it readable and writable (for example chmod 600 as its "
                "owner), or use another file."
            )
        return
    try:
        # Create it ourselves so that job data is private to the owner (mode 0600).
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:  # another process created it first
        pass
    except OSError as exc:
        raise BackendError(
            f"cannot create SQLite database {given}: {exc.strerror}. Check that its "
            "directory is writable by this process."
        ) from exc


def transaction(
    conn: sqlite3.Connection, path: str, busy_timeout: float, fn: Callable[..., T], *args: Any
) -> T:
    """``fn(conn, *args)`` in one BEGIN IMMEDIATE transaction, retried while the file is busy
    (for up to ``busy_timeout`` seconds).

    BEGIN IMMEDIATE takes the write lock up front, so two processes never both read and then
    both try to write (the case SQLite cannot resolve by waiting). Every attempt is rolled
    back on failure, so retrying is safe.
    """
    busy: _Busy | None = None
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn, *args)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
            return result
        except sqlite3.Error as exc:
            if is_undecodable(exc) and conn.text_factory is not lenient_text:
                # Rolled back: run it again, reading text that is not UTF-8 leniently.
                return leniently(conn, lambda: transaction(conn, path, busy_timeout, fn, *args))
            if not is_busy(exc):
                raise translate(exc, path) from exc
            busy = busy or _Busy(busy_timeout)
            _wait_busy(busy, exc, path)


def read(
    conn: sqlite3.Connection, path: str, busy_timeout: float, fn: Callable[..., T], *args: Any
) -> T:
    """``fn(conn, *args)`` as autocommit reads, retried while the file is busy.

    WAL readers are not blocked by writers; they can still see SQLITE_BUSY briefly while
    another connection recovers or restarts the WAL.
    """
    busy: _Busy | None = None
    while True:
        try:
            return fn(conn, *args)
        except sqlite3.Error as exc:
            if is_undecodable(exc) and conn.text_factory is not lenient_text:
                return leniently(conn, lambda: read(conn, path, busy_timeout, fn, *args))
            if not is_busy(exc):
                raise translate(exc, path) from exc
            busy = busy or _Busy(busy_timeout)
            _wait_busy(busy, exc, path)


def _wait_busy(busy: _Busy, exc: sqlite3.Error, path: str) -> None:
    """Sleep briefly before retrying a busy operation, or give up at the busy timeout.

    SQLite's built-in busy handler backs off to sleeps of 25-100 ms, and a process that
    writes in a tight loop then holds the lock at nearly every retry: measured with two
    processes claiming from one file, one of them sometimes got no job at all. Retrying
    every few milliseconds, with jitter so that competitors do not retry in lock-step,
    shares the lock far more evenly and bounds the wait by ``busy_timeout`` exactly.
    """
    remaining = busy.deadline - time.monotonic()
    if remaining <= 0:
        raise stayed_locked(path, busy.limit) from exc
    delay = min(_BUSY_MAX_SLEEP, _BUSY_FIRST_SLEEP * 2**busy.retries)
    busy.retries += 1
    time.sleep(min(remaining, delay * random.uniform(0.5, 1.5)))


#: A closure's outcome: its result, or the error it raised.
Outcome = tuple[Any, BaseException | None]
#: A write: the body of one transaction, given the connection.
Write = Callable[[sqlite3.Connection], Any]

# At most this many queued writes share one commit, so that a long queue cannot hold the
# file's write lock for long while other processes wait for it.
_MAX_GROUP: Final = 64


def transactions(
    conn: sqlite3.Connection, path: str, busy_timeout: float, work: list[Write]
) -> list[Outcome]:
    """The writes of ``work`` committed together (one fsync for all), in order.

    Each runs in its own savepoint: one that raises is undone alone, its error returned in its
    place, while the others commit. A busy file or a failed commit fails them all, as it would
    have failed each. A single write runs as a plain :func:`transaction`.
    """
    if len(work) == 1:
        try:
            return [(transaction(conn, path, busy_timeout, work[0]), None)]
        except Exception as exc:
            return [(None, exc)]
    return transaction(conn, path, busy_timeout, lambda c: [_savepoint(c, path, w) for w in work])


def _savepoint(conn: sqlite3.Connection, path: str, write: Write) -> Outcome:
    """``write(conn)`` in a savepoint of the group's transaction (see :func:`transactions`)."""
    conn.execute("SAVEPOINT one_write")
    try:
        result = write(conn)
    except Exception as exc:
        if isinstance(exc, sqlite3.Error) and is_busy(exc):
            raise  # the whole group is rolled back and retried by transaction()
        conn.execute("ROLLBACK TO one_write")
        conn.execute("RELEASE one_write")
        if not isinstance(exc, sqlite3.Error):
            return None, exc
        if is_undecodable(exc) and conn.text_factory is not lenient_text:
            return leniently(conn, lambda: _savepoint(conn, path, write))
        return None, translate(exc, path)
    conn.execute("RELEASE one_write")
    return result, None


class _Call:
    """A queued closure: a plain call (``fn()``), or a write (``fn(conn)``) that may share its
    commit with the writes queued beside it."""

    __slots__ = ("fn", "future", "loop", "write")

    def __init__(
        self,
        fn: Callable[..., Any],
        future: asyncio.Future[Any] | concurrent.futures.Future[Any],
        loop: asyncio.AbstractEventLoop | None,
        write: bool,
    ) -> None:
        self.fn = fn
        self.future = future
        self.loop = loop  # None: a concurrent future, for a caller that is a plain thread
        self.write = write


def _settle(settled: list[tuple[asyncio.Future[Any], Outcome]]) -> None:
    for future, (result, error) in settled:
        if future.done():  # the caller was cancelled; the work has happened regardless
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


class DbThread:
    """A thread that runs closures one at a time and hands the results back to their callers.

    Writes queued together are committed together (``writes`` runs them, see
    :func:`transactions`): with concurrent callers (acks, claims, enqueues from many tasks)
    one fsync then serves them all, and each caller is answered only after that commit.
    """

    def __init__(self, name: str, writes: Callable[[list[Write]], list[Outcome]]) -> None:
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._writes = writes
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``fn``; the returned future (of the running loop) resolves with its outcome."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Call(fn, future, loop, write=False))
        return future

    def call_write(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue the write transaction ``fn(conn)``; the future resolves once it is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Call(fn, future, loop, write=True))
        return future

    def call_blocking(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Queue ``fn`` for a caller that is a plain thread, not a coroutine."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put(_Call(fn, future, None, write=False))
        return future

    def stop(self) -> None:
        """Let the thread finish the calls already queued, then exit."""
        self._queue.put(None)

    def _run(self) -> None:
        held: list[_Call | None] = []  # taken from the queue while gathering writes, not run yet
        while True:
            item = held.pop() if held else self._queue.get()
            if item is None:
                return
            batch = [item]
            while item.write and len(batch) < _MAX_GROUP:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None or not more.write:
                    held.append(more)
                    break
                batch.append(more)
            self._answer(batch)
            # Nothing of these calls is kept alive while the thread waits for the next.
            del item, batch

    def _answer(self, batch: list[_Call]) -> None:
        """Run ``batch`` (one plain call, or writes) and hand each caller its outcome."""
        outcomes: list[Outcome]
        try:
            if batch[0].write:
                outcomes = self._writes([call.fn for call in batch])
            else:
                outcomes = [(batch[0].fn(), None)]
        except BaseException as exc:  # handed to the callers, never lost
            outcomes = [(None, exc)] * len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Outcome]]] = {}
        for call, outcome in zip(batch, outcomes, strict=True):
            if call.loop is None:
                assert isinstance(call.future, concurrent.futures.Future)
                result, error = outcome
                if error is None:
                    call.future.set_result(result)
                else:
                    call.future.set_exception(error)
            else:
                assert isinstance(call.future, asyncio.Future)
                by_loop.setdefault(call.loop, []).append((call.future, outcome))
        for loop, settled in by_loop.items():
            try:
                # One wake-up of the loop answers all of its callers.
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # the caller's loop has closed: nobody is waiting
                pass


def pragma(conn: sqlite3.Connection, name: str) -> Any:
    """The value of ``PRAGMA name`` (``name`` is our own text, never a caller's)."""
    return conn.execute(f"PRAGMA {name}").fetchone()[0]
