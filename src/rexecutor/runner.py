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
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rexecutor import _clock, _text, lifecycle, progress, telemetry
from rexecutor._acker import Acker
from rexecutor._guard import REPORTED_ERROR_BYTES, LoopGuard
from rexecutor._payload import check_result, check_result_size
from rexecutor._process import (
    TIMED_OUT,
    EncodedResult,
    ProcessPool,
    RefusedResult,
    RemoteException,
    ReturnedValue,
    within,
)
from rexecutor._retry import DISCARD
from rexecutor.backend import Backend, FailureRecord, Lease
from rexecutor.backoff import DEFAULT_BACKOFF
from rexecutor.errors import ConfigurationError, RexecutorError, ValidationError
from rexecutor.executor import Executor, is_async_execute
from rexecutor.job import ErrorType, Job
from rexecutor.lifecycle import Fence, Transition
from rexecutor.limits import ClaimReport
from rexecutor.progress import ProgressReporter
from rexecutor.result import ExecutionResult

log = logging.getLogger("rexecutor")

#: Jobs claimed per round trip at most, and in flight per executor when it sets no limit.
CLAIM_BATCH = 100
UNLIMITED_IN_FLIGHT = 1000
#: The longest a fallback outcome delays the job's next attempt.
FALLBACK_DELAY = timedelta(hours=1)
#: The retry delay of a job whose stored data no longer decodes (the default backoff's first).
UNDECODABLE_RETRY = timedelta(seconds=4)


class _Abort(Exception):
    """Why the runner stopped a job: it was lost (cancelled, rescued) or the node shuts down."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Decision:
    """What a node records for one attempt: the outcome's name and the transition to store.

    ``name`` is ``"complete"``, ``"retryable"``, ``"discarded"``, ``"snoozed"``,
    ``"cancelled"``, ``"handed_back"`` or ``"lost"`` (nothing is written: the job was
    cancelled or rescued elsewhere, so ``transition`` is ``None``).
    """

    name: str
    transition: Transition | None


@dataclass(slots=True)
class _Entry:
    task: asyncio.Task[Any]
    attempt: int
    abort: str | None = None


class RunningJobs:
    """The jobs a node runs now: one registry shared by its runners, its shutdown and its
    watch for jobs it lost (cancelled or rescued elsewhere)."""

    def __init__(self) -> None:
        self._jobs: dict[int, _Entry] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def add(self, job_id: int, attempt: int, task: asyncio.Task[Any]) -> None:
        """Register the task running ``job_id``'s attempt ``attempt``."""
        self._jobs[job_id] = _Entry(task, attempt)

    def finish(self, job_id: int) -> None:
        """Forget ``job_id``: its attempt is over."""
        self._jobs.pop(job_id, None)

    def abort_reason(self, job_id: int) -> str | None:
        """Why ``job_id`` was stopped (see :meth:`abort`), if it was."""
        entry = self._jobs.get(job_id)
        return None if entry is None else entry.abort

    def leases(self) -> dict[int, int]:
        """Job id → attempt of every running job."""
        return {job_id: entry.attempt for job_id, entry in self._jobs.items()}

    def tasks(self) -> list[asyncio.Task[Any]]:
        """The tasks running jobs now."""
        return [entry.task for entry in self._jobs.values()]

    def abort(self, job_id: int, reason: str) -> None:
        """Stop a running job: ``"lost"`` (it was cancelled or rescued elsewhere: write
        nothing) or ``"shutdown"`` (hand it back without using up an attempt)."""
        entry = self._jobs.get(job_id)
        if entry is not None and entry.abort is None:
            entry.abort = reason
            entry.task.cancel()

    def abort_all(self, reason: str) -> None:
        """Stop every running job for ``reason`` (see :meth:`abort`)."""
        for job_id in list(self._jobs):
            self.abort(job_id, reason)


class JobRunner:
    """Runs the jobs of one executor on one node.

    A job's slot is held for as long as its code runs: an attempt that timed out or was
    stopped while its worker thread goes on keeps its slot until the thread returns (see
    :meth:`_keep_slot`), and a process job's slot until its child process is gone.
    """

    def __init__(
        self,
        executor: Executor[Any, Any],
        backend: Backend,
        node_id: str,
        acker: Acker,
        threads: ThreadPoolExecutor,
        stats: Counter[str],
        poll_interval: float,
        *,
        max_error_bytes: int = _text.DEFAULT_MAX_ERROR_BYTES,
        running: RunningJobs | None = None,
    ) -> None:
        self.executor = executor
        self.name = executor.name
        self._backend = backend
        self._node_id = node_id
        self._acker = acker
        self._threads = threads
        self._stats = stats
        self._poll = poll_interval
        self._max_error_bytes = max_error_bytes
        self._limit = executor.max_concurrency or UNLIMITED_IN_FLIGHT
        declared = type(executor).claim_limits()
        #: The executor's cross-node limits, enforced by the backend's claim (None: none).
        self.limits = declared if declared.any else None
        if self.limits is not None:
            acker.after_write(self._wake)
        #: Due jobs a limit held back since the node last reported them (telemetry).
        self.held_back = 0
        self._processes: ProcessPool | None = None
        if executor.run_in_process:
            size = executor.max_concurrency or os.cpu_count() or 2
            self._processes = ProcessPool(size, max_error_bytes)
        self._async = is_async_execute(executor) and not executor.blocking
        #: The node's registry of running jobs (this runner's and its other runners').
        self.registry = RunningJobs() if running is None else running
        self._mine: set[int] = set()
        #: Worker threads still running attempts that are over (timed out or stopped).
        self.zombies: dict[int, asyncio.Future[Any]] = {}
        self._stopping = False
        self._sub = backend.subscribe([self.name])

    @property
    def running(self) -> frozenset[int]:
        """Ids of the jobs this runner runs now."""
        return frozenset(self._mine)

    @property
    def busy(self) -> int:
        """Slots taken: running attempts and threads of attempts that are over."""
        return len(self._mine) + len(self.zombies)

    # -- claiming --------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim and start jobs until :meth:`stop` is called; a failing round is backed off."""
        guard = LoopGuard("claiming jobs", executor=self.name, node_id=self._node_id)
        try:
            while not self._stopping:
                try:
                    wait = await self._claim_round()
                    guard.succeeded()
                except Exception as exc:
                    wait = guard.failed(exc)
                if wait is not None:
                    await self._sub.wait(wait)
        finally:
            self._sub.close()
            if self._processes is not None:
                await self._processes.close()

    async def _claim_round(self) -> float | None:
        """Claim and start what fits; returns how long to wait (None: claim again now)."""
        free = self._limit - self.busy
        if free <= 0:
            return self._poll
        want = min(free, CLAIM_BATCH)
        began = time.monotonic()
        report = ClaimReport()
        jobs = await self._backend.claim_ready_jobs(
            self.name, want, self._node_id, limits=self.limits, report=report
        )
        self.held_back += report.held
        if jobs and telemetry.active("claim"):
            telemetry.emit(
                "claim",
                {"count": len(jobs), "duration": time.monotonic() - began},
                {"executor": self.name, "node_id": self._node_id},
            )
        if self._stopping:
            # Claimed during shutdown: hand them back untouched.
            await self._hand_back(jobs)
            return 0.0
        for job in jobs:
            self._start(job)
        if jobs:
            # Let the jobs just started begin before anything else is awaited.
            await asyncio.sleep(0)
        if len(jobs) == want:
            return None
        if report.paused or report.limited:
            # Due jobs are there but may not start yet: claiming again at once would spin.
            return self._poll
        return await self._idle_wait()

    async def _idle_wait(self) -> float:
        try:
            next_at = await self._backend.next_scheduled_at([self.name])
        except Exception:
            # Only a hint for how long to sleep: whatever went wrong, poll as usual rather
            # than let it stop claims (the claim itself reports its own failures).
            log.debug("next_scheduled_at(%s) failed", self.name, exc_info=True)
            return self._poll
        if next_at is None:
            return self._poll
        return max(0.0, min(self._poll, (next_at - _clock.now()).total_seconds()))

    def scale(self, max_concurrency: int | None) -> None:
        """Run at most ``max_concurrency`` jobs at once from now on (None: the class's own);
        running jobs beyond a lowered limit finish, and no new one starts until below it."""
        before = self._limit
        self._limit = max_concurrency or self.executor.max_concurrency or UNLIMITED_IN_FLIGHT
        if self._limit > before:
            self._sub.notify()

    @property
    def max_concurrency(self) -> int | None:
        """The per-node limit in force (None: none)."""
        return None if self._limit == UNLIMITED_IN_FLIGHT else self._limit

    def _wake(self) -> None:
        self._sub.notify()

    def stop(self) -> None:
        """Stop claiming (running jobs go on)."""
        self._stopping = True
        self._sub.notify()

    async def close(self) -> None:
        """Stop claiming and release what the runner holds (its wake-up subscription, its
        worker processes); for a runner whose :meth:`run` loop never ran, or has ended."""
        self.stop()
        await self.run()  # returns at once when stopped, running its clean-up

    def _start(self, job: Job[Any, Any]) -> None:
        job_id = int(job.id)
        task = asyncio.create_task(self.run_claimed(job), name=f"rexecutor:{self.name}:{job_id}")
        self._mine.add(job_id)
        self.registry.add(job_id, job.attempt, task)

    async def _hand_back(self, jobs: list[Job[Any, Any]]) -> None:
        for job in jobs:
            handed = lifecycle.handed_back(job.attempt, "the node shut down before the job started")
            await self._write(job, Decision("hand back", handed), timedelta(0))

    # -- executing -------------------------------------------------------------------------

    async def run_claimed(self, raw: Job[Any, Any]) -> str:
        """Run one attempt of a job this runner's node claimed, then record its outcome as
        the lifecycle decides; returns the outcome's name (see :class:`Decision`)."""
        lease = Lease(self._node_id, raw.attempt)
        job_id = int(raw.id)
        started = time.monotonic()
        name, outcome, failure = "lost", None, None
        # The end event is emitted whatever happens below, so that a tracing span opened by
        # job.start is always closed.
        try:
            if telemetry.active("job.start"):
                latency = (_clock.now() - raw.scheduled_at).total_seconds()
                telemetry.emit("job.start", {"queue_latency": latency}, self._meta(raw))
            try:
                attempt = await self.run_attempt(raw)
            except asyncio.CancelledError:
                reason = self.registry.abort_reason(job_id)
                if reason is None:
                    raise
                attempt = Attempt(_Abort(reason))
            finally:
                self.registry.finish(job_id)
                self._mine.discard(job_id)
                self._sub.notify()  # a slot may be free
            outcome = attempt.outcome
            failure = self._failure(outcome)
            name = await self._record(raw, lease, self.decide(raw, attempt, failure))
        finally:
            self._emit_end(raw, started, name, outcome, failure)
        return name

    def _emit_end(
        self,
        raw: Job[Any, Any],
        started: float,
        name: str,
        outcome: Any,
        failure: FailureRecord | None,
    ) -> None:
        raised = isinstance(outcome, (BaseException, _Timeout))
        event = "job.exception" if raised else "job.stop"
        if not telemetry.active(event):
            return
        meta = self._meta(raw, outcome=name)
        if raised and failure is not None:
            meta["error"] = failure.details
        telemetry.emit(event, {"duration": time.monotonic() - started}, meta)

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

    async def run_attempt(self, raw: Job[Any, Any]) -> Attempt:
        """Run one attempt of ``raw`` and record nothing but its progress reports; returns how
        it ended (the backoff is :meth:`decide`'s, once the error is known).

        While it runs, ``rexecutor.report_progress`` reports to this attempt (fenced by its
        lease); a report still waiting when it ends is written before this returns, and one
        of an attempt that was stopped is dropped.
        """
        lease = Lease(self._node_id, raw.attempt)
        reporter = ProgressReporter(self._backend, int(raw.id), lease, started_at=raw.attempted_at)
        try:
            with progress.installed(reporter):
                attempt = await self._attempt(raw)
        except BaseException:
            reporter.abandon()
            raise
        await reporter.finish()
        return attempt

    async def _attempt(self, raw: Job[Any, Any]) -> Attempt:
        executor = self.executor
        job: Job[Any, Any] | None = None
        try:
            job = executor.decode_job(raw)
            limit = executor.timeout(job)
            seconds = None if limit is None else limit.total_seconds()
        except Exception as exc:
            return Attempt(exc, job)
        previous = self.zombies.get(int(raw.id))
        if previous is not None:
            # This job's previous attempt still runs in its thread: never run it twice at once.
            await asyncio.wait({previous})
        try:
            if self._processes is not None:
                result = await self._processes.run(executor, raw, seconds)
            elif self._async:
                result = await within(executor.execute(job), seconds)
            else:
                result = await self._in_thread(int(raw.id), job, seconds)
        except Exception as exc:
            return Attempt(exc, job, by_execute=True)
        if result is TIMED_OUT:
            assert limit is not None
            return Attempt(_Timeout(limit), job)
        if isinstance(result, ExecutionResult.Snooze):
            try:
                _storable_delay(result.delay, "the snooze")
            except RexecutorError as exc:
                return Attempt(exc, job)
        if isinstance(result, ExecutionResult.Done) and result.result is not None:
            try:
                encoded = self._encode_result(result.result)
            except Exception as exc:
                # rexecutor's check, not execute's failure: the retry policy does not apply,
                # the attempt fails and is retried (or discarded) as usual.
                return Attempt(_Unstorable(exc), job)
            return Attempt(result, job, by_execute=True, result=encoded)
        # A child's exception comes back as a value, a RemoteException: execute's, too.
        return Attempt(result, job, by_execute=True)

    def _encode_result(self, value: Any) -> str | None:
        """The JSON text to store for ``ExecutionResult.Done(value)``: dumped through the
        executor's ``result_type``, checked by the payload rule and against the backend's
        ``max_payload_bytes`` (None when it dumps to JSON null: no result)."""
        limit = self._backend.max_payload_bytes
        if isinstance(value, RefusedResult):  # the child could not encode it
            raise (ConfigurationError if value.unusable_type else ValidationError)(value.message)
        if isinstance(value, EncodedResult):  # dumped and checked in the child already
            text = check_result_size(value.text, self.name, limit)
        else:
            text = check_result(self.executor.encode_result(value), self.name, limit)
        return None if text == "null" else text

    async def _in_thread(self, job_id: int, job: Job[Any, Any], seconds: float | None) -> Any:
        """Run ``execute`` in a worker thread; the time limit counts from when it starts."""
        executor = self.executor
        loop = asyncio.get_running_loop()
        began: asyncio.Future[None] = loop.create_future()

        def attempt() -> Any:
            loop.call_soon_threadsafe(_resolve, began)
            if is_async_execute(executor):
                return asyncio.run(executor.execute(job))
            return executor.execute(job)

        future = self._threads.submit(contextvars.copy_context().run, attempt)
        done = asyncio.wrap_future(future)
        try:
            # asyncio.wait never cancels what it waits for: a cancel of this task leaves the
            # thread's future alone, to be tracked below.
            await asyncio.wait({began, done}, return_when=asyncio.FIRST_COMPLETED)
            if not done.done():
                await asyncio.wait({done}, timeout=seconds)
        except asyncio.CancelledError:
            if not future.cancel():  # it had started: its thread cannot be stopped
                self._keep_slot(job_id, done)
            raise
        if not done.done():
            self._keep_slot(job_id, done)
            return TIMED_OUT
        return done.result()

    def _keep_slot(self, job_id: int, done: asyncio.Future[Any]) -> None:
        """Hold the slot of an attempt that is over while its thread still runs.

        Python cannot stop a thread; until it returns, the executor's limit counts it, and
        the job is not run again on this node (``run_attempt`` waits for it). Executors whose
        work must be stoppable use ``run_in_process``.
        """
        self.zombies[job_id] = done
        log.warning(
            "job %s (%s): its attempt is over but its thread still runs; its slot stays "
            "taken until the thread returns",
            job_id,
            self.name,
            extra={"job_id": job_id, "executor": self.name},
        )
        done.add_done_callback(functools.partial(self._thread_ended, job_id))

    def _thread_ended(self, job_id: int, done: asyncio.Future[Any]) -> None:
        if self.zombies.get(job_id) is done:
            del self.zombies[job_id]
        if not done.cancelled():
            done.exception()  # the attempt's outcome is already recorded; nothing to report
        log.info("job %s (%s): the thread of its earlier attempt has returned", job_id, self.name)
        self._sub.notify()

    def _failure(self, outcome: Any) -> FailureRecord | None:
        """The error entry an attempt that ended with ``outcome`` adds, if any."""
        limit = self._max_error_bytes
        if outcome is None or isinstance(
            outcome, (ExecutionResult.Done, ExecutionResult.Snooze, _Abort)
        ):
            return None
        if isinstance(outcome, ExecutionResult.Cancel):
            return FailureRecord(
                ErrorType.CANCELLED, _text.describe(outcome.reason), max_bytes=limit
            )
        return failure_record(outcome, limit)

    def decide(
        self,
        raw: Job[Any, Any],
        attempt: Attempt,
        failure: FailureRecord | None = None,
    ) -> Decision:
        """What a node records for an attempt of ``raw`` that ended as ``attempt`` says (as
        :meth:`run_attempt` returns it); the lifecycle decides.

        A failed attempt is where the executor's retry policy applies: an exception of
        execute's in ``discard_on`` discards the job, one in ``snooze_on`` snoozes it with the
        error recorded; any other failure uses the attempt and, when a retry follows, waits
        for the backoff, which is computed here with the error.
        """
        outcome = attempt.outcome
        if failure is None:
            failure = self._failure(outcome)
        if outcome is None or isinstance(outcome, ExecutionResult.Done):
            return Decision("complete", lifecycle.completed(attempt.result))
        if isinstance(outcome, ExecutionResult.Snooze):
            return Decision("snoozed", lifecycle.snoozed(raw.attempt, outcome.delay))
        if isinstance(outcome, _Abort):
            if outcome.reason != "shutdown":
                return Decision("lost", None)
            detail = (
                "the node shut down before the attempt finished; "
                "the job was handed back without using up an attempt"
            )
            return Decision("handed_back", lifecycle.handed_back(raw.attempt, detail))
        assert failure is not None
        if isinstance(outcome, ExecutionResult.Cancel):
            return Decision("cancelled", lifecycle.cancelled(failure))
        error = _error_of(outcome)
        policy = self.executor._retry_policy
        reaction = policy.reaction(error) if attempt.by_execute and error is not None else None
        if isinstance(reaction, timedelta):
            return Decision("snoozed", lifecycle.snoozed(raw.attempt, reaction, failure))
        if reaction is DISCARD:
            return Decision("discarded", lifecycle.discarded(failure))
        delay = lifecycle.NOW
        if lifecycle.retry_follows(raw.attempt, raw.max_attempts):
            delay = self._backoff(raw, attempt.job, error)
        transition = lifecycle.failed(raw.attempt, raw.max_attempts, delay, failure)
        return Decision(transition.status.value, transition)

    def _backoff(
        self, raw: Job[Any, Any], job: Job[Any, Any] | None, error: BaseException | None
    ) -> timedelta:
        """The executor's backoff after a failed attempt; when it cannot give one (it raised,
        or gave a delay that cannot be stored), the default, so the job still retries and the
        attempt's own error stays the one recorded."""
        if job is None:
            # The data no longer decodes, so there is no typed job to hand the backoff.
            return UNDECODABLE_RETRY
        try:
            return _storable_delay(
                self.executor._retry_policy.backoff(self.executor, job, error), "the backoff"
            )
        except Exception:
            log.error(
                "job %s (%s): its executor's backoff failed; retrying after the default backoff",
                int(raw.id),
                self.name,
                exc_info=True,
                extra={"job_id": int(raw.id), "executor": self.name},
            )
            return DEFAULT_BACKOFF.backoff(raw.attempt)

    async def _record(self, raw: Job[Any, Any], lease: Lease, decision: Decision) -> str:
        """Write the decided outcome (fenced by ``lease``); returns the outcome's name."""
        job_id, name, transition = int(raw.id), decision.name, decision.transition
        self._stats[name] += 1
        if transition is None:
            return name
        if name == "complete":
            await self._acker.complete(job_id, lease, transition.result)
            return name
        if transition.error is not None and name in ("retryable", "discarded"):
            context = {"job_id": job_id, "executor": self.name, "attempt": raw.attempt}
            if name == "discarded":
                log.error(
                    "job %s (%s) discarded after attempt %s: %s",
                    job_id,
                    self.name,
                    raw.attempt,
                    transition.error.details,
                    extra=context,
                )
            else:
                log.warning(
                    "job %s (%s) attempt %s failed, retrying in %s: %s",
                    job_id,
                    self.name,
                    raw.attempt,
                    transition.run_in,
                    transition.error.details,
                    extra=context,
                )
        elif transition.error is not None and name == "snoozed":
            log.info(
                "job %s (%s) attempt %s failed with an error its executor snoozes on; "
                "running again in %s: %s",
                job_id,
                self.name,
                raw.attempt,
                transition.run_in,
                transition.error.details,
                extra={"job_id": job_id, "executor": self.name, "attempt": raw.attempt},
            )
        await self._write(raw, decision, transition.run_in or timedelta(0))
        return name

    async def _write(self, raw: Job[Any, Any], decision: Decision, delay: timedelta) -> None:
        """Write a decided outcome; when the backend keeps refusing it, write a fallback.

        The fallback (an error naming the failed write: retryable, or discarded on the last
        attempt, or cancelled for a cancel) means the job never stays executing because its
        outcome could not be stored.
        """
        job_id, name = int(raw.id), decision.name
        fence = Fence.held(Lease(self._node_id, raw.attempt))
        apply = self._backend.apply_transition
        assert decision.transition is not None
        try:
            await self._acker.write(
                name, job_id, functools.partial(apply, job_id, fence, decision.transition)
            )
            return
        except Exception as exc:
            failed = exc
        error = FailureRecord(
            ErrorType.EXCEPTION,
            f"the attempt's outcome ({name}) could not be recorded: "
            f"{_text.type_name(failed)}: {_text.describe(failed)}",
            name=_text.type_name(failed),
            max_bytes=REPORTED_ERROR_BYTES,
        )
        if name == "cancelled":
            fallback = lifecycle.cancelled(error)
        else:
            again = min(max(delay, timedelta(0)), FALLBACK_DELAY)
            fallback = lifecycle.failed(raw.attempt, raw.max_attempts, again, error)
        log.error(
            "job %s (%s): recording its outcome (%s) failed; recording this instead: %s",
            job_id,
            self.name,
            name,
            error.details,
            exc_info=failed,
            extra={"job_id": job_id, "executor": self.name},
        )
        try:
            await self._acker.write(
                f"fallback for {name}", job_id, functools.partial(apply, job_id, fence, fallback)
            )
        except Exception:
            log.exception(
                "job %s (%s): the fallback outcome could not be recorded either",
                job_id,
                self.name,
                extra={"job_id": job_id, "executor": self.name},
            )


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one attempt ended, as :meth:`JobRunner.run_attempt` returns it to
    :meth:`JobRunner.decide`.

    ``outcome`` is what ``execute`` returned (``None`` included), the exception the attempt
    ended with, or a marker of a timeout or a stop. ``job`` is the job as decoded for
    ``execute`` (``None`` when its data no longer decodes). ``by_execute`` says the outcome
    came from the job's own code, not from rexecutor's checks around it (decoding, the
    ``timeout`` hook, an unstorable snooze or result): only then does the retry policy
    apply. ``result`` is the JSON text of a ``Done(result)``'s result, ready to store.
    """

    outcome: Any
    job: Job[Any, Any] | None = None
    by_execute: bool = False
    result: str | None = None


def _error_of(outcome: Any) -> BaseException | None:
    """The exception a failed attempt ended with: raised, or carried by
    ``ExecutionResult.Error``; ``None`` for a timeout or an error that is no exception."""
    if isinstance(outcome, ExecutionResult.Error | _Unstorable):
        outcome = outcome.error
    return outcome if isinstance(outcome, BaseException) else None


class _Timeout:
    def __init__(self, limit: timedelta) -> None:
        self.limit = limit


class _Unstorable:
    """An attempt that returned ``Done(result)`` with a result that cannot be stored (not
    JSON, not of the executor's ``result_type``, over the size limit): ``error`` says why."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _storable_delay(delay: timedelta, what: str) -> timedelta:
    """``delay``, checked to give a time that can be stored (raises ``RexecutorError``)."""
    try:
        _clock.now() + delay
    except (OverflowError, TypeError) as exc:
        raise RexecutorError(
            f"{what} delay {_text.safe_repr(delay)} cannot be used: the job's next run would "
            "not be a storable time (it must be a timedelta ending before the year 10000)"
        ) from exc
    return delay


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def failure_record(outcome: Any, max_bytes: int = _text.DEFAULT_MAX_ERROR_BYTES) -> FailureRecord:
    """Describe a failed attempt for the job's error list; never raises."""
    if isinstance(outcome, _Timeout):
        return FailureRecord(
            ErrorType.TIMEOUT,
            f"job did not complete within its timeout of {outcome.limit}",
            max_bytes=max_bytes,
        )
    if isinstance(outcome, ExecutionResult.Error):
        err = outcome.error
        try:
            name = getattr(err, "error_type", None) or _text.type_name(err)
        except Exception:
            name = _text.type_name(err)
        return FailureRecord(
            ErrorType.USER, _text.describe(err), name=_text.describe(name), max_bytes=max_bytes
        )
    if isinstance(outcome, _Unstorable):
        return FailureRecord(
            ErrorType.EXCEPTION,
            f"execute returned a result that cannot be stored: {_text.describe(outcome.error)}",
            name=_text.type_name(outcome.error),
            max_bytes=max_bytes,
        )
    if isinstance(outcome, RemoteException):
        return FailureRecord(
            ErrorType.EXCEPTION,
            outcome.message or outcome.type_name,
            name=outcome.type_name,
            traceback=outcome.traceback_text,
            max_bytes=max_bytes,
        )
    if isinstance(outcome, ValidationError):
        return FailureRecord(
            ErrorType.INVALID_DATA,
            _text.describe(outcome),
            name="ValidationError",
            max_bytes=max_bytes,
        )
    if isinstance(outcome, BaseException):
        return FailureRecord(
            ErrorType.EXCEPTION,
            _text.describe(outcome) or _text.type_name(outcome),
            name=_text.type_name(outcome),
            traceback=_text.format_traceback(outcome),
            max_bytes=max_bytes,
        )
    shown = outcome.text if isinstance(outcome, ReturnedValue) else _text.safe_repr(outcome)
    return FailureRecord(
        ErrorType.EXCEPTION,
        f"execute returned {shown}; return an ExecutionResult or None (to keep a value as "
        "the job's result, return ExecutionResult.Done(result))",
        name=RexecutorError.__name__,
        max_bytes=max_bytes,
    )
