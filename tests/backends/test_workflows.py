"""Conformance: jobs that depend on other jobs (workflows) are claimed only after every
dependency completed; a failed dependency cancels its dependents (naming it) unless they run
anyway; a rerun reopens them; pruning keeps what an unfinished dependent waits on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rexecutor import lifecycle
from rexecutor.backend import Backend, Lease, PruneSpec
from rexecutor.errors import ValidationError
from rexecutor.job import ErrorType, JobStatus
from rexecutor.lifecycle import Fence
from rexecutor.testing import FakeClock
from rexecutor.uniqueness import UniquenessCriteria

from ._helpers import (
    CANCEL,
    FAILURE,
    claim_one,
    ids,
    mark_cancelled,
    mark_complete,
    mark_discarded,
    new_job,
    rerun,
)


async def store(backend: Backend, *depends: tuple[int, ...], **fields: object) -> list[int]:
    """One job per entry of ``depends`` (positions it depends on), in one enqueue_many."""
    jobs = [new_job(depends_on=d, workflow_id="wf-1", **fields) for d in depends]
    return [int(r.job_id) for r in await backend.enqueue_many(jobs)]


async def claimable(backend: Backend) -> list[int]:
    claimed = await backend.claim_ready_jobs("ex", 100, "peek")
    for job in claimed:  # hand them back untouched, as the runner would at shutdown
        fence = Fence.held(Lease("peek", job.attempt))
        await backend.apply_transition(job.id, fence, lifecycle.handed_back(job.attempt, "peeked"))
    return ids(claimed)


async def run_one(backend: Backend, expected: int, status: JobStatus = JobStatus.COMPLETE) -> None:
    job, lease = await claim_one(backend)
    assert job.id == expected
    if status is JobStatus.COMPLETE:
        assert await mark_complete(backend, job.id, lease)
    elif status is JobStatus.DISCARDED:
        assert await mark_discarded(backend, job.id, lease, FAILURE)
    else:
        assert await mark_cancelled(backend, job.id, lease, CANCEL)


async def test_dependents_wait_for_every_dependency(backend: Backend) -> None:
    a, b, c = await store(backend, (), (0,), (0, 1))
    assert [(await backend.get_job(j)).blocked for j in (a, b, c)] == [False, True, True]
    assert (await backend.get_job(b)).status is JobStatus.SCHEDULED
    assert await claimable(backend) == [a]
    assert await backend.next_scheduled_at(["ex"]) is not None

    await run_one(backend, a)
    assert await claimable(backend) == [b]
    assert (await backend.get_job(c)).blocked
    await run_one(backend, b)
    assert await claimable(backend) == [c]
    assert await backend.dependencies([a, b, c]) == {b: [a], c: [a, b]}
    assert ids(await backend.workflow_jobs("wf-1")) == [a, b, c]
    assert (await backend.get_job(a)).has_dependents


async def test_blocked_jobs_do_not_count_as_due(backend: Backend) -> None:
    a, b = await store(backend, (), (0,))
    job, lease = await claim_one(backend)
    assert await backend.next_scheduled_at(["ex"]) is None
    assert await mark_complete(backend, a, lease)
    assert await backend.next_scheduled_at(["ex"]) is not None
    assert job.id == a and b


async def test_batched_completions_release_dependents(backend: Backend) -> None:
    _, b = await store(backend, (), (0,))
    job, lease = await claim_one(backend)
    assert await backend.complete_jobs([(int(job.id), lease)]) == [True]
    assert await claimable(backend) == [b]


@pytest.mark.parametrize("status", [JobStatus.DISCARDED, JobStatus.CANCELLED])
async def test_a_failed_dependency_cancels_its_dependents_down_the_graph(
    backend: Backend, status: JobStatus
) -> None:
    a, b, c, d = await store(backend, (), (0,), (1,), ())
    await run_one(backend, a, status)
    for dependent, cause in ((b, a), (c, b)):
        job = await backend.get_job(dependent)
        assert job.status is JobStatus.CANCELLED
        assert job.errors[-1].error_type is ErrorType.CANCELLED
        assert job.errors[-1].name == f"dependency:{cause}"
        assert str(cause) in job.errors[-1].details
    assert (await backend.get_job(d)).status is JobStatus.SCHEDULED


async def test_an_external_cancel_of_a_dependency_cancels_dependents(backend: Backend) -> None:
    a, b = await store(backend, (), (0,))
    assert await mark_cancelled(backend, a, None, CANCEL)
    assert (await backend.get_job(b)).status is JobStatus.CANCELLED


async def test_run_anyway_dependents_run_after_a_failed_dependency(backend: Backend) -> None:
    jobs = [new_job(), new_job(depends_on=(0,), on_failed_dependency="run")]
    a, b = (int(r.job_id) for r in await backend.enqueue_many(jobs))
    await run_one(backend, a, JobStatus.DISCARDED)
    assert (await backend.get_job(b)).status is JobStatus.SCHEDULED
    assert await claimable(backend) == [b]


async def test_rerunning_a_failed_step_reopens_its_cancelled_dependents(backend: Backend) -> None:
    a, b, c = await store(backend, (), (0,), (1,))
    await run_one(backend, a, JobStatus.DISCARDED)
    assert (await backend.get_job(c)).status is JobStatus.CANCELLED

    await rerun(backend, a)
    for dependent in (b, c):
        job = await backend.get_job(dependent)
        assert (job.status, job.blocked, job.cancelled_at) == (JobStatus.SCHEDULED, True, None)
    assert await claimable(backend) == [a]
    await run_one(backend, a)
    await run_one(backend, b)
    await run_one(backend, c)


async def test_a_dependency_list_must_point_backwards(backend: Backend) -> None:
    for bad in ((1,), (5,), (-1,)):
        with pytest.raises(ValidationError, match="can only depend on jobs before it"):
            await backend.enqueue_many([new_job(depends_on=bad), new_job()])
    with pytest.raises(ValidationError, match="on_failed_dependency"):
        await backend.enqueue_many([new_job(), new_job(depends_on=(0,), on_failed_dependency="x")])
    assert await backend.count_jobs() == {}


async def test_pruning_keeps_what_an_unfinished_dependent_waits_on(
    backend: Backend, clock: FakeClock
) -> None:
    a, b, c = await store(backend, (), (), (0, 1))
    await run_one(backend, a)
    clock.advance(timedelta(hours=2))
    spec = PruneSpec(JobStatus.COMPLETE, max_age=timedelta(hours=1))
    assert await backend.prune_jobs(spec) == 0
    await run_one(backend, b)
    await run_one(backend, c)
    clock.advance(timedelta(hours=2))
    assert await backend.prune_jobs(spec) == 3
    assert await backend.count_jobs() == {}


async def test_the_sweep_finds_nothing_to_do_when_all_is_settled(backend: Backend) -> None:
    await store(backend, (), (0,))
    assert await backend.settle_blocked() == 0


async def test_a_step_that_duplicates_a_finished_job_releases_its_dependents(
    backend: Backend,
) -> None:
    unique = UniquenessCriteria.by_key("nightly").and_statuses(JobStatus.ALL)
    [first] = await store(backend, (), uniqueness=unique)
    await run_one(backend, first)
    jobs = [new_job(uniqueness=unique), new_job(depends_on=(0,))]
    again, dependent = await backend.enqueue_many(jobs)
    assert again.duplicate and int(again.job_id) == first
    assert not (await backend.get_job(dependent.job_id)).blocked
    assert await claimable(backend) == [int(dependent.job_id)]


async def test_pruning_a_dependent_forgets_its_dependencies(
    backend: Backend, clock: FakeClock
) -> None:
    a, b = await store(backend, (), (0,))
    await run_one(backend, a)
    await run_one(backend, b)
    assert await backend.dependencies([b]) == {b: [a]}
    clock.advance(timedelta(hours=2))
    assert await backend.prune_jobs(PruneSpec(JobStatus.COMPLETE, max_age=timedelta(hours=1))) == 2
    assert await backend.dependencies([a, b]) == {}
