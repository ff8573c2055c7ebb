"""The acker: writes the outcomes a node's runners decided, completions batched."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rexecutor import _text, lifecycle
from rexecutor._guard import LoopGuard
from rexecutor.backend import Backend, Completion, Lease
from rexecutor.errors import BackendError
from rexecutor.lifecycle import Fence

log = logging.getLogger("rexecutor")

#: While completions keep arriving, the acker waits up to FLUSH_LINGER seconds for a batch of
#: FLUSH_BATCH to gather before its next write.
FLUSH_BATCH = 100
FLUSH_LINGER = 0.001
#: Tries of an outcome write that fails with something else than ``BackendError``.
UNEXPECTED_WRITE_TRIES = 3


class Acker:
    """Writes job outcomes: completions batched, every write retried with backoff.

    Completions wait in a list that one flusher drains with ``complete_jobs``; under load the
    batch grows by itself (the flusher lingers a millisecond between writes while completions
    keep arriving), when idle a completion is written at once. A write that fails with
    a ``BackendError`` (the database is down) is retried with capped exponential backoff
    until it succeeds or the node gives up at shutdown; the pending list is bounded, and the
    jobs stay executing in the database meanwhile, so nothing is lost: at worst they are
    rescued and run again. Any other exception is retried ``UNEXPECTED_WRITE_TRIES`` times in
    all, then raised to the caller, which records a fallback outcome instead.
    """

    def __init__(self, backend: Backend, max_pending: int = 10_000) -> None:
        self._backend = backend
        self._pending: list[Completion] = []
        self._flusher: asyncio.Task[None] | None = None
        # Completions queued or being written, bounded by max_pending. A plain counter and one
        # event that wakes every waiter when a batch is written: asyncio.Semaphore wakes its
        # waiters one release at a time, scanning its queue each time, which costs time
        # quadratic in the backlog once the bound is reached.
        self._max_pending = max_pending
        self._unwritten = 0
        self._room: asyncio.Event | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self.stale = 0
        self._after_write: list[Callable[[], None]] = []

    def after_write(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time a batch of completions has been written (a limited
        runner claims again then: until the write, its finished jobs still count as
        executing)."""
        self._after_write.append(callback)

    async def complete(self, job_id: int, lease: Lease, result: str | None = None) -> None:
        """Queue a completion, with the job's result (its JSON text; None: none)."""
        while self._unwritten >= self._max_pending:
            if self._room is None:
                self._room = asyncio.Event()
            await self._room.wait()
        self._unwritten += 1
        self._pending.append(Completion(job_id, lease, result))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        busy = False
        while self._pending:
            if busy and len(self._pending) < FLUSH_BATCH:
                # Completions keep coming: let more gather for a moment, so that a busy node
                # writes them in fewer, larger statements. After an idle spell the first
                # completion is written at once.
                await asyncio.sleep(FLUSH_LINGER)
            busy = True
            batch, self._pending = self._pending, []
            try:
                results = await self._complete_batch(batch)
            finally:
                self._unwritten -= len(batch)
                room, self._room = self._room, None
                if room is not None:
                    room.set()
            for callback in self._after_write:
                callback()
            for item, applied in zip(batch, results, strict=False):
                if not applied:
                    self._stale(item.job_id, "complete")

    async def _complete_batch(self, batch: list[Completion]) -> list[bool]:
        try:
            results: list[bool] = await self._retry(
                functools.partial(self._backend.complete_jobs, batch), what="complete"
            )
            return results
        except Exception as exc:
            # One completion of the batch may be what the backend chokes on: write them one
            # by one, so that the others are recorded.
            log.warning(
                "completing %d jobs in one write failed (%s); writing them one by one",
                len(batch),
                _text.type_name(exc),
            )
        applied: list[bool] = []
        for job_id, lease, result in batch:
            try:
                call = functools.partial(
                    self._backend.apply_transition,
                    job_id,
                    Fence.held(lease),
                    lifecycle.completed(result),
                )
                applied.append(await self._retry(call, what="complete", job_id=job_id))
            except Exception:
                log.error(
                    "job %s: its completion could not be recorded; it stays executing",
                    job_id,
                    extra={"job_id": job_id},
                )
                applied.append(True)  # not stale: the error above says what happened
        return applied

    async def write(self, what: str, job_id: int, call: Callable[[], Awaitable[bool]]) -> None:
        """Run one fenced write, retried while the database is unavailable.

        Raises what the backend raised when the write keeps failing for another reason than
        an unavailable database (the caller records a fallback outcome).
        """
        applied = await self._retry(call, what=what, job_id=job_id)
        if applied is False:
            self._stale(job_id, what)

    def _stale(self, job_id: int, what: str) -> None:
        self.stale += 1
        log.info(
            "job %s: %s not recorded, the job is no longer held by this node "
            "(cancelled or rescued meanwhile)",
            job_id,
            what,
            extra={"job_id": job_id},
        )

    async def _retry(self, call: Callable[[], Awaitable[Any]], **about: Any) -> Any:
        guard = LoopGuard("writing a job outcome", first=0.05, cap=5.0, **about)
        unexpected = 0
        while True:
            try:
                return await call()
            except BackendError as exc:
                delay = guard.failed(exc)
            except Exception as exc:
                unexpected += 1
                if unexpected >= UNEXPECTED_WRITE_TRIES:
                    raise
                delay = guard.failed(exc)
            await asyncio.sleep(delay)

    async def drain(self) -> None:
        """Wait until every queued write is done."""
        while (self._flusher is not None and not self._flusher.done()) or self._pending:
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush())
            await asyncio.shield(self._flusher)
