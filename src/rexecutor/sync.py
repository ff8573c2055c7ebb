"""Synchronous callers: enqueue, query, cancel and rerun jobs from code that is not async.

A WSGI app, a script, a Django view or a plain worker thread calls these functions; each
runs the async API itself (the same builder, executor and backend code, not a second copy) on
a private event loop in a background thread, and waits for the result. They are safe to
call from any thread, on every backend, and take the global backend unless given one.

A backend whose connections belong to one event loop (PostgreSQL) is not used across loops:
the facade works on ``backend.for_thread()``, a twin on the same database with a small pool
of its own (at most two connections), opened on first use and closed when the original
backend is garbage-collected or :func:`close` is called. The in-memory and SQLite backends
are used as they are (connected first if they are not). The PostgreSQL schema must already
exist (``rexecutor migrate``, or any node's ``connect()``).

With PostgreSQL, ``connection=`` takes the caller's own synchronous ``psycopg.Connection``, or
a SQLAlchemy ``Session`` or ``Connection`` (on psycopg or psycopg2): the insert runs on it, in
the caller's thread, inside its open transaction (the job exists only if that transaction
commits), through the backend's own enqueue code.

Example:
    >>> from rexecutor import sync
    >>> job_id = sync.enqueue(EmailJob.builder().with_data("bob@example.com"))
    >>> sync.get_job(EmailJob, job_id).status
    <JobStatus.SCHEDULED: 'scheduled'>
    >>> with psycopg.connect(url) as conn:           # one transaction, committed on exit
    ...     conn.execute("INSERT INTO orders (id) VALUES (42)")
    ...     sync.enqueue(ShipOrder.builder().with_data(42), connection=conn)
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import timedelta
from typing import Any, TypeVar

from rexecutor import _global, admin
from rexecutor.backend import Backend, EnqueueResult
from rexecutor.builder import JobBuilder
from rexecutor.builder import enqueue_many as _enqueue_many
from rexecutor.executor import Executor
from rexecutor.job import Job, JobId
from rexecutor.query import Where

__all__ = [
    "call",
    "cancel_job",
    "close",
    "enqueue",
    "enqueue_many",
    "enqueue_with_result",
    "get_job",
    "migrate",
    "query_jobs",
    "rerun_job",
    "update_job",
    "wait_for_job",
]

T = TypeVar("T")
D = TypeVar("D")
M = TypeVar("M")


# -- the background loop -----------------------------------------------------------------------


class _Facade:
    """A private event loop in a daemon thread, and the per-loop twins of backends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._twins: dict[int, tuple[weakref.ref[Backend], Backend]] = {}
        # Twins whose originals were collected, dropped from _twins under the lock later: the
        # finalizer that reports them (``_forget``) must never wait for the lock.
        self._forgotten: collections.deque[tuple[int, Backend]] = collections.deque()
        self._exit_hook = False

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._pid != os.getpid():  # forked: the thread did not come along
                self._loop, self._thread, self._twins = None, None, {}
                self._forgotten.clear()
                self._pid = os.getpid()
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_serve, args=(loop,), name="rexecutor-sync", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
                if not self._exit_hook:
                    atexit.register(close)
                    self._exit_hook = True
            return self._loop

    def _purge(self) -> None:
        """Drop the twins of collected originals (the caller holds the lock)."""
        while self._forgotten:
            key, twin = self._forgotten.popleft()
            entry = self._twins.get(key)
            if entry is not None and entry[1] is twin:
                del self._twins[key]

    def _twin(self, original: Backend) -> Backend:
        with self._lock:
            self._purge()
            entry = self._twins.get(id(original))
            if entry is not None and entry[0]() is original:
                return entry[1]
        twin = original.for_thread()
        if twin is original:
            return twin  # usable from any loop: nothing to keep
        with self._lock:
            entry = self._twins.get(id(original))
            if entry is not None and entry[0]() is original:
                return entry[1]
            self._twins[id(original)] = (weakref.ref(original), twin)
        weakref.finalize(original, self._forget, id(original), twin)
        return twin

    def _forget(self, key: int, twin: Backend) -> None:
        # The garbage collector runs this wherever it runs: on a thread that holds the lock,
        # or on the loop's thread while it is starting and the thread starting it holds the
        # lock and waits for it (a deadlock CI met). So it takes no lock: the twin is
        # dropped from _twins by the next _twin, and closed on the loop now.
        self._forgotten.append((key, twin))
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(twin.close(), loop)

    def run(
        self, original: Backend, work: Callable[[Backend], Awaitable[T]], connect: bool = True
    ) -> T:
        if self._thread is threading.current_thread():
            raise RuntimeError(
                "rexecutor.sync was called from its own event loop thread; await the async "
                "API there instead"
            )
        loop = self._ensure_loop()
        backend = self._twin(original)

        async def go() -> T:
            if connect:
                await backend.connect()
            return await work(backend)

        future = asyncio.run_coroutine_threadsafe(go(), loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            # A copy first: a finalizer run by this very line must not change what is iterated.
            twins = [twin for _ref, twin in dict(self._twins).values()]
            self._loop, self._thread, self._twins = None, None, {}
            self._forgotten.clear()  # their twins' closing was sent to the loop already
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            raise RuntimeError("rexecutor.sync.close() cannot be called from its own thread")

        async def shut() -> None:
            for twin in twins:
                with contextlib.suppress(Exception):
                    await twin.close()

        if thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(shut(), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


_FACADE = _Facade()


def _target(backend: Backend | None) -> Backend:
    return backend if backend is not None else _global.get_global_backend()


def call(work: Callable[[Backend], Awaitable[T]], backend: Backend | None = None) -> T:
    """Run ``await work(b)`` on the facade's loop, ``b`` being ``backend`` (or the global one)
    as usable there; returns its result. The escape hatch for any other async operation.

    Example:
        >>> counts = sync.call(lambda b: b.count_jobs())
    """
    return _FACADE.run(_target(backend), work)


def migrate(backend: Backend | None = None) -> None:
    """Create or upgrade the backend's schema, as ``rexecutor migrate`` does.

    PostgreSQL: ``PostgresBackend.migrate()`` (the facade's own twin never migrates on
    connect); the others apply their migrations when they connect.
    """

    async def work(b: Backend) -> None:
        upgrade = getattr(b, "migrate", None)
        if callable(upgrade):
            await upgrade()
        else:
            await b.connect()

    _FACADE.run(_target(backend), work, connect=False)


def close() -> None:
    """Close the connections the facade opened and stop its thread.

    Called at interpreter exit; the next call starts afresh.
    """
    _FACADE.close()


# -- enqueue -----------------------------------------------------------------------------------


def enqueue(
    builder: JobBuilder[Any, Any], backend: Backend | None = None, *, connection: Any = None
) -> JobId:
    """Store the job ``builder`` describes; returns its id (the existing one if a duplicate).

    ``connection``: with PostgreSQL, the caller's ``psycopg.Connection`` or SQLAlchemy
    ``Session`` or ``Connection``, whose open transaction the insert joins.
    """
    return enqueue_with_result(builder, backend, connection=connection).job_id


def enqueue_with_result(
    builder: JobBuilder[Any, Any], backend: Backend | None = None, *, connection: Any = None
) -> EnqueueResult:
    """Like :func:`enqueue`, reporting whether the job was a duplicate of a stored one."""
    target = _target(backend)
    if connection is not None:
        return _on_connection(
            lambda conn: builder.enqueue_with_result(target, connection=conn), connection
        )
    return _FACADE.run(target, lambda b: builder.enqueue_with_result(b))


def enqueue_many(
    builders: Iterable[JobBuilder[Any, Any]],
    backend: Backend | None = None,
    *,
    connection: Any = None,
) -> list[EnqueueResult]:
    """Store many jobs in one round trip where the backend allows it; results in order.

    Every job is validated first, so a bad one stores none. ``connection`` works as for
    :func:`enqueue`.
    """
    target = _target(backend)
    items = list(builders)
    if connection is not None:
        return _on_connection(
            lambda conn: _enqueue_many(items, target, connection=conn), connection
        )
    return _FACADE.run(target, lambda b: _enqueue_many(items, b))


# -- reading and changing jobs -----------------------------------------------------------------


def get_job(
    executor: type[Executor[D, M]], job_id: int, backend: Backend | None = None
) -> Job[D, M]:
    """The job with ``job_id``, typed by ``executor``, or ``JobNotFound``."""
    return _FACADE.run(_target(backend), lambda b: executor.get_job(job_id, b))


def query_jobs(
    executor: type[Executor[D, M]],
    where: Where[Any, Any] | None = None,
    backend: Backend | None = None,
) -> list[Job[D, M]]:
    """``executor``'s jobs matching ``where`` (None: all), oldest first."""
    return _FACADE.run(_target(backend), lambda b: executor.query_jobs_on_backend(where, b))


def update_job(
    executor: type[Executor[D, M]], job: Job[D, M], backend: Backend | None = None
) -> None:
    """Write back a job's data, metadata, max_attempts, priority, tags and scheduled_at."""
    _FACADE.run(_target(backend), lambda b: executor.update_job_on_backend(job, b))


def wait_for_job(
    executor: type[Executor[D, M]],
    job_id: int,
    backend: Backend | None = None,
    *,
    timeout: timedelta | None = None,
) -> Job[D, M]:
    """Block until the job is complete, discarded or cancelled; returns it, typed.

    ``JobNotFound`` for an unknown id, the builtin ``TimeoutError`` when ``timeout`` (None:
    no limit) passes first. Waiters of every thread share the facade's one subscription.
    """
    return _FACADE.run(
        _target(backend), lambda b: executor.wait_for_job_on_backend(job_id, b, timeout=timeout)
    )


def cancel_job(job_id: int, reason: object, backend: Backend | None = None) -> bool:
    """Cancel a job for good (a running one is stopped on its node).

    Returns False when the job had already finished.
    """
    return _FACADE.run(_target(backend), lambda b: admin.cancel(b, job_id, reason))


def rerun_job(job_id: int, backend: Backend | None = None) -> None:
    """Run a finished job again now, or move a waiting one to now."""
    _FACADE.run(_target(backend), lambda b: admin.rerun(b, job_id))


# -- the caller's own connection ---------------------------------------------------------------


def _on_connection(work: Callable[[Any], Coroutine[Any, Any, T]], connection: Any) -> T:
    """Run ``work`` in this thread on the caller's sync connection, seen as an async one."""
    try:
        from rexecutor.backends.postgres import foreign
    except ImportError:  # no PostgreSQL here: the backend refuses the connection itself
        return _drive(work(connection))
    return _drive(work(foreign.synchronous(connection)))


def _drive(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (all its I/O is synchronous) to completion."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return finished.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError(
        "the backend waited for asynchronous I/O while enqueueing on a synchronous connection; "
        "this backend cannot enqueue through rexecutor.sync with connection="
    )
