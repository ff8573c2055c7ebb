"""Waiting for jobs to finish: the one place ``wait_for_job`` is decided.

Every caller of :func:`wait_for_job` on a backend (and event loop) joins one registry: a map
of job id to the callers waiting for it, and ONE subscription to the backend's "jobs
finished" notifications (``Wakeups.subscribe_finished``), however many callers wait. Each
wake-up re-reads, in one query (``IdIn``, in chunks), the waited jobs it may concern (the ids
it names, or all of them when it names none) and hands every terminal job to its waiters. A
new waiter's own job is read the same way: registering it notifies the subscription with its
id, so a job that already finished returns at once and an unknown id raises ``JobNotFound``
at once, and no completion can fall between the read and the wait.

Notifications come from the backends themselves (in process on every backend; from other
processes through PostgreSQL's NOTIFY and SQLite's commit watcher). Nothing polls busily; a
slow safety re-check of every waited job, every :data:`SAFETY_RECHECK` seconds, covers a
notification that was lost (a dropped connection, a write by code that announces nothing).

Timeouts follow the library clock (``rexecutor._clock``), so a test clock moves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from rexecutor import _clock
from rexecutor._notify import FinishedSubscription
from rexecutor.backend import Backend
from rexecutor.errors import ConfigurationError, JobNotFound
from rexecutor.job import Job
from rexecutor.query import IdIn

__all__ = ["SAFETY_RECHECK", "wait_for_job"]

logger = logging.getLogger("rexecutor.waiting")

#: Seconds between re-reads of every waited job when no notification came: a slow net for a
#: lost notification, not the way waiters normally learn.
SAFETY_RECHECK: Final = 5.0
#: Seconds before a round that failed to read the jobs is tried again.
_RETRY_DELAY: Final = 1.0
#: Ids per query (every backend takes this many in one ``IdIn``).
_CHUNK: Final = 500


@dataclass(eq=False)
class _Waiter:
    """One caller: its result, and whether its job has been read since it registered."""

    result: asyncio.Future[Job[Any, Any]]
    checked: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _Registry:
    """The waiters of one backend on one event loop, and the task that serves them."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._waiting: dict[int, list[_Waiter]] = {}
        self._sub: FinishedSubscription | None = None
        self._task: asyncio.Task[None] | None = None

    def add(self, job_id: int) -> _Waiter:
        """Register a waiter for ``job_id``; its job is read in the next round."""
        waiter = _Waiter(asyncio.get_running_loop().create_future())
        self._waiting.setdefault(job_id, []).append(waiter)
        if self._sub is None:
            self._sub = self._backend.wakeups.subscribe_finished()
            self._task = asyncio.get_running_loop().create_task(
                self._serve(self._sub), name="rexecutor-wait-for-jobs"
            )
        self._sub.notify([job_id])  # read it now: it may have finished already
        return waiter

    def remove(self, job_id: int, waiter: _Waiter) -> None:
        """Forget ``waiter``; the last one out ends the subscription and its task."""
        waiters = self._waiting.get(job_id)
        if waiters is not None:
            with contextlib.suppress(ValueError):
                waiters.remove(waiter)
            if not waiters:
                del self._waiting[job_id]
        if not waiter.result.done():
            waiter.result.cancel()
        if not self._waiting and self._sub is not None:
            sub, self._sub = self._sub, None
            task, self._task = self._task, None
            sub.close()
            if task is not None:
                task.cancel()

    async def _serve(self, sub: FinishedSubscription) -> None:
        while True:
            await sub.wait(SAFETY_RECHECK)
            ids, unknown = sub.take()
            # No ids and nothing unknown: the safety re-check, which looks at every job.
            wanted = set(self._waiting) if unknown or not ids else ids & self._waiting.keys()
            if not wanted:
                continue
            try:
                found = await self._read(sorted(wanted))
            except Exception as exc:
                logger.warning(
                    "rexecutor: could not read %d waited job(s) (%s); trying again in %.0f s",
                    len(wanted),
                    exc,
                    _RETRY_DELAY,
                )
                self._settle(wanted, None)
                await asyncio.sleep(_RETRY_DELAY)
                sub.notify(wanted)
                continue
            self._settle(wanted, found)

    async def _read(self, ids: list[int]) -> dict[int, Job[Any, Any]]:
        found: dict[int, Job[Any, Any]] = {}
        for start in range(0, len(ids), _CHUNK):
            for job in await self._backend.query(IdIn(tuple(ids[start : start + _CHUNK]))):
                found[int(job.id)] = job
        return found

    def _settle(self, wanted: set[int], found: dict[int, Job[Any, Any]] | None) -> None:
        """Hand each terminal (or missing) job to its waiters; ``found=None``: the read
        failed, and the waiters only learn that their job was looked for."""
        for job_id in wanted:
            waiters = self._waiting.get(job_id)
            if not waiters:
                continue
            for waiter in waiters:
                if not waiter.checked.done():
                    waiter.checked.set_result(None)
            if found is None:
                continue
            job = found.get(job_id)
            if job is not None and not job.status.is_terminal:
                continue
            del self._waiting[job_id]
            for waiter in waiters:
                if waiter.result.done():
                    continue
                if job is None:
                    waiter.result.set_exception(JobNotFound(job_id))
                else:
                    waiter.result.set_result(job)


_REGISTRIES: weakref.WeakKeyDictionary[
    Backend, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Registry]
] = weakref.WeakKeyDictionary()


def _registry(backend: Backend) -> _Registry:
    loops = _REGISTRIES.get(backend)
    if loops is None:
        loops = _REGISTRIES[backend] = weakref.WeakKeyDictionary()
    loop = asyncio.get_running_loop()
    registry = loops.get(loop)
    if registry is None:
        registry = loops[loop] = _Registry(backend)
    return registry


def check_timeout(timeout: object) -> timedelta | None:
    """``timeout`` of a wait, or ``ConfigurationError`` unless it is a non-negative
    ``timedelta`` or None (wait for as long as it takes)."""
    if timeout is None:
        return None
    if not isinstance(timeout, timedelta):
        raise ConfigurationError(
            f"timeout must be a datetime.timedelta or None, got {type(timeout).__name__}"
        )
    if timeout < timedelta(0):
        raise ConfigurationError(f"timeout must not be negative, got {timeout}")
    return timeout


async def wait_for_job(
    backend: Backend, job_id: int, timeout: timedelta | None = None
) -> Job[Any, Any]:
    """The job with ``job_id`` once it is complete, discarded or cancelled (as stored).

    Raises ``JobNotFound`` at once for an unknown id, and the builtin ``TimeoutError`` when
    ``timeout`` (by the library clock; None: no limit) passes first; the job is always read
    at least once, so one that already finished is returned even with a zero timeout.
    """
    limit = check_timeout(timeout)
    job_id = int(job_id)
    registry = _registry(backend)
    waiter = registry.add(job_id)
    try:
        if limit is None:
            return await waiter.result
        deadline = _clock.now() + limit
        sleeper = asyncio.ensure_future(_clock.sleep_until(deadline))
        try:
            either: set[asyncio.Future[Any]] = {waiter.result, sleeper}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not waiter.result.done():
                # Time is up; but a job not yet read since this call began is read first.
                either = {waiter.result, waiter.checked}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
        if waiter.result.done():
            return waiter.result.result()
        raise TimeoutError(f"job {job_id} did not finish within {limit}")
    finally:
        registry.remove(job_id, waiter)
