"""One running node per test, reused across hypothesis examples, with the executors the
hostile examples run on (the checks of pages and command output are in ``checks``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rexecutor import Backend, ExecutionResult, Executor, Job, JobStatus, Rexecutor
from tests.hostile.values import Failure
from tests.support.postgres import pg_url
from tests.support.waiting import wait_for_status

#: Where a job may end (retryable counts when an error is recorded).
SETTLED = (JobStatus.COMPLETE, JobStatus.DISCARDED, JobStatus.CANCELLED, JobStatus.RETRYABLE)


class Plan:
    """What the executors do in the current example, and what they saw.

    Examples run one after another, so one slot for the failure to raise is enough. A plain
    class with a short repr: hypothesis prints the fixtures of a failing example, and what
    the executors saw may be megabytes.
    """

    def __init__(self) -> None:
        self.failure = Failure("text", "unused")
        self.seen: dict[int, tuple[Any, Any]] = {}

    def __repr__(self) -> str:
        return f"Plan(failure={self.failure!r}, {len(self.seen)} jobs seen)"


class Planned(Executor[Any, Any], abstract=True):
    """An executor that follows the example's :class:`Plan`; one attempt per job."""

    max_attempts = 1

    def __init__(self, plan: Plan) -> None:
        self.plan = plan


class Echo(Planned):
    """Completes, remembering the data and metadata it was given."""

    name = "hostile-echo"

    async def execute(self, job: Job[Any, Any]) -> None:
        self.plan.seen[int(job.id)] = (job.data, job.metadata)


class FloatEcho(Executor[float, None]):
    """Typed data: a float, which NaN and Infinity are not in JSON."""

    name = "hostile-float"
    max_attempts = 1

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    async def execute(self, job: Job[float, None]) -> None:
        self.plan.seen[int(job.id)] = (job.data, job.metadata)


class Raises(Planned):
    """Raises the example's exception (on the event loop)."""

    name = "hostile-raise"

    async def execute(self, job: Job[Any, Any]) -> None:
        raise self.plan.failure.exception()


class RaisesInThread(Planned):
    """Raises the example's exception from a plain ``def`` (a worker thread)."""

    name = "hostile-raise-thread"

    def execute(self, job: Job[Any, Any]) -> None:
        raise self.plan.failure.exception()


class ReturnsError(Planned):
    """Returns ``ExecutionResult.Error`` with the example's exception."""

    name = "hostile-error"

    async def execute(self, job: Job[Any, Any]) -> ExecutionResult:
        return ExecutionResult.Error(self.plan.failure.exception())


class ReturnsCancel(Planned):
    """Returns ``ExecutionResult.Cancel`` with the example's exception as the reason."""

    name = "hostile-cancel"

    async def execute(self, job: Job[Any, Any]) -> ExecutionResult:
        return ExecutionResult.Cancel(self.plan.failure.exception())


class Healthy(Executor[int, None]):
    """The ordinary job that must still complete after every hostile example."""

    name = "hostile-healthy"

    async def execute(self, job: Job[int, None]) -> None:
        return None


class Node:
    """A started node on ``backend``, what its executors saw, and how to reach the backend
    from the command line (``url`` is None for the in-memory backend, which no other
    process or ``rexecutor`` command can open)."""

    def __init__(self, rex: Rexecutor, plan: Plan, backend: Backend, url: str | None) -> None:
        self.rex, self.plan, self.backend, self.url = rex, plan, backend, url

    def __repr__(self) -> str:
        return f"Node({self.backend!r}, url={self.url!r})"


def backend_url(backend: Backend, request: pytest.FixtureRequest) -> str | None:
    """The URL the command line needs to open the same database as ``backend``."""
    kind = type(backend).__name__
    if kind == "SqliteBackend":
        return f"sqlite:///{Path(str(getattr(backend, 'path'))).resolve()}"  # noqa: B009
    if kind == "PostgresBackend":
        return pg_url(request.getfixturevalue("postgres_url"))
    return None


@pytest.fixture
async def node(backend: Backend, request: pytest.FixtureRequest) -> AsyncIterator[Node]:
    plan = Plan()
    rex = Rexecutor(
        backend,
        heartbeat_interval=timedelta(milliseconds=500),
        rescue_after=timedelta(seconds=10),
        poll_interval=0.05,
        cancel_check_interval=0.05,
    )
    for executor in (Echo, FloatEcho, Raises, RaisesInThread, ReturnsError, ReturnsCancel):
        rex.with_executor(executor(plan))
    rex.with_executor(Healthy)
    async with rex:
        yield Node(rex, plan, backend, backend_url(backend, request))


async def healthy_job_completes(node: Node) -> None:
    """The proof that no runner stopped: an ordinary job enqueued now completes."""
    job_id = await Healthy.builder().with_data(1).enqueue_to_backend(node.backend)
    job = await wait_for_status(node.backend, job_id, *SETTLED, timeout=15)
    assert job.status is JobStatus.COMPLETE, f"a healthy job ended {job.status}: {job.errors}"
