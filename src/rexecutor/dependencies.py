"""What finishing (or reopening) a job does to the jobs that depend on it: decided here, once.

A job added to a :class:`~rexecutor.Workflow` with dependencies is stored ``blocked``: it stays
``scheduled`` and no claim takes it. When a job that has dependents reaches a final status,
each dependent is settled:

- every dependency ``complete`` (or, for a dependent added with
  ``on_failed_dependency="run"``, finished in any way): it is released (no longer blocked);
- a dependency ``discarded`` or ``cancelled`` (and ``on_failed_dependency="cancel"``, the
  default): it is cancelled, with an error naming that dependency, and its own dependents are
  settled in turn;
- otherwise it stays blocked.

Rerunning a job reopens the dependents that were cancelled because of it (and theirs), blocked
again until it completes.

The walk over the stored graph is written once, as a generator (:func:`propagate`) that asks
for reads and writes; each backend answers them inside the transaction of the change that
caused it, so the whole cascade commits with that change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from rexecutor import lifecycle
from rexecutor.backend import EnqueuableJob, FailureRecord
from rexecutor.errors import ValidationError
from rexecutor.job import ErrorType, JobStatus
from rexecutor.lifecycle import Fence, Transition

__all__ = ["OnFailedDependency"]

OnFailedDependency = Literal["cancel", "run"]
POLICIES: tuple[OnFailedDependency, ...] = ("cancel", "run")
#: The error name of a job cancelled because a dependency failed: ``dependency:<id>``.
ERROR_PREFIX = "dependency:"


def check_policy(value: object) -> OnFailedDependency:
    """``value`` if it is an ``on_failed_dependency`` policy, else ``ValidationError``."""
    if value == "cancel":
        return "cancel"
    if value == "run":
        return "run"
    raise ValidationError(
        f"on_failed_dependency must be 'cancel' or 'run', got {value!r}: 'cancel' (the "
        "default) cancels a job whose dependency was discarded or cancelled, 'run' runs it"
    )


@dataclass(frozen=True, slots=True)
class Dependent:
    """A job that depends on others, as stored: what settling it needs to know."""

    id: int
    status: JobStatus
    attempt: int
    blocked: bool
    policy: OnFailedDependency
    #: The statuses of its dependencies (a dependency that no longer exists counts as
    #: complete: pruning keeps every job an unfinished dependent waits on).
    dependencies: Mapping[int, JobStatus] = field(default_factory=dict)
    #: The name of its last error (``dependency:<id>`` when a failed dependency cancelled it).
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Blocked:
    """Some dependency has not finished."""


@dataclass(frozen=True, slots=True)
class Ready:
    """Every dependency finished in a way that lets the job run."""


@dataclass(frozen=True, slots=True)
class Cancel:
    """Dependency ``dependency`` ended ``status``: the job is cancelled."""

    dependency: int
    status: JobStatus


def settle(dependent: Dependent) -> Blocked | Ready | Cancel:
    """What the dependencies' statuses mean for ``dependent``."""
    failed = sorted(
        dep
        for dep, status in dependent.dependencies.items()
        if status in (JobStatus.DISCARDED, JobStatus.CANCELLED)
    )
    if failed and dependent.policy == "cancel":
        return Cancel(failed[0], dependent.dependencies[failed[0]])
    if all(status.is_terminal for status in dependent.dependencies.values()):
        return Ready()
    return Blocked()


def cancellation(dependency: int, status: JobStatus) -> Transition:
    """The transition of a job cancelled because ``dependency`` ended ``status``."""
    return lifecycle.cancelled(
        FailureRecord(
            ErrorType.CANCELLED,
            f"dependency {dependency} was {status.value}; this job depended on it",
            name=f"{ERROR_PREFIX}{dependency}",
        )
    )


# -- the walk, as requests a backend answers -------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadDependents:
    """Answer with the :class:`Dependent` of every job that depends on one of ``ids``."""

    ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SetBlocked:
    """Store ``blocked`` for the jobs ``ids`` (a released job wakes its executor's runners)."""

    ids: tuple[int, ...]
    blocked: bool


@dataclass(frozen=True, slots=True)
class Apply:
    """Store ``transition`` for job ``id`` under ``fence`` (as ``apply_transition`` does);
    answer with whether it applied."""

    id: int
    fence: Fence
    transition: Transition


Request = ReadDependents | SetBlocked | Apply
Walk = Generator[Request, object, None]
#: How a backend stores one fenced transition inside a walk (its connection first).
ApplyFn = Callable[..., bool]


def propagate(finished: Sequence[int]) -> Walk:
    """Settle the dependents of the jobs ``finished`` (which reached a final status), and the
    dependents of any job cancelled on the way."""
    frontier = tuple(finished)
    seen: set[int] = set()
    while frontier:
        dependents = yield ReadDependents(frontier)
        assert isinstance(dependents, list)
        released: list[int] = []
        cancelled: list[int] = []
        for dependent in dependents:
            if dependent.status.is_terminal or dependent.id in seen:
                continue
            decision = settle(dependent)
            if isinstance(decision, Ready) and dependent.blocked:
                released.append(dependent.id)
            elif isinstance(decision, Cancel):
                fence = Fence(dependent.status, dependent.attempt)
                applied = yield Apply(
                    dependent.id, fence, cancellation(decision.dependency, decision.status)
                )
                if applied:
                    seen.add(dependent.id)
                    cancelled.append(dependent.id)
        if released:
            yield SetBlocked(tuple(released), False)
        frontier = tuple(cancelled)


def reopen(rerun: Sequence[int]) -> Walk:
    """After the jobs ``rerun`` were reopened: reopen, blocked, the dependents their failure
    cancelled, and so on down the graph."""
    frontier = tuple(rerun)
    seen: set[int] = set(frontier)
    while frontier:
        dependents = yield ReadDependents(frontier)
        assert isinstance(dependents, list)
        reopened: list[int] = []
        for dependent in dependents:
            cause = dependent.last_error
            if (
                dependent.status is not JobStatus.CANCELLED
                or cause is None
                or not cause.startswith(ERROR_PREFIX)
                or int(cause[len(ERROR_PREFIX) :]) not in frontier
                or dependent.id in seen
            ):
                continue
            fence = Fence(dependent.status, dependent.attempt)
            transition = Transition(
                lifecycle.ready_status(dependent.attempt), run_in=lifecycle.NOW, reopen=True
            )
            if (yield Apply(dependent.id, fence, transition)):
                seen.add(dependent.id)
                reopened.append(dependent.id)
        if reopened:
            yield SetBlocked(tuple(reopened), True)
        frontier = tuple(reopened)


def drive(walk: Walk, answer: Callable[[Request], object]) -> None:
    """Run ``walk``, answering each request with ``answer`` (a backend's storage)."""
    try:
        request = next(walk)
        while True:
            request = walk.send(answer(request))
    except StopIteration:
        return


async def drive_async(walk: Walk, answer: Callable[[Request], Awaitable[object]]) -> None:
    """:func:`drive` for a backend whose storage is awaited."""
    try:
        request = next(walk)
        while True:
            request = walk.send(await answer(request))
    except StopIteration:
        return


def after_change(job_id: int, status: JobStatus, reopened: bool) -> Walk | None:
    """The walk a stored change of a job with dependents needs (None: none)."""
    if reopened:
        return reopen([job_id])
    if status.is_terminal:
        return propagate([job_id])
    return None


def check_batch(jobs: Sequence[EnqueuableJob]) -> None:
    """Refuse, before anything is stored, dependencies that do not point to an earlier job of
    the same batch, and unknown policies."""
    for position, job in enumerate(jobs):
        check_policy(job.on_failed_dependency)
        for dependency in job.depends_on:
            if type(dependency) is not int or not 0 <= dependency < position:
                raise ValidationError(
                    f"job {position} of the batch depends on position {dependency!r}: a job "
                    "can only depend on jobs before it in the same enqueue_many call (use "
                    "Workflow to build the graph)"
                )
