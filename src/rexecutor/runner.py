"""The job runner: claims ready jobs of one executor, runs them, and records the outcome.

One :class:`JobRunner` per registered executor and node. It claims in batches sized to its
free capacity, runs each job in its own task (or worker thread), and hands outcomes to an
:class:`Acker` that batches completions and retries writes while the database is away.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from rexecutor import _clock, telemetry
from rexecutor.backend import Backend, FailureRecord, Lease
from rexecutor.errors import BackendError, RexecutorError, ValidationError
from rexecutor.executor import Executor, is_async_execute
from rexecutor.job import ErrorType, Job
from rexecutor.result import ExecutionResult

log = logging.getLogger("rexecutor")

#: Jobs claimed per round trip at most, and in flight per executor when it sets no limit.
CLAIM_BATCH = 100
UNLIMITED_IN_FLIGHT = 1000
#: While completions keep arriving, the acker waits up to FLUSH_LINGER seconds for a batch of
#: FLUSH_BATCH to gather before its next write.
FLUSH_BATCH = 100
FLUSH_LINGER = 0.001


class _Abort(Exception):
    """Why the runner stopped a job: it was lost (cancelled, rescued) or the node shuts down."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Acker:
    """Writes job outcomes: completions batched, every write retried with backoff.

    Completions wait in a list that one flusher drains with ``complete_jobs``; under load the
    batch grows by itself (the flusher lingers a millisecond between writes while completions
    keep arriving), when idle a completion is written at once. A write that fails with
    a ``BackendError`` (the database is down) is retried with capped exponential backoff
    until it succeeds or the node gives up at shutdown; the pending list is bounded, and the
    jobs stay executing in the database meanwhile, so nothing is lost: at worst they are
    rescued and run again.
    """

    def __init__(self, backend: Backend, max_pending: int = 10_000) -> None:
        self._backend = backend
        self._pending: list[tuple[int, Lease]] = []
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

    async def complete(self, job_id: int, lease: Lease) -> None:
        """Queue a completion."""
        while self._unwritten >= self._max_pending:
            if self._room is None:
                self._room = asyncio.Event()
            await self._room.wait()
        self._unwritten += 1
        self._pending.append((job_id, lease))
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
                results = await self._retry(lambda b=batch: self._backend.complete_jobs(b))  # type: ignore[misc]
            finally:
                self._unwritten -= len(batch)
                room, self._room = self._room, None
                if room is not None:
                    room.set()
            for (job_id, _lease), applied in zip(batch, results or [], strict=False):
                if not applied:
                    self._stale(job_id, "complete")

    async def write(self, what: str, job_id: int, call: Callable[[], Awaitable[bool]]) -> None:
        """Run one fenced write, retried while the database is unavailable."""
        applied = await self._retry(call)
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

    async def _retry(self, call: Callable[[], Awaitable[Any]]) -> Any:
        delay = 0.05
        while True:
            try:
                return await call()
            except BackendError as exc:
                log.warning("writing a job outcome failed (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def drain(self) -> None:
        """Wait until every queued write is done."""
        while (self._flusher is not None and not self._flusher.done()) or self._pending:
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush())
            await asyncio.shield(self._flusher)


class JobRunner:
    """Runs the jobs of one executor on one node."""

    def __init__(
        self,
        executor: Executor[Any, Any],
        backend: Backend,
        node_id: str,
        acker: Acker,
        threads: ThreadPoolExecutor,
        stats: Counter[str],
        poll_interval: float,
    ) -> None:
        self.executor = executor
        self.name = executor.name
        self._backend = backend
        self._node_id = node_id
        self._acker = acker
        self._threads = threads
        self._stats = stats
        self._poll = poll_interval
        self._limit = executor.max_concurrency or UNLIMITED_IN_FLIGHT
        self._async = is_async_execute(executor) and not executor.blocking
        self.running: dict[int, tuple[asyncio.Task[None], int]] = {}
        self._aborts: dict[int, str] = {}
        self._stopping = False
        self._sub = backend.subscribe([self.name])

    # -- claiming --------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim and start jobs until :meth:`stop` is called."""
        failures = 0
        try:
            while not self._stopping:
                free = self._limit - len(self.running)
                wait = self._poll
                if free > 0:
                    want = min(free, CLAIM_BATCH)
                    try:
                        began = time.monotonic()
                        jobs = await self._backend.claim_ready_jobs(self.name, want, self._node_id)
                        failures = 0
                        if jobs and telemetry.active("claim"):
                            telemetry.emit(
                                "claim",
                                {"count": len(jobs), "duration": time.monotonic() - began},
                                {"executor": self.name, "node_id": self._node_id},
                            )
                    except BackendError as exc:
                        failures += 1
                        wait = min(0.1 * 2**failures, 10.0)
                        log.warning(
                            "claiming %s jobs failed (%s); retrying in %.1fs", self.name, exc, wait
                        )
                        jobs = []
                    if self._stopping:
                        # Claimed during shutdown: hand them back untouched.
                        await self._hand_back(jobs)
                        break
                    for job in jobs:
                        self._start(job)
                    if jobs:
                        # Let the jobs just started begin before anything else is awaited.
                        await asyncio.sleep(0)
                    if len(jobs) == want:
                        continue
                    if failures == 0:
                        wait = await self._idle_wait()
                await self._sub.wait(wait)
        finally:
            self._sub.close()

    async def _idle_wait(self) -> float:
        try:
            next_at = await self._backend.next_scheduled_at([self.name])
        except BackendError:
            return self._poll
        if next_at is None:
            return self._poll
        return max(0.0, min(self._poll, (next_at - _clock.now()).total_seconds()))

    def stop(self) -> None:
        """Stop claiming (running jobs go on)."""
        self._stopping = True
        self._sub.notify()

    def _start(self, job: Job[Any, Any]) -> None:
        task = asyncio.create_task(self._run_job(job), name=f"rexecutor:{self.name}:{job.id}")
        self.running[int(job.id)] = (task, job.attempt)

    async def _hand_back(self, jobs: list[Job[Any, Any]]) -> None:
        for job in jobs:
            lease = Lease(self._node_id, job.attempt)
            error = FailureRecord(ErrorType.SHUTDOWN, "the node shut down before the job started")
            await self._acker.write(
                "hand back",
                job.id,
                functools.partial(
                    self._backend.mark_job_snoozed, job.id, lease, timedelta(0), error
                ),
            )

    def abort(self, job_id: int, reason: str) -> None:
        """Stop a running job: ``"lost"`` (it was cancelled or rescued elsewhere: write
        nothing) or ``"shutdown"`` (hand it back without using up an attempt)."""
        entry = self.running.get(job_id)
        if entry is not None and job_id not in self._aborts:
            self._aborts[job_id] = reason
            entry[0].cancel()

    # -- executing -------------------------------------------------------------------------

    async def _run_job(self, raw: Job[Any, Any]) -> None:
        lease = Lease(self._node_id, raw.attempt)
        job_id = int(raw.id)
        delay = timedelta(0)
        if telemetry.active("job.start"):
            latency = (_clock.now() - raw.scheduled_at).total_seconds()
            telemetry.emit("job.start", {"queue_latency": latency}, self._meta(raw))
        started = time.monotonic()
        try:
            outcome, delay = await self._execute(raw)
        except asyncio.CancelledError:
            reason = self._aborts.get(job_id)
            if reason is None:
                raise
            outcome = _Abort(reason)
        finally:
            self.running.pop(job_id, None)
            self._sub.notify()  # a slot is free
        self._aborts.pop(job_id, None)
        name = await self._record(raw, lease, outcome, delay)
        if telemetry.active("job.stop") or telemetry.active("job.exception"):
            failed = isinstance(outcome, (BaseException, _Timeout))
            meta = self._meta(raw, outcome=name)
            if failed:
                meta["error"] = _failure(outcome).details
            telemetry.emit(
                "job.exception" if failed else "job.stop",
                {"duration": time.monotonic() - started},
                meta,
            )

    def _meta(self, raw: Job[Any, Any], **extra: Any) -> dict[str, Any]:
        return {
            "job_id": int(raw.id),
            "executor": self.name,
            "attempt": raw.attempt,
            "node_id": self._node_id,
            # OpenTelemetry's handler finds the enqueuing trace's context among the tags.
            "tags": list(raw.tags),
            **extra,
        }

    async def _execute(self, raw: Job[Any, Any]) -> tuple[Any, timedelta]:
        """Run one attempt; returns its result (or the exception it ended with) and the
        backoff computed before it ran, as the seed does."""
        executor = self.executor
        delay = timedelta(0)
        try:
            job = executor.decode_job(raw)
            delay = executor.backoff(job)
            limit = executor.timeout(job)
        except Exception as exc:
            return exc, delay or timedelta(seconds=4)
        call = executor.execute(job) if self._async else self._in_thread(executor, job)
        try:
            if limit is None:
                return await call, delay
            async with asyncio.timeout(limit.total_seconds()) as deadline:
                return await call, delay
        except TimeoutError as exc:
            if limit is not None and deadline.expired():
                return _Timeout(limit), delay
            return exc, delay
        except Exception as exc:
            return exc, delay

    def _in_thread(self, executor: Executor[Any, Any], job: Job[Any, Any]) -> asyncio.Future[Any]:
        ctx = contextvars.copy_context()
        if is_async_execute(executor):
            fn = functools.partial(ctx.run, _run_coroutine, executor, job)
        else:
            fn = functools.partial(ctx.run, executor.execute, job)
        return asyncio.get_running_loop().run_in_executor(self._threads, fn)

    async def _record(
        self, raw: Job[Any, Any], lease: Lease, outcome: Any, delay: timedelta
    ) -> str:
        """Write the attempt's outcome (fenced by ``lease``); returns the outcome's name."""
        backend, job_id = self._backend, int(raw.id)
        name, call = "lost", None
        if outcome is None or isinstance(outcome, ExecutionResult.Done):
            name = "complete"
        elif isinstance(outcome, ExecutionResult.Snooze):
            name = "snoozed"
            call = functools.partial(backend.mark_job_snoozed, job_id, lease, outcome.delay)
        elif isinstance(outcome, ExecutionResult.Cancel):
            name = "cancelled"
            error = FailureRecord(ErrorType.CANCELLED, str(outcome.reason))
            call = functools.partial(backend.mark_job_cancelled, job_id, lease, error)
        elif isinstance(outcome, _Abort):
            if outcome.reason == "shutdown":
                name = "handed_back"
                error = FailureRecord(
                    ErrorType.SHUTDOWN,
                    "the node shut down before the attempt finished; "
                    "the job was handed back without using up an attempt",
                )
                call = functools.partial(
                    backend.mark_job_snoozed, job_id, lease, timedelta(0), error
                )
        else:
            error = _failure(outcome)
            context = {"job_id": job_id, "executor": self.name, "attempt": raw.attempt}
            if raw.attempt >= raw.max_attempts:
                name = "discarded"
                call = functools.partial(backend.mark_job_discarded, job_id, lease, error)
                log.error(
                    "job %s (%s) discarded after attempt %s: %s",
                    job_id,
                    self.name,
                    raw.attempt,
                    error.details,
                    extra=context,
                )
            else:
                name = "retryable"
                call = functools.partial(backend.mark_job_retryable, job_id, lease, delay, error)
                log.warning(
                    "job %s (%s) attempt %s failed, retrying in %s: %s",
                    job_id,
                    self.name,
                    raw.attempt,
                    delay,
                    error.details,
                    extra=context,
                )
        self._stats[name] += 1
        if name == "complete":
            await self._acker.complete(job_id, lease)
        elif call is not None:
            await self._acker.write(name, job_id, call)
        return name


class _Timeout:
    def __init__(self, limit: timedelta) -> None:
        self.limit = limit


def _run_coroutine(executor: Executor[Any, Any], job: Job[Any, Any]) -> Any:
    return asyncio.run(executor.execute(job))


def _failure(outcome: Any) -> FailureRecord:
    """Describe a failed attempt for the job's error list."""
    if isinstance(outcome, _Timeout):
        return FailureRecord(
            ErrorType.TIMEOUT, f"job did not complete within its timeout of {outcome.limit}"
        )
    if isinstance(outcome, ExecutionResult.Error):
        err = outcome.error
        name = getattr(err, "error_type", None) or type(err).__name__
        return FailureRecord(ErrorType.USER, str(err), name=str(name))
    if isinstance(outcome, ValidationError):
        return FailureRecord(ErrorType.INVALID_DATA, str(outcome), name="ValidationError")
    if isinstance(outcome, BaseException):
        tb = "".join(traceback.format_exception(outcome))
        return FailureRecord(
            ErrorType.EXCEPTION,
            str(outcome) or type(outcome).__name__,
            name=type(outcome).__name__,
            traceback=tb,
        )
    return FailureRecord(
        ErrorType.EXCEPTION,
        f"execute returned {outcome!r}; return an ExecutionResult or None",
        name=RexecutorError.__name__,
    )
