"""Workflows on a running node: the Workflow builder, each step after its dependencies, a
failed step's dependents cancelled (or run), results_of, and the build-time refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from rexecutor import (
    ExecutionResult,
    Executor,
    Job,
    JobStatus,
    Rexecutor,
    ValidationError,
    Workflow,
)
from rexecutor.backend import Backend
from rexecutor.backends import InMemoryBackend, SqliteBackend
from tests.support.waiting import eventually

ORDER: list[str] = []


class Step(Executor[str, None]):
    """Records its data when it runs; data "fail" raises (one attempt only)."""

    name = "wf_step"
    max_attempts = 1

    async def execute(self, job: Job[str, None]) -> ExecutionResult:
        await asyncio.sleep(0.005)
        if job.data == "fail":
            raise RuntimeError("step failed")
        ORDER.append(job.data)
        return ExecutionResult.Done()


class Report(Executor[str, None]):
    """Collects what its dependencies stored as results (none here: their step names)."""

    name = "wf_report"
    seen: dict[str | int, Any] = {}

    async def execute(self, job: Job[str, None]) -> None:
        type(self).seen = await Workflow.results_of(job, self._backend)
        ORDER.append(job.data)

    _backend: Backend


@pytest.fixture(params=["memory", "sqlite"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    ORDER.clear()
    store: Backend = (
        InMemoryBackend() if request.param == "memory" else SqliteBackend(tmp_path / "jobs.db")
    )
    async with store:
        Report._backend = store
        yield store


async def statuses(backend: Backend, ids: list[Any]) -> list[JobStatus]:
    return [(await backend.get_job(i)).status for i in ids]


async def finished(backend: Backend, ids: list[Any]) -> bool:
    return all(s.is_terminal for s in await statuses(backend, ids))


async def test_a_diamond_runs_each_step_after_its_dependencies(backend: Backend) -> None:
    wf = Workflow("diamond")
    fetch = wf.add(Step.builder().with_data("fetch"), name="fetch")
    left, right = wf.add_group(
        [Step.builder().with_data("left"), Step.builder().with_data("right")], depends_on=[fetch]
    )
    report = wf.add(Report.builder().with_data("report"), depends_on=[left, right], name="report")
    assert (report.name, len(wf.steps)) == ("report", 4)

    node = Rexecutor(backend, poll_interval=0.05).with_executor(Step).with_executor(Report)
    await node.start()
    try:
        ids = await wf.enqueue_to_backend(backend)
        await eventually(lambda: finished(backend, ids), timeout=10)
    finally:
        await node.graceful_shutdown()
    assert await statuses(backend, ids) == [JobStatus.COMPLETE] * 4
    assert ORDER[0] == "fetch" and ORDER[-1] == "report"
    assert sorted(Report.seen) == sorted([int(ids[1]), int(ids[2])])
    jobs = await backend.workflow_jobs(wf.id)
    assert [j.workflow_step for j in jobs] == ["fetch", None, None, "report"]
    stamps = {int(j.id): j for j in jobs}
    for dependent, on in (await backend.dependencies(ids)).items():
        for dependency in on:
            done = stamps[dependency].completed_at
            started = stamps[dependent].attempted_at
            assert done is not None and started is not None and done <= started


async def test_a_failed_step_cancels_what_depends_on_it(backend: Backend) -> None:
    wf = Workflow("failing")
    bad = wf.add(Step.builder().with_data("fail"))
    after = wf.add(Step.builder().with_data("after"), depends_on=[bad])
    anyway = wf.add(
        Step.builder().with_data("anyway"), depends_on=[bad], on_failed_dependency="run"
    )
    node = Rexecutor(backend, poll_interval=0.05).with_executor(Step)
    await node.start()
    try:
        ids = await wf.enqueue_to_backend(backend)
        await eventually(lambda: finished(backend, ids), timeout=10)
    finally:
        await node.graceful_shutdown()
    assert await statuses(backend, ids) == [
        JobStatus.DISCARDED,
        JobStatus.CANCELLED,
        JobStatus.COMPLETE,
    ]
    cancelled = await backend.get_job(ids[after.position])
    assert f"dependency {int(ids[0])} was discarded" in cancelled.errors[-1].details
    assert anyway.position == 2


def test_steps_of_another_workflow_are_refused() -> None:
    one, two = Workflow("one"), Workflow("two")
    step = one.add(Step.builder().with_data("x"))
    with pytest.raises(ValidationError, match="belongs to another workflow"):
        two.add(Step.builder().with_data("y"), depends_on=[step])
    with pytest.raises(ValidationError, match="already has a step named"):
        one.add(Step.builder().with_data("a"), name="a")
        one.add(Step.builder().with_data("b"), name="a")
    with pytest.raises(ValidationError, match="depends_on takes steps"):
        one.add(Step.builder().with_data("c"), depends_on=[42])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="on_failed_dependency"):
        one.add(Step.builder().with_data("d"), on_failed_dependency="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="no steps"):
        Workflow("empty").jobs()
    with pytest.raises(ValidationError, match="workflow name"):
        Workflow("")


async def test_a_workflow_is_stored_all_or_nothing(backend: Backend) -> None:
    wf = Workflow("atomic")
    first = wf.add(Step.builder().with_data("ok"))
    wf.add(Step.builder().with_data("x" * 2_000_000), depends_on=[first])  # over the payload limit
    with pytest.raises(ValidationError):
        await wf.enqueue_to_backend(backend)
    assert await backend.count_jobs() == {}


async def test_a_chain_runs_in_order(backend: Backend) -> None:
    wf = Workflow("chain")
    wf.add_chain([Step.builder().with_data(str(i)) for i in range(8)])
    node = Rexecutor(backend, poll_interval=0.05).with_executor(Step)
    await node.start()
    try:
        ids = await wf.enqueue_to_backend(backend)
        await eventually(lambda: finished(backend, ids), timeout=10)
    finally:
        await node.graceful_shutdown()
    assert [str(i) for i in range(8)] == ORDER
