"""Helpers for testing code that enqueues and runs jobs.

* :func:`assert_enqueued`, :func:`refute_enqueued` and :func:`all_enqueued` look at what is
  stored, with the same filters (a ``dict`` for data or metadata matches as a subset).
* :func:`drain` runs every ready job of some executors now, in the test's event loop, through
  the real runner, and counts the outcomes.
* :func:`perform` runs one job's ``execute`` through the runner's own code path (validation,
  results, errors) without storing anything.
* :class:`FakeClock` stands still until the test moves it; moving it fires scheduled jobs,
  retries, cron ticks, pruning and rescue windows at once.
* :func:`reset_global_backend` forgets the global backend.

The pytest plugin (:mod:`rexecutor.pytest_plugin`, registered as ``rexecutor``) adds the
``rexecutor_backend`` and ``rexecutor_clock`` fixtures. The guide is ``docs/testing.md``.

Example:
    >>> await EmailJob.builder().with_data("bob@example.com").enqueue()
    >>> await assert_enqueued(for_executor=EmailJob, with_data="bob@example.com")
    >>> assert (await drain(EmailJob)).complete == 1
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from rexecutor import _clock, _global, admin, lifecycle
from rexecutor._acker import Acker
from rexecutor._json import canonical, check_payload, to_json_value
from rexecutor._payload import DEFAULT_MAX_PAYLOAD_BYTES
from rexecutor.backend import Backend, FailureRecord, Lease, NodeInfo
from rexecutor.backends.memory import InMemoryBackend
from rexecutor.errors import ConfigurationError, ValidationError
from rexecutor.executor import Executor
from rexecutor.job import Job, JobId, JobStatus
from rexecutor.lifecycle import Fence
from rexecutor.query import And, ExecutorEquals, QueryNode, ScheduledAt, StatusIn, TagsAllOf
from rexecutor.result import ExecutionResult
from rexecutor.rexecutor import Rexecutor
from rexecutor.runner import CLAIM_BATCH, JobRunner

__all__ = [
    "DrainResult",
    "FakeClock",
    "PerformResult",
    "all_enqueued",
    "assert_enqueued",
    "drain",
    "perform",
    "refute_enqueued",
    "reset_global_backend",
    "uninstall_fake_clock",
]

D = TypeVar("D")
M = TypeVar("M")

_ANY: Any = object()

ExecutorRef = type[Executor[Any, Any]] | Executor[Any, Any] | str


def reset_global_backend() -> None:
    """Forget the global backend, so that the next test starts without one."""
    _global.set_global_backend(None)


# -- what is enqueued ------------------------------------------------------------------------


def _executor_name(executor: ExecutorRef) -> str:
    return executor if isinstance(executor, str) else executor.name


def _wanted(executor: ExecutorRef | None, value: Any, metadata: bool, partial: bool) -> Any:
    """The JSON form to compare with; a mapping matched partially is encoded key by key,
    since a subset of a model's fields would not validate as the model."""
    if partial and isinstance(value, Mapping):
        return to_json_value(dict(value), "the expected value")
    if isinstance(executor, Executor):
        executor = type(executor)
    if isinstance(executor, type) and issubclass(executor, Executor):
        try:
            return executor.encode_metadata(value) if metadata else executor.encode_data(value)
        except ValidationError:
            pass  # not a valid value of the type: then no stored job can equal it
    return to_json_value(value, "the expected value")


def _matches(stored: Any, wanted: Any, partial: bool) -> bool:
    """Whether ``stored`` equals ``wanted``; with ``partial``, a dict in ``wanted`` (at any
    depth) only needs its own keys to match."""
    if partial and isinstance(wanted, dict):
        return isinstance(stored, dict) and all(
            key in stored and _matches(stored[key], value, partial) for key, value in wanted.items()
        )
    return canonical(stored) == canonical(wanted)


async def all_enqueued(
    *,
    for_executor: ExecutorRef | None = None,
    with_data: Any = _ANY,
    with_metadata: Any = _ANY,
    tagged_with: list[str] | None = None,
    scheduled_after: datetime | None = None,
    scheduled_before: datetime | None = None,
    partial: bool = True,
    backend: Backend | None = None,
) -> list[Job[Any, Any]]:
    """Every stored job (any status) matching all the given filters, oldest first.

    ``with_data`` and ``with_metadata`` compare JSON forms. A ``dict`` matches partially:
    the stored value needs the given keys with equal values (nested dicts likewise) and may
    have more, so ``with_data={"user_id": 7}`` finds a job whose model data has a
    ``user_id`` of 7 among other fields. ``partial=False`` demands equality; any other
    value (a model instance, a string, a list) is validated with the executor's type and
    must be equal. ``tagged_with`` requires every listed tag; ``scheduled_after`` and
    ``scheduled_before`` are strict. The global backend is used unless ``backend`` is given.
    """
    target = backend if backend is not None else _global.get_global_backend()
    nodes: list[QueryNode] = []
    if for_executor is not None:
        nodes.append(ExecutorEquals(_executor_name(for_executor)))
    if tagged_with:
        nodes.append(TagsAllOf(tuple(tagged_with)))
    if scheduled_after is not None:
        nodes.append(ScheduledAt(">", scheduled_after))
    if scheduled_before is not None:
        nodes.append(ScheduledAt("<", scheduled_before))
    jobs = await target.query(And(tuple(nodes)))
    if with_data is not _ANY:
        data = _wanted(for_executor, with_data, False, partial)
        jobs = [j for j in jobs if _matches(j.data, data, partial)]
    if with_metadata is not _ANY:
        meta = _wanted(for_executor, with_metadata, True, partial)
        jobs = [j for j in jobs if _matches(j.metadata, meta, partial)]
    return jobs


def _describe(jobs: list[Job[Any, Any]]) -> str:
    if not jobs:
        return "  (no jobs)"
    lines = [
        f"  #{int(j.id)} {j.executor} [{j.status}] data={j.data!r} metadata={j.metadata!r} "
        f"tags={j.tags} scheduled_at={j.scheduled_at.isoformat()}"
        for j in jobs[:50]
    ]
    if len(jobs) > 50:
        lines.append(f"  ... and {len(jobs) - 50} more")
    return "\n".join(lines)


async def assert_enqueued(
    *,
    for_executor: ExecutorRef | None = None,
    count: int = 1,
    with_data: Any = _ANY,
    with_metadata: Any = _ANY,
    tagged_with: list[str] | None = None,
    scheduled_after: datetime | None = None,
    scheduled_before: datetime | None = None,
    partial: bool = True,
    backend: Backend | None = None,
) -> list[Job[Any, Any]]:
    """Assert that exactly ``count`` stored jobs match the filters; returns them.

    The filters are those of :func:`all_enqueued`. Raises ``AssertionError`` listing the
    matching jobs and every stored job otherwise.
    """
    target = backend if backend is not None else _global.get_global_backend()
    found = await all_enqueued(
        for_executor=for_executor,
        with_data=with_data,
        with_metadata=with_metadata,
        tagged_with=tagged_with,
        scheduled_after=scheduled_after,
        scheduled_before=scheduled_before,
        partial=partial,
        backend=target,
    )
    if len(found) != count:
        filters = {
            "for_executor": None if for_executor is None else _executor_name(for_executor),
            "with_data": with_data,
            "with_metadata": with_metadata,
            "tagged_with": tagged_with,
            "scheduled_after": scheduled_after,
            "scheduled_before": scheduled_before,
        }
        shown = ", ".join(
            f"{k}={v!r}" for k, v in filters.items() if v is not None and v is not _ANY
        )
        if not partial:
            shown += ", partial=False"
        everything = await target.query(And(()))
        raise AssertionError(
            f"expected {count} enqueued job(s) matching {shown or 'no filters'}, "
            f"found {len(found)}:\n{_describe(found)}\nall enqueued jobs:\n{_describe(everything)}"
        )
    return found


async def refute_enqueued(
    *,
    for_executor: ExecutorRef | None = None,
    with_data: Any = _ANY,
    with_metadata: Any = _ANY,
    tagged_with: list[str] | None = None,
    scheduled_after: datetime | None = None,
    scheduled_before: datetime | None = None,
    partial: bool = True,
    backend: Backend | None = None,
) -> None:
    """Assert that no stored job matches the filters (those of :func:`all_enqueued`)."""
    await assert_enqueued(
        count=0,
        for_executor=for_executor,
        with_data=with_data,
        with_metadata=with_metadata,
        tagged_with=tagged_with,
        scheduled_after=scheduled_after,
        scheduled_before=scheduled_before,
        partial=partial,
        backend=backend,
    )


# -- running jobs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DrainResult:
    """How the attempts made by :func:`drain` ended, counted by outcome.

    ``complete``: finished. ``retryable``: failed, to be retried after the backoff.
    ``discarded``: failed on the last attempt, or with an exception in the executor's
    ``discard_on``. ``cancelled``: returned ``ExecutionResult.Cancel``. ``snoozed``: returned
    ``ExecutionResult.Snooze``, or failed with an exception in the executor's ``snooze_on``.
    """

    complete: int = 0
    retryable: int = 0
    discarded: int = 0
    cancelled: int = 0
    snoozed: int = 0

    @property
    def total(self) -> int:
        """Every attempt made."""
        return self.complete + self.retryable + self.discarded + self.cancelled + self.snoozed

    @property
    def failed(self) -> int:
        """Attempts that failed: retryable plus discarded."""
        return self.retryable + self.discarded


def _instances(
    targets: tuple[type[Executor[Any, Any]] | Executor[Any, Any] | Rexecutor, ...],
) -> tuple[dict[str, Executor[Any, Any]], Backend | None]:
    found: dict[str, Executor[Any, Any]] = {}
    node_backend: Backend | None = None
    for target in targets:
        if isinstance(target, Rexecutor):
            found.update(target.executors)
            node_backend = node_backend or target.backend
        elif isinstance(target, Executor):
            found[target.name] = target
        elif isinstance(target, type) and issubclass(target, Executor):
            found.setdefault(target.name, target())
        else:
            raise ConfigurationError(
                f"drain takes Executor classes or instances, or a Rexecutor; got {target!r}"
            )
    if not found:
        raise ConfigurationError("drain needs at least one executor (or a Rexecutor)")
    return found, node_backend


async def _bring_forward(backend: Backend, names: list[str]) -> None:
    """Make scheduled and retryable jobs of ``names`` due now (``rerun_job`` moves them)."""
    ready = StatusIn(tuple(sorted(JobStatus.READY)))
    for name in names:
        for job in await backend.query(And((ExecutorEquals(name), ready))):
            await admin.rerun(backend, job.id)


async def drain(
    *executors: type[Executor[Any, Any]] | Executor[Any, Any] | Rexecutor,
    backend: Backend | None = None,
    recursive: bool = False,
    with_scheduled: bool = False,
    max_rounds: int = 100,
) -> DrainResult:
    """Run every ready job of ``executors`` now, in the calling event loop; count outcomes.

    Jobs are claimed and run by the same runner code as on a node (decoding, timeouts,
    threads for blocking executors, outcome writes, telemetry), one after another in claim
    order, under a node of their own that is gone when ``drain`` returns. ``executors`` are
    classes, instances (with their dependencies) or a :class:`~rexecutor.Rexecutor`, whose
    executors and backend are used.

    Args:
        backend: where the jobs are (default: the Rexecutor's, else the global backend).
        recursive: keep going while jobs are ready, so that jobs enqueued (or retried with
            no delay) by the jobs that ran are run too; otherwise only the jobs ready when
            ``drain`` was called run.
        with_scheduled: also run jobs scheduled in the future and retries waiting for their
            backoff (they are moved to now first).
        max_rounds: with ``recursive``, how many rounds before giving up with
            ``AssertionError`` (a job that always snoozes would never let a drain end).

    Example:
        >>> await WelcomeEmail.builder().with_data("ann@example.com").enqueue()
        >>> result = await drain(WelcomeEmail)
        >>> (result.complete, result.failed)
        (1, 0)
    """
    found, node_backend = _instances(executors)
    target = backend or node_backend or _global.get_global_backend()
    node_id = f"drain-{uuid.uuid4().hex[:12]}"
    stats: Counter[str] = Counter()
    threads = ThreadPoolExecutor(4, "rexecutor-drain")
    acker = Acker(target)
    runners = [
        JobRunner(executor, target, node_id, acker, threads, stats, target.poll_interval)
        for executor in found.values()
    ]
    await target.record_heartbeat(NodeInfo(node_id))
    try:
        rounds = 0
        while True:
            if with_scheduled:
                await _bring_forward(target, list(found))
            claimed: list[tuple[JobRunner, Job[Any, Any]]] = []
            for runner in runners:
                while batch := await target.claim_ready_jobs(runner.name, CLAIM_BATCH, node_id):
                    claimed.extend((runner, job) for job in batch)
            if not claimed:
                break
            rounds += 1
            if rounds > max_rounds:
                await _give_back(target, claimed, node_id)
                raise AssertionError(
                    f"drain: jobs were still ready after {max_rounds} rounds (a job that "
                    "snoozes or re-enqueues itself forever?); raise max_rounds if that is "
                    "expected"
                )
            for runner, job in claimed:
                # The node's own per-job path: execute, record, telemetry.
                await runner.run_claimed(job)
            await acker.drain()
            if not recursive:
                break
    finally:
        for runner in runners:
            await runner.close()
        threads.shutdown(wait=False, cancel_futures=True)
        await target.remove_node(node_id)
    return DrainResult(
        complete=stats["complete"],
        retryable=stats["retryable"],
        discarded=stats["discarded"],
        cancelled=stats["cancelled"],
        snoozed=stats["snoozed"],
    )


async def _give_back(
    backend: Backend, claimed: list[tuple[JobRunner, Job[Any, Any]]], node_id: str
) -> None:
    for _runner, job in claimed:
        fence = Fence.held(Lease(node_id, job.attempt))
        await backend.apply_transition(job.id, fence, lifecycle.snoozed(job.attempt, timedelta(0)))


@dataclass(frozen=True, slots=True)
class PerformResult(Generic[D, M]):
    """What one attempt run by :func:`perform` did.

    Attributes:
        outcome: what a node would record: ``"complete"``, ``"retryable"``,
            ``"discarded"``, ``"snoozed"`` or ``"cancelled"``.
        job: the job as ``execute`` received it (typed).
        result: what ``execute`` returned (``None`` turned into ``ExecutionResult.Done()``);
            ``None`` when it raised or timed out.
        exception: what ``execute`` raised, if it did.
        error: the error a node would append to the job, if any (a ``Done(result)``
            whose result cannot be stored is a ``"retryable"`` or ``"discarded"`` outcome
            with the error naming why).
        delay: the delay before the job would run again (the backoff of a retryable
            attempt, or the snooze), if it would.
        stored_result: what ``job.result`` would read after a ``"complete"`` outcome: the
            ``Done(result)``'s result as stored (JSON, checked against the default payload
            limit) and read back through the executor's ``result_type``; ``None`` when none.
    """

    outcome: str
    job: Job[D, M]
    result: ExecutionResult | None = None
    exception: BaseException | None = None
    error: FailureRecord | None = None
    delay: timedelta | None = None
    stored_result: Any = None


async def perform(
    executor: type[Executor[D, M]] | Executor[D, M],
    data: D = _ANY,
    *,
    metadata: M | None = None,
    attempt: int = 1,
    max_attempts: int | None = None,
    tags: list[str] | None = None,
    priority: int = 0,
    job_id: int = 1,
) -> PerformResult[D, M]:
    """Run one attempt of a job of ``executor`` with ``data``, as a node would, storing nothing.

    ``data`` and ``metadata`` are validated and encoded as at enqueue (a ``ValidationError``
    is raised here, as ``enqueue`` would), then decoded and handed to ``execute`` by the
    runner's own code, with its timeout, its worker thread for blocking executors, and its
    mapping of results and exceptions to outcomes, the executor's retry policy included
    (``discard_on``, ``snooze_on``, and ``backoff`` called with the error). ``attempt`` and
    ``max_attempts`` set where the job is in its life (a failure of the last attempt is
    ``"discarded"``). ``executor`` may be an instance carrying dependencies.

    Example:
        >>> done = await perform(WelcomeEmail, "ann@example.com")
        >>> done.outcome
        'complete'
    """
    cls: type[Executor[D, M]] = type(executor) if isinstance(executor, Executor) else executor
    instance = executor if isinstance(executor, Executor) else executor()
    builder = cls.builder()
    if data is not _ANY:
        builder = builder.with_data(data)
    if metadata is not None:
        builder = builder.with_metadata(metadata)
    if max_attempts is not None:
        builder = builder.with_max_attempts(max_attempts)
    spec = builder.with_tags(tags or []).with_priority(priority).build()
    check_payload(spec.data, spec.metadata, spec.tags, DEFAULT_MAX_PAYLOAD_BYTES, cls.name)
    if not isinstance(attempt, int) or not 1 <= attempt <= spec.max_attempts:
        raise ConfigurationError(
            f"attempt must be an int from 1 to max_attempts ({spec.max_attempts}), got {attempt!r}"
        )
    node_id = f"perform-{uuid.uuid4().hex[:12]}"
    now = _clock.now()
    raw: Job[Any, Any] = Job(
        id=JobId(job_id),
        status=JobStatus.EXECUTING,
        executor=cls.name,
        data=spec.data,
        metadata=spec.metadata,
        attempt=attempt,
        max_attempts=spec.max_attempts,
        priority=spec.priority,
        tags=list(spec.tags),
        errors=[],
        inserted_at=now,
        scheduled_at=spec.scheduled_at or now,
        attempted_at=now,
        attempted_by=node_id,
    )
    # Nothing is stored: the runner runs the attempt and says what it would record.
    backend = InMemoryBackend()
    threads = ThreadPoolExecutor(1, "rexecutor-perform")
    runner = JobRunner(instance, backend, node_id, Acker(backend), threads, Counter(), 1.0)
    try:
        attempt_run = await runner.run_attempt(raw)
        decision = runner.decide(raw, attempt_run)
    finally:
        await runner.close()
        threads.shutdown(wait=False, cancel_futures=True)
    transition = decision.transition
    error = None if transition is None else transition.error
    wait = None if transition is None else transition.run_in
    result: ExecutionResult | None = None
    exception: BaseException | None = None
    outcome = attempt_run.outcome
    if outcome is None:
        result = ExecutionResult.Done()
    elif isinstance(outcome, ExecutionResult):
        result = outcome
    elif isinstance(outcome, BaseException):
        exception = outcome
    try:
        job = cls.decode_job(raw)
    except Exception:
        job = raw
    stored_result = None
    if transition is not None and transition.result is not None:
        # Read back as a node's job would be: the stored JSON, through the result_type.
        stored = replace(raw, status=JobStatus.COMPLETE, result=json.loads(transition.result))
        stored_result = cls.decode_job(stored).result
    return PerformResult(decision.name, job, result, exception, error, wait, stored_result)


# -- time --------------------------------------------------------------------------------------

_installed_lock = threading.Lock()
_installed: FakeClock | None = None


class FakeClock:
    """A clock that stands still until the test moves it.

    Installed (``install()``, or ``with FakeClock() as clock:``), it is the time every part of
    the library reads: scheduling, the memory and SQLite backends' timestamps, the runners'
    waits, cron ticks, pruning ages and rescue windows. Each move wakes the runners and the
    sleeping cron and pruner loops at once, so a job scheduled in an hour runs as soon as the
    clock is moved an hour ahead, without sleeping.

    PostgreSQL follows it too: while a fake clock is installed, its statements take "now"
    from it instead of from the database's clock.

    A jump longer than a node's ``rescue_after`` makes the node look silent until its next
    heartbeat. Each node beats right before its rescue pass, so a node does not take its own
    jobs for orphaned (short of a jump landing between the two); but with several nodes on one
    backend in a test, move in steps shorter than ``rescue_after - heartbeat_interval`` (or
    give the nodes time to beat) to keep a live node from being taken for dead.

    Example:
        >>> with FakeClock(datetime(2030, 1, 1, tzinfo=UTC)) as clock:
        ...     clock.advance(hours=1)
        datetime.datetime(2030, 1, 1, 1, 0, tzinfo=datetime.timezone.utc)
    """

    def __init__(self, start: datetime | None = None) -> None:
        moment = start if start is not None else _clock.now()
        self._now = _aware(moment)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The clock's current time (aware, UTC)."""
        return self._now

    @property
    def installed(self) -> bool:
        """Whether this clock is the one the library reads now."""
        return _clock.current_clock() == self.now

    def install(self) -> Self:
        """Make this the library's clock (replacing any other test clock); returns ``self``."""
        global _installed
        with _installed_lock:
            _installed = self
        _clock.set_clock(self.now)
        return self

    def uninstall(self) -> None:
        """Go back to the system clock, if this clock is the installed one."""
        global _installed
        with _installed_lock:
            if _installed is self:
                _installed = None
        if self.installed:
            _clock.set_clock(None)

    def __enter__(self) -> Self:
        return self.install()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstall()

    def set(self, moment: datetime) -> datetime:
        """Move to ``moment`` (aware; may be in the past) and wake everyone waiting on time."""
        with self._lock:
            self._now = _aware(moment)
        self._moved()
        return self._now

    def advance(
        self,
        delta: timedelta | None = None,
        *,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
        milliseconds: float = 0,
    ) -> datetime:
        """Move forward by ``delta`` (or by the given parts); returns the new time.

        Example:
            >>> clock.advance(timedelta(minutes=5))
            >>> clock.advance(seconds=30)
        """
        step = delta if delta is not None else timedelta()
        step += timedelta(
            days=days, hours=hours, minutes=minutes, seconds=seconds, milliseconds=milliseconds
        )
        if step < timedelta(0):
            raise ValueError(f"advance moves forward only, got {step}; use set() to go back")
        with self._lock:
            self._now += step
        self._moved()
        return self._now

    def _moved(self) -> None:
        if self.installed:
            _clock.changed()

    def __repr__(self) -> str:
        state = "installed" if self.installed else "not installed"
        return f"<FakeClock {self._now.isoformat()} ({state})>"


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ConfigurationError(
            f"FakeClock needs a timezone-aware datetime, got {moment!r}; attach tzinfo=UTC"
        )
    return moment.astimezone(UTC)


def uninstall_fake_clock() -> None:
    """Uninstall whichever :class:`FakeClock` is installed (the pytest plugin's teardown)."""
    with _installed_lock:
        clock = _installed
    if clock is not None:
        clock.uninstall()
