"""Progress reports of running jobs: :func:`report_progress` and the reporter that stores them.

Inside ``execute``, ``await rexecutor.report_progress(40, message="page 4 of 10")`` records
how far the job is. The runner knows which job runs: around each attempt it installs a
:class:`ProgressReporter` in a context variable, which the job's task sees, and so do the
worker thread of a blocking executor (the runner copies the context into it) and the child
process of a ``run_in_process`` executor (the child forwards each report to the node over
its reply pipe, see :mod:`rexecutor._process`).

The reporter writes at most once per :data:`PROGRESS_INTERVAL` per attempt: the first report
is written at once, reports in between replace the one waiting, and the latest is written
when the interval ends, so a tight loop costs one write a second and its last value is not
lost. When the attempt ends, a report still waiting is written before the outcome (one
short write at most, bounded by :data:`FINAL_WRITE_TIMEOUT`); a stopped attempt (lost or
handed back) drops it. Every write is fenced by the attempt's lease, like the outcome: once
the job was moved on elsewhere, nothing more is stored. A new attempt's first report
replaces the progress an earlier attempt left; :func:`is_from_earlier_attempt` tells a reader
whether the stored progress predates the attempt on record.

Example:
    >>> class Import(Executor[str, None]):
    ...     async def execute(self, job):
    ...         for page in range(10):
    ...             await report_progress(page * 10, message=f"page {page + 1} of 10")
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import numbers
import threading
from collections.abc import Awaitable, Generator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from rexecutor import _clock, _text
from rexecutor.errors import ConfigurationError, JobNotFound, ValidationError
from rexecutor.job import Job, JobProgress

if TYPE_CHECKING:
    from rexecutor.backend import Backend, Lease

__all__ = [
    "FINAL_WRITE_TIMEOUT",
    "MAX_MESSAGE_BYTES",
    "PROGRESS_INTERVAL",
    "ProgressReporter",
    "check_progress",
    "installed",
    "is_from_earlier_attempt",
    "report_progress",
]

log = logging.getLogger("rexecutor")

#: At most one progress write per attempt within this interval (by the library clock).
PROGRESS_INTERVAL = timedelta(seconds=1)
#: A progress message longer than this (bytes of UTF-8) is cut, the cut marked.
MAX_MESSAGE_BYTES = 1024
#: Seconds the end of an attempt waits for its last progress write before the outcome's.
FINAL_WRITE_TIMEOUT = 1.0


class _Sink(Protocol):
    """Where :func:`report_progress` hands a checked report: the node's reporter, or a child
    process's pipe to its node."""

    def offer(self, percent: float, message: str | None) -> None: ...


#: Marks a writer being started from another thread (its task is not made yet).
_STARTING: Any = object()

_current: contextvars.ContextVar[_Sink | None] = contextvars.ContextVar(
    "rexecutor_progress", default=None
)


def check_progress(percent: object, message: object = None) -> tuple[float, str | None]:
    """``percent`` as a float from 0 to 100 and ``message`` as storable text (cut at
    :data:`MAX_MESSAGE_BYTES`); ``ValidationError`` for anything else."""
    # bool is an int, but True is no percentage.
    if isinstance(percent, bool) or not isinstance(percent, numbers.Real):
        raise ValidationError(
            f"report_progress: percent must be a number from 0 to 100, got "
            f"{_text.type_name(percent)} {_text.safe_repr(percent)[:100]}"
        )
    value = float(percent)
    if not (math.isfinite(value) and 0.0 <= value <= 100.0):
        raise ValidationError(
            f"report_progress: percent must be a number from 0 to 100, got {value!r}"
        )
    if message is not None and not isinstance(message, str):
        raise ValidationError(
            f"report_progress: message must be a str or None, got {_text.type_name(message)}"
        )
    return value, None if message is None else _text.clean(message, MAX_MESSAGE_BYTES)


class _Reported:
    """What :func:`report_progress` returns: already done, and awaitable for async code."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


_DONE = _Reported()


def report_progress(percent: float, message: str | None = None) -> Awaitable[None]:
    """Record how far the job being run is: ``percent`` (0 to 100) and an optional message.

    Call it from the job's ``execute``; readers see the value as ``job.progress``
    (:class:`~rexecutor.JobProgress`) through ``get_job``, ``rexecutor jobs show`` and the
    dashboard. The report is taken at once and written in the background, at most once per
    :data:`PROGRESS_INTERVAL` (the latest value wins), so it is cheap to call in a loop. It
    never waits for the database: async code awaits it (``await report_progress(50)``),
    a plain ``def execute`` (run in a worker thread) just calls it. A job in a child process
    (``run_in_process``) reports the same way.

    Raises ``ValidationError`` when ``percent`` is not a number from 0 to 100 (NaN and bools
    are refused) or ``message`` is not a str (a long one is cut at :data:`MAX_MESSAGE_BYTES`),
    and ``ConfigurationError`` when no job is being run in this context (a thread the job
    started itself does not inherit it: pass ``contextvars.copy_context()`` along). A refused
    call changes nothing: the job goes on, and the last good report stays.

    Example:
        >>> async def execute(self, job):
        ...     for n, row in enumerate(rows):
        ...         await report_progress(100 * n / len(rows), message=f"row {n}")
    """
    value, text = check_progress(percent, message)
    sink = _current.get()
    if sink is None:
        raise ConfigurationError(
            "report_progress() was called outside a job: call it from an executor's execute "
            "while a node (or rexecutor.testing's drain or perform) runs the job"
        )
    sink.offer(value, text)
    return _DONE


class installed:  # lower case: it is used as a function, ``with installed(sink):``
    """Make ``sink`` receive the reports of the code run inside the ``with`` block.

    A class rather than a generator context manager: it is entered once per job run.
    """

    __slots__ = ("_sink", "_token")

    def __init__(self, sink: _Sink) -> None:
        self._sink = sink

    def __enter__(self) -> None:
        self._token = _current.set(self._sink)

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)


def current() -> _Sink | None:
    """The sink reports go to in this context, if a job is being run."""
    return _current.get()


def is_from_earlier_attempt(job: Job[Any, Any]) -> bool:
    """Whether ``job.progress`` was reported before the job's last attempt started (left by
    an earlier attempt: the current one has not reported yet)."""
    progress = job.progress
    return (
        progress is not None
        and job.attempted_at is not None
        and progress.updated_at < job.attempted_at
    )


class ProgressReporter:
    """Stores the progress reports of one attempt, fenced by its lease and rate-limited.

    Made by the runner on the node's event loop for each attempt (``started_at``: the
    attempt's ``attempted_at`` as claimed); :meth:`offer` may be called from any thread. At
    most one write is in flight, and the next is not started before
    :data:`PROGRESS_INTERVAL` after the previous one began, by the library clock (so
    ``FakeClock`` moves it in tests).
    """

    def __init__(
        self,
        backend: Backend,
        job_id: int,
        lease: Lease,
        *,
        started_at: datetime | None = None,
        interval: timedelta = PROGRESS_INTERVAL,
    ) -> None:
        self._backend = backend
        self._started_at = started_at
        self._job_id = job_id
        self._lease = lease
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._pending: JobProgress | None = None
        self._closed = False
        self._writer: asyncio.Task[None] | None = None
        self._writing = False
        self._last_write: datetime | None = None
        self._complained = False

    def offer(self, percent: float, message: str | None) -> None:
        """Take a checked report (see :func:`check_progress`): it replaces the one waiting,
        and is written at once or when the interval since the last write ends."""
        now = _clock.now()
        if self._started_at is not None and now < self._started_at:
            # The claim was stamped by the backend's clock (PostgreSQL's, maybe ahead of
            # this node's): a report of this attempt must not read as older than its start.
            now = self._started_at
        progress = JobProgress(percent, message, now)
        with self._lock:
            if self._closed:
                return  # the attempt is over (e.g. a thread that outlived its timeout)
            self._pending = progress
            if self._writer is not None:
                return  # the writer running now takes it
            self._writer = _STARTING
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._start()
        else:
            try:
                self._loop.call_soon_threadsafe(self._start)
            except RuntimeError:  # the node's loop has closed: nothing can be written now
                with self._lock:
                    self._writer = None

    def _start(self) -> None:
        task = self._loop.create_task(self._write_loop(), name=f"rexecutor:progress:{self._job_id}")
        with self._lock:
            if self._writer is _STARTING:
                self._writer = task

    async def _write_loop(self) -> None:
        try:
            while not self._closed:
                if self._last_write is not None:
                    now = _clock.now()
                    # min(): a clock set back must not hold reports back for as long.
                    await _clock.sleep_until(min(self._last_write, now) + self._interval)
                with self._lock:
                    progress, self._pending = self._pending, None
                    if progress is None or self._closed:
                        self._writer = None
                        return
                    self._writing = True
                try:
                    self._last_write = _clock.now()
                    await self._store(progress)
                finally:
                    self._writing = False
            with self._lock:
                self._writer = None
        except asyncio.CancelledError:
            with self._lock:
                self._writer = None
            raise

    async def _store(self, progress: JobProgress) -> None:
        try:
            stored = await self._backend.record_progress(self._job_id, self._lease, progress)
        except JobNotFound:
            stored = False  # deleted meanwhile, or a job perform() runs without storing it
        except Exception as exc:
            # Progress is a hint; a failing write must never disturb the job.
            if not self._complained:
                self._complained = True
                log.warning(
                    "job %s: its progress could not be recorded: %s: %s",
                    self._job_id,
                    _text.type_name(exc),
                    _text.describe(exc),
                    extra={"job_id": self._job_id},
                )
            return
        if not stored:
            # The lease is stale: the job was moved on elsewhere. Nothing more is written.
            with self._lock:
                self._closed = True
                self._pending = None

    def abandon(self) -> JobProgress | None:
        """Stop taking reports; returns the one still waiting (not written). A write in
        flight finishes; a writer waiting for its interval is stopped."""
        with self._lock:
            self._closed = True
            waiting, self._pending = self._pending, None
            writer = self._writer
            writing = self._writing
        if isinstance(writer, asyncio.Task) and not writing:
            writer.cancel()
        return waiting

    async def finish(self) -> None:
        """End of the attempt: write the report still waiting (if the lease still holds),
        waiting at most :data:`FINAL_WRITE_TIMEOUT` in all, before the outcome is written."""
        waiting = self.abandon()
        writer = self._writer
        if writer is None and waiting is None:
            return  # nothing was reported (most attempts): nothing to wait for
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FINAL_WRITE_TIMEOUT
        if isinstance(writer, asyncio.Task) and not writer.done():
            # A write in flight goes first, so the last report is the one left stored.
            await asyncio.wait({writer}, timeout=FINAL_WRITE_TIMEOUT)
        if waiting is None or not (left := deadline - loop.time()) > 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._store(waiting), left)
