"""The backend protocol: where jobs are stored and how they are claimed.

Storage for jobs; implemented by ``InMemoryBackend``, ``SqliteBackend`` and
``PostgresBackend``. The seam is made of domain operations, not SQL: enqueue, an atomic claim of
ready jobs, the one fenced write of a decided transition (``apply_transition``), batched
completions, query, update, prune, wake-ups, heartbeats and the selection of orphaned jobs.
:mod:`rexecutor.lifecycle` decides every transition; a backend only stores and claims. The
behaviour every backend must have is fixed by the conformance suite in ``tests/backends``.
Provisional until 1.0.
"""

from __future__ import annotations

import abc
import os
import socket
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol, Self

from rexecutor import _text
from rexecutor._notify import Subscription, Wakeups
from rexecutor.errors import ConfigurationError
from rexecutor.job import ErrorType, Job, JobId, JobProgress, JobStatus
from rexecutor.query import QueryNode
from rexecutor.uniqueness import UniquenessCriteria

if TYPE_CHECKING:
    from rexecutor.control import ControlChange, ExecutorState
    from rexecutor.lifecycle import Fence, Transition
    from rexecutor.limits import ClaimLimits, ClaimReport

__all__ = [
    "Backend",
    "Completion",
    "EnqueuableJob",
    "EnqueueResult",
    "FailureRecord",
    "Lease",
    "NodeInfo",
    "PruneSpec",
]


@dataclass(frozen=True, slots=True)
class EnqueuableJob:
    """A job ready to be stored: data and metadata already encoded as JSON values.

    ``scheduled_at=None`` means now, by the backend's clock. ``partition_key`` groups the
    job for partitioned limits (see :mod:`rexecutor.limits`). The ``workflow_*`` fields and
    ``depends_on`` place it in a :class:`~rexecutor.Workflow`.
    """

    executor: str
    data: Any
    metadata: Any = None
    max_attempts: int = 5
    scheduled_at: datetime | None = None
    tags: tuple[str, ...] = ()
    priority: int = 0
    uniqueness: UniquenessCriteria | None = None
    partition_key: str | None = None
    workflow_id: str | None = None
    workflow_step: str | None = None
    #: Positions, in the same ``enqueue_many`` call, of the jobs this one waits for (each
    #: before this one); the job is stored blocked until they finish (see
    #: :mod:`rexecutor.dependencies`).
    depends_on: tuple[int, ...] = ()
    on_failed_dependency: str = "cancel"


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """What ``enqueue`` did: the job's id and whether it was a duplicate of a stored job."""

    job_id: JobId
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Lease:
    """What a node holds after claiming a job: every write it makes later is fenced by it.

    A write applies only while the job is still executing, claimed by ``node_id``, at
    ``attempt``; a zombie's late write changes nothing.
    """

    node_id: str
    attempt: int


class Completion(NamedTuple):
    """One item of ``Backend.complete_jobs``: a claimed job, its lease, and its result.

    ``result`` is the canonical JSON text of the job's ``ExecutionResult.Done(result)``, as
    :func:`rexecutor._payload.check_result` produced it (``None``: no result, the common
    case). A plain ``(job_id, lease)`` pair is a completion without a result.
    """

    job_id: int
    lease: Lease
    result: str | None = None


def completions_of(items: Sequence[Completion | tuple[int, Lease]]) -> list[Completion]:
    """``items`` as :class:`Completion` values (plain pairs have no result)."""
    return [item if isinstance(item, Completion) else Completion(*item) for item in items]


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """An error to append to a job; the backend adds the attempt and the time.

    Its texts are always storable: on creation each is made storable (NUL shown as ``\\x00``,
    lone surrogates replaced) and capped at ``max_bytes`` of UTF-8 with the cut marked, so a
    backend never refuses a record whatever the job's code produced.
    """

    error_type: ErrorType
    details: str
    name: str | None = None
    traceback: str | None = None
    max_bytes: int = field(
        default=_text.DEFAULT_MAX_ERROR_BYTES, kw_only=True, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Frozen: the cleaned texts replace the given ones through object.__setattr__.
        limit = self.max_bytes
        object.__setattr__(self, "details", _text.clean(_text.describe(self.details), limit))
        if self.name is not None:
            object.__setattr__(self, "name", _text.clean(_text.describe(self.name), limit))
        if self.traceback is not None:
            object.__setattr__(
                self, "traceback", _text.clean(_text.describe(self.traceback), limit)
            )


@dataclass(frozen=True, slots=True)
class PruneSpec:
    """Delete finished jobs of one terminal status, by age or beyond a count.

    ``max_age``: delete jobs that finished more than this long ago. ``max_length``: keep the
    ``max_length`` most recently finished jobs and delete the rest. ``only`` restricts to these
    executors; ``exclude`` leaves these executors alone.
    """

    status: JobStatus
    max_age: timedelta | None = None
    max_length: int | None = None
    only: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not JobStatus(self.status).is_terminal:
            raise ConfigurationError(
                f"cannot prune status {self.status!s}: only complete, cancelled and "
                "discarded jobs can be pruned"
            )
        if (self.max_age is None) == (self.max_length is None):
            raise ConfigurationError("a prune spec needs exactly one of max_age and max_length")
        if self.max_length is not None and self.max_length < 0:
            raise ConfigurationError(f"max_length must be >= 0, got {self.max_length}")

    def applies_to(self, executor: str) -> bool:
        """Whether jobs of ``executor`` are covered."""
        if self.only is not None and executor not in self.only:
            return False
        return executor not in self.exclude


def check_batch_size(batch_size: object) -> int:
    """``batch_size`` of pruning (rows deleted per statement), or ``ConfigurationError`` if it
    is not a whole number of at least 1.

    ``PrunerConfig`` and every backend's ``prune_jobs`` apply this one rule.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError(
            f"batch_size must be a whole number of at least 1 (rows deleted per statement), "
            f"got {batch_size!r}"
        )
    return batch_size


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A running ``Rexecutor`` instance, as recorded by its heartbeats."""

    node_id: str
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None


def refuse_connection(backend: Backend, connection: Any) -> None:
    """Raise if a caller's connection was passed to a backend that cannot join it."""
    if connection is not None and not backend.capabilities.transactional_enqueue:
        raise ConfigurationError(
            f"{type(backend).__name__} cannot enqueue inside a caller's transaction; "
            "transactional enqueue needs PostgresBackend"
        )


class Backend(Protocol):
    """Storage for jobs; implemented by InMemoryBackend, SqliteBackend and PostgresBackend.

    A small protocol of domain operations: a backend stores and claims, and stores the
    transitions :mod:`rexecutor.lifecycle` decides, each under its fence; it decides nothing.
    A backend holds its own state (nothing is inherited but these default methods), among it
    its :class:`~rexecutor._notify.Wakeups` as ``wakeups``, and says what it can do beyond the
    protocol in ``capabilities``. Every write that leaves a job complete, cancelled or
    discarded tells ``wakeups.notify_finished`` (and other processes, where the store can),
    which is what ``wait_for_job`` waits on.

    Usable after ``await backend.connect()`` (idempotent); ``await backend.close()`` releases
    it; ``async with backend:`` does both.
    """

    #: What this backend can do beyond the protocol every backend has.
    capabilities: ClassVar[Capabilities]
    #: Seconds between polls for work that no wake-up announces (other processes, due jobs).
    poll_interval: float
    #: The largest encoded data, metadata and tags a job may carry together, in bytes (None: no
    #: limit). Enforced by every backend's enqueue, enqueue_many and update_job (see
    #: ``rexecutor._payload.check_job``), and the largest encoded result a job may store
    #: (checked by the runner, ``rexecutor._payload.check_result``); set it per instance to
    #: change it.
    max_payload_bytes: int | None
    #: Local wake-ups of runners (ready jobs) and of lost-job watches (cancellations).
    wakeups: Wakeups

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open connections and apply migrations (unless told not to); idempotent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; the backend may be connected again later."""

    @abc.abstractmethod
    async def migrate(self) -> int:
        """Bring the store's schema up to date; returns the schema version now in place."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def for_thread(self) -> Backend:
        """A backend on the same store that another thread's event loop may use.

        The node writes its heartbeats from a thread of its own, so that a job that hogs the
        event loop cannot starve them. The default returns ``self``, right for backends whose
        methods are bound to no event loop; a backend whose connections belong to one loop
        returns a new, unconnected instance with the same settings.
        """
        return self

    def subscribe(self, executors: Collection[str] | None = None) -> Subscription:
        """Register for wake-ups about ready jobs of ``executors`` (see ``wakeups``)."""
        return self.wakeups.subscribe(executors)

    def notify(self, executor: str | None = None) -> None:
        """Wake local runners of ``executor`` (None: all)."""
        self.wakeups.notify(executor)

    def subscribe_cancellations(self) -> Subscription:
        """Register for hints that a running job may have been cancelled elsewhere."""
        return self.wakeups.subscribe_cancellations()

    def notify_cancellation(self) -> None:
        """Hint local nodes that a running job may have been cancelled."""
        self.wakeups.notify_cancellation()

    # -- enqueue -------------------------------------------------------------------------

    @abc.abstractmethod
    async def enqueue(self, job: EnqueuableJob, *, connection: Any = None) -> EnqueueResult:
        """Store ``job``, or resolve its uniqueness conflict; atomic and concurrency-safe.

        ``connection``: a database connection of the caller's whose open transaction the
        insert joins (only backends that support it, PostgreSQL; the others raise
        ``ConfigurationError`` when given one).
        """

    async def enqueue_many(
        self, jobs: Sequence[EnqueuableJob], *, connection: Any = None
    ) -> list[EnqueueResult]:
        """Store many jobs; backends override this to use one round trip."""
        return [await self.enqueue(job, connection=connection) for job in jobs]

    # -- claiming and transitions ------------------------------------------------------------

    @abc.abstractmethod
    async def claim_ready_jobs(
        self,
        executor: str,
        limit: int,
        node_id: str,
        *,
        limits: ClaimLimits | None = None,
        report: ClaimReport | None = None,
    ) -> list[Job[Any, Any]]:
        """Atomically claim up to ``limit`` due jobs of ``executor`` for ``node_id``.

        Ready means scheduled or retryable with ``scheduled_at <= now``; claim order is
        priority, scheduled_at, id. Claimed jobs become executing, their attempt goes up by
        one and ``attempted_at``/``attempted_by`` are set. No job is ever claimed twice.
        Nothing is claimed while the executor is paused (``report.paused`` says so).

        ``limits``: the executor's cross-node limits. When it has any, the backend
        serialises the executor's claims across processes, counts from its rows what is
        executing and what started in the rate window, lets :func:`rexecutor.limits.plan`
        and :func:`rexecutor.limits.admit` choose, and records the starts (``report.held``
        counts the ready jobs held back).
        """

    # -- run-time control --------------------------------------------------------------------

    @abc.abstractmethod
    async def executor_states(self, names: Collection[str] | None) -> list[ExecutorState]:
        """The stored state of the executors ``names`` that have one (None: all), by name."""

    @abc.abstractmethod
    async def change_executor(self, name: str, change: ControlChange) -> None:
        """Store ``change`` for executor ``name`` (creating its state if it has none); a
        resume or a scale wakes the runners of ``name``, in other processes too where the
        backend can."""

    @abc.abstractmethod
    async def declare_limits(self, name: str, limits: ClaimLimits) -> None:
        """Store the cross-node limits the code of a starting node declares for ``name``
        (leaving its paused state and scale alone)."""

    @abc.abstractmethod
    async def next_scheduled_at(self, executors: Collection[str]) -> datetime | None:
        """The earliest ``scheduled_at`` of a scheduled or retryable job of ``executors``."""

    @abc.abstractmethod
    async def complete_jobs(
        self, completions: Sequence[Completion | tuple[int, Lease]]
    ) -> list[bool]:
        """Store :func:`rexecutor.lifecycle.completed` for many claimed jobs at once, each
        fenced by its lease (one result per item, False where the lease is stale); the
        runner batches its completions through this.

        An item's ``result`` text is stored with its completion, under the same fence; a
        batch where no item has one uses the backend's result-less statement.
        """

    @abc.abstractmethod
    async def record_progress(self, job_id: int, lease: Lease, progress: JobProgress) -> bool:
        """Store ``progress`` (as ``progress.to_json()``) as the job's progress, replacing
        what was there, if the job is still executing under ``lease``; nothing else changes.

        Returns False, changing nothing, when the lease is stale (the job was moved on).
        Raises ``JobNotFound`` for an unknown id. :mod:`rexecutor.progress` decides when to
        write (rate-limited, per attempt); this only stores.
        """

    @abc.abstractmethod
    async def apply_transition(self, job_id: int, fence: Fence, transition: Transition) -> bool:
        """Store ``transition`` if the job still matches ``fence``; the only write, besides
        claims and completions, that changes a job's status.

        Returns False, changing nothing, when the fence no longer holds (someone else moved
        the job on meanwhile). Raises ``JobNotFound`` for an unknown id. A job that becomes
        ready wakes the runners of its executor; one that leaves executing under a fence with
        no node (an external cancel) sends the cancellation hint.
        """

    @abc.abstractmethod
    async def update_job(self, job: Job[Any, Any]) -> None:
        """Write data, metadata, max_attempts, priority, tags and scheduled_at; nothing else.

        ``job.data`` and ``job.metadata`` must already be JSON values. Raises ``JobNotFound``.
        """

    # -- reading and housekeeping ------------------------------------------------------------

    @abc.abstractmethod
    async def query(
        self,
        where: QueryNode,
        *,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[Job[Any, Any]]:
        """Jobs matching ``where``, oldest first by id (or newest first), with paging."""

    async def get_job(self, job_id: int) -> Job[Any, Any]:
        """The job with this id, or ``JobNotFound``."""
        from rexecutor.errors import JobNotFound
        from rexecutor.query import IdIn

        found = await self.query(IdIn((int(job_id),)))
        if not found:
            raise JobNotFound(job_id)
        return found[0]

    @abc.abstractmethod
    async def count_jobs(self) -> dict[tuple[str, JobStatus], int]:
        """How many jobs each executor has in each status (pairs with no job are left out)."""

    @abc.abstractmethod
    async def finished_per_minute(self, since: timedelta) -> list[tuple[datetime, JobStatus, int]]:
        """Jobs that finished within the last ``since``, counted per minute and status.

        Each row is (the minute, truncated, in UTC; a terminal status; how many), oldest first.
        Dashboards and ``rexecutor stats`` draw throughput and failures over time from it.
        """

    @abc.abstractmethod
    async def prune_jobs(self, spec: PruneSpec, batch_size: int = 1000) -> int:
        """Delete what ``spec`` selects, ``batch_size`` rows per statement; returns the count."""

    @abc.abstractmethod
    async def record_heartbeat(self, node: NodeInfo) -> None:
        """Record that ``node`` is alive now (inserting it on its first beat)."""

    @abc.abstractmethod
    async def remove_node(self, node_id: str) -> None:
        """Forget a node that stopped cleanly."""

    @abc.abstractmethod
    async def list_nodes(self) -> list[NodeInfo]:
        """Nodes that have recorded a heartbeat, most recent first."""

    @abc.abstractmethod
    async def orphaned_jobs(self, dead_after: timedelta) -> list[Job[Any, Any]]:
        """Executing jobs whose node has been silent for longer than ``dead_after``.

        A job whose node is unknown counts once its ``attempted_at`` is older than
        ``dead_after``. The silent nodes are forgotten. The caller decides what becomes of each
        job (:func:`rexecutor.lifecycle.orphaned`) and applies it fenced by its attempt and node.
        """

    # -- workflows ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def dependencies(self, job_ids: Collection[int]) -> dict[int, list[int]]:
        """The ids each of ``job_ids`` depends on (jobs without dependencies are left out)."""

    @abc.abstractmethod
    async def workflow_jobs(self, workflow_id: str) -> list[Job[Any, Any]]:
        """Every stored job of the workflow ``workflow_id``, by id."""

    @abc.abstractmethod
    async def settle_blocked(self) -> int:
        """Settle every blocked job whose dependencies have all finished (release or cancel
        it, see :mod:`rexecutor.dependencies`); returns how many changed. Changes are settled
        as they commit; this sweep, run by every node's heartbeat thread, repairs what a
        write that failed half-way left."""

    @abc.abstractmethod
    async def lost_jobs(self, node_id: str, leases: dict[int, int]) -> list[int]:
        """Of the jobs ``node_id`` runs (id → attempt), those it no longer holds.

        A job is lost when it was cancelled, rescued or otherwise moved on; the runner stops
        such jobs.
        """


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do beyond the protocol every backend has.

    The conformance suite reads these and skips only what a backend declares it lacks.
    """

    #: ``enqueue(..., connection=conn)`` joins the caller's open transaction.
    transactional_enqueue: bool = False
    #: An enqueue or cancel in another process wakes this process's runners at once.
    cross_process_wakeups: bool = False
    #: Jobs outlive the process (a file or a server holds them).
    durable: bool = False
    #: Several processes may share the store (claims are safe across processes).
    multi_process: bool = False
    #: Several machines may share the store.
    multi_host: bool = False
    #: Every time the backend stores or compares follows the library clock, so that a test
    #: clock (``rexecutor.testing.FakeClock``) drives it.
    follows_test_clock: bool = False
