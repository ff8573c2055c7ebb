"""Run-time control of executors across the cluster: pause, resume, scale, and their state.

The state is stored in the backend, per executor name, so it holds for every node (nodes
started later included) and survives restarts: a paused executor's jobs are not claimed by any
node (the claim itself checks it), jobs already running finish normally, and enqueuing still
works. ``scale`` changes the per-node limit (``max_concurrency``) that every node running the
executor reads within one poll interval. Nodes also store the cross-node limits their code
declares (see :mod:`rexecutor.limits`), so that operators' tools can show them.

``Executor.pause()`` and the other class methods call these functions; so do the CLI
(``rexecutor executors``) and the dashboard.

Example:
    >>> await EmailJob.pause()
    >>> (await EmailJob.control()).paused
    True
    >>> await EmailJob.scale(20)
    >>> await EmailJob.resume()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rexecutor import telemetry
from rexecutor.errors import ConfigurationError, ValidationError
from rexecutor.job import JobStatus
from rexecutor.limits import MAX_LIMIT, ClaimLimits, RateLimit

if TYPE_CHECKING:
    from rexecutor.backend import Backend
    from rexecutor.executor import Executor

__all__ = ["ControlChange", "ExecutorControl", "ExecutorState"]

#: The longest executor name that can be paused or scaled (names are stored as keys).
MAX_NAME_CHARS = 1000


@dataclass(frozen=True, slots=True)
class ExecutorState:
    """What a backend stores about one executor name.

    ``paused`` and ``max_concurrency`` (None: the class's own) are set by operators;
    ``limits`` are the cross-node limits the code of the last node that started it declares.
    ``started_in_window``: starts counted in the current rate-limit window (all partitions).
    """

    name: str
    paused: bool = False
    max_concurrency: int | None = None
    limits: ClaimLimits = field(default_factory=ClaimLimits)
    started_in_window: int = 0
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ControlChange:
    """A change to an executor's stored state: ``paused`` if not None, and the per-node limit
    when ``scale`` is True (``max_concurrency=None``: back to the class's own)."""

    paused: bool | None = None
    scale: bool = False
    max_concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class ExecutorControl:
    """The run-time state of one executor, as :meth:`Executor.control` returns it.

    Attributes:
        name: the executor's name.
        paused: whether claiming is stopped on every node.
        max_concurrency: the per-node limit in force (an operator's ``scale``, else the
            class's own; None: no limit).
        scaled: whether ``max_concurrency`` was set by ``scale`` (not the class default).
        global_max_concurrency: at most this many executing on all nodes (None: no limit).
        partition_max_concurrency: at most this many executing per partition key.
        rate_limit: the executor's :class:`~rexecutor.RateLimit`, if any.
        executing: jobs of the executor executing now, on all nodes.
        scheduled: jobs waiting to run (scheduled or retryable).
        failed: jobs discarded.
        started_in_window: starts in the current rate-limit window (0 without a rate limit).
    """

    name: str
    paused: bool
    max_concurrency: int | None
    scaled: bool
    global_max_concurrency: int | None
    partition_max_concurrency: int | None
    rate_limit: RateLimit | None
    executing: int
    scheduled: int
    failed: int
    started_in_window: int

    @property
    def rate_headroom(self) -> int | None:
        """Starts the rate limit still allows in the current window (None: no rate limit).

        For a per-partition rate limit this is the headroom of a partition that started
        nothing in the window, an upper bound for the others.
        """
        if self.rate_limit is None:
            return None
        if self.rate_limit.per_partition:
            return self.rate_limit.allowed
        return max(0, self.rate_limit.allowed - self.started_in_window)


def check_name(name: object) -> str:
    """``name`` if it can name an executor in the stored state, else ``ValidationError``."""
    if not isinstance(name, str) or not name:
        raise ValidationError(f"an executor name must be a non-empty str, got {name!r:.80}")
    if len(name) > MAX_NAME_CHARS or "\x00" in name:
        raise ValidationError(
            f"executor name {name[:40]!r}... cannot be stored: at most {MAX_NAME_CHARS} "
            "characters, no NUL"
        )
    return name


def check_scale(max_concurrency: object) -> int | None:
    """A valid per-node limit for ``scale`` (None: the class default), else ConfigurationError."""
    if max_concurrency is None:
        return None
    if type(max_concurrency) is not int or not 1 <= max_concurrency <= MAX_LIMIT:
        raise ConfigurationError(
            f"scale takes an int from 1 to {MAX_LIMIT} or None (the class default), got "
            f"{max_concurrency!r}; to stop claiming altogether, pause the executor"
        )
    return max_concurrency


async def pause(backend: Backend, name: str) -> None:
    """Stop every node claiming jobs of ``name`` (a name no node knows yet is stored too)."""
    await backend.change_executor(check_name(name), ControlChange(paused=True))
    telemetry.emit("executor.pause", {}, {"executor": name})


async def resume(backend: Backend, name: str) -> None:
    """Let every node claim jobs of ``name`` again (wakes the runners at once where the
    backend can)."""
    await backend.change_executor(check_name(name), ControlChange(paused=False))
    telemetry.emit("executor.resume", {}, {"executor": name})


async def scale(backend: Backend, name: str, max_concurrency: int | None) -> None:
    """Set the per-node limit of ``name`` on every node (None: back to the class default)."""
    limit = check_scale(max_concurrency)
    await backend.change_executor(
        check_name(name), ControlChange(scale=True, max_concurrency=limit)
    )
    telemetry.emit(
        "executor.scale",
        {"max_concurrency": -1 if limit is None else limit},
        {"executor": name},
    )


async def control(
    backend: Backend, name: str, executor: type[Executor[Any, Any]] | None = None
) -> ExecutorControl:
    """The current state of ``name``; the limits come from ``executor`` when it is given (the
    code at hand), else from what the nodes stored."""
    states = await backend.executor_states([check_name(name)])
    state = states[0] if states else ExecutorState(name)
    counts = await backend.count_jobs()
    return _assemble(state, counts, executor)


async def controls(backend: Backend) -> list[ExecutorControl]:
    """Every executor the backend knows (stored state or jobs), sorted by name."""
    states = {state.name: state for state in await backend.executor_states(None)}
    counts = await backend.count_jobs()
    names = sorted(set(states) | {executor for executor, _ in counts})
    return [_assemble(states.get(name, ExecutorState(name)), counts, None) for name in names]


def _assemble(
    state: ExecutorState,
    counts: dict[tuple[str, JobStatus], int],
    executor: type[Executor[Any, Any]] | None,
) -> ExecutorControl:
    def count(*statuses: JobStatus) -> int:
        return sum(counts.get((state.name, status), 0) for status in statuses)

    limits = state.limits if executor is None else executor.claim_limits()
    default = None if executor is None else executor.max_concurrency
    scaled = state.max_concurrency is not None
    return ExecutorControl(
        name=state.name,
        paused=state.paused,
        max_concurrency=state.max_concurrency if scaled else default,
        scaled=scaled,
        global_max_concurrency=limits.global_max,
        partition_max_concurrency=limits.partition_max,
        rate_limit=limits.rate,
        executing=count(JobStatus.EXECUTING),
        scheduled=count(JobStatus.SCHEDULED, JobStatus.RETRYABLE),
        failed=count(JobStatus.DISCARDED),
        started_in_window=state.started_in_window,
    )
