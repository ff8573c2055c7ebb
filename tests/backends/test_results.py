"""Conformance: a completion stores the job's result under the completion's fence.

The runner hands ``complete_jobs`` a :class:`~rexecutor.backend.Completion` whose ``result`` is
the result's canonical JSON text (``rexecutor._payload.check_result``); the acker's one-by-one
fallback stores the same through ``apply_transition(lifecycle.completed(result))``. A stale
lease stores nothing, a rerun clears the result, and pruning deletes it with its job.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from rexecutor import lifecycle
from rexecutor._payload import check_result
from rexecutor.backend import Backend, Completion, Lease, PruneSpec
from rexecutor.errors import JobNotFound
from rexecutor.job import JobStatus
from rexecutor.lifecycle import Fence
from rexecutor.query import IdIn
from rexecutor.testing import FakeClock

from ._helpers import claim_one, enqueue, executing, mark_complete, rerun

RESULTS: list[Any] = [
    {"receipt": "r-1", "amount": 12.5, "lines": [1, 2, {"x": None}], "ok": True},
    ["a", "b"],
    "plain text with ünïcode and a \\u0000 look-alike",
    42,
    0.1,
    False,
]


def _text(value: Any) -> str:
    return check_result(value, "ex", None)


@pytest.mark.parametrize("value", RESULTS, ids=lambda v: type(v).__name__)
async def test_complete_jobs_stores_the_result(backend: Backend, value: Any) -> None:
    job, lease = await executing(backend)
    assert await backend.complete_jobs([Completion(job.id, lease, _text(value))]) == [True]
    stored = await backend.get_job(job.id)
    assert stored.status is JobStatus.COMPLETE
    assert stored.result == value
    [queried] = await backend.query(IdIn((int(job.id),)))
    assert queried.result == value


async def test_a_completion_without_a_result_stores_none(backend: Backend) -> None:
    job, lease = await executing(backend)
    assert await backend.complete_jobs([Completion(job.id, lease)]) == [True]
    assert (await backend.get_job(job.id)).result is None


@pytest.mark.parametrize("nodes", [["node-1", "node-1", "node-1"], ["node-1", "node-2", "node-3"]])
async def test_a_batch_mixes_jobs_with_and_without_results(
    backend: Backend, nodes: list[str]
) -> None:
    items = []
    for i, node in enumerate(nodes):
        await enqueue(backend, f"ex-{i}")
        job, lease = await claim_one(backend, f"ex-{i}", node)
        items.append((job, lease))
    completions = [
        Completion(items[0][0].id, items[0][1], _text({"n": 0})),
        (items[1][0].id, items[1][1]),  # a plain pair: no result
        Completion(items[2][0].id, items[2][1], _text([2])),
    ]
    assert await backend.complete_jobs(completions) == [True, True, True]
    assert [(await backend.get_job(job.id)).result for job, _ in items] == [{"n": 0}, None, [2]]


async def test_a_stale_lease_stores_no_result(backend: Backend) -> None:
    job, lease = await executing(backend)
    stale = Lease("someone-else", lease.attempt)
    older = Lease(lease.node_id, lease.attempt - 1)
    results = await backend.complete_jobs(
        [Completion(job.id, stale, _text("x")), Completion(job.id, older, _text("y"))]
    )
    assert results == [False, False]
    stored = await backend.get_job(job.id)
    assert stored.status is JobStatus.EXECUTING
    assert stored.result is None


async def test_a_completed_job_keeps_its_first_result(backend: Backend) -> None:
    job, lease = await executing(backend)
    assert await backend.complete_jobs([Completion(job.id, lease, _text("first"))]) == [True]
    assert await backend.complete_jobs([Completion(job.id, lease, _text("second"))]) == [False]
    transition = lifecycle.completed(_text("third"))
    assert await backend.apply_transition(job.id, Fence.held(lease), transition) is False
    assert (await backend.get_job(job.id)).result == "first"


async def test_apply_transition_stores_a_completions_result(backend: Backend) -> None:
    # The acker's fallback when a batch fails: one fenced completion at a time.
    job, lease = await executing(backend)
    transition = lifecycle.completed(_text({"via": "apply_transition"}))
    assert await backend.apply_transition(job.id, Fence.held(lease), transition) is True
    stored = await backend.get_job(job.id)
    assert stored.status is JobStatus.COMPLETE
    assert stored.result == {"via": "apply_transition"}


async def test_a_result_is_stored_with_an_unknown_id_later_in_the_batch(
    backend: Backend,
) -> None:
    job, lease = await executing(backend)
    with pytest.raises(JobNotFound):
        await backend.complete_jobs(
            [Completion(job.id, lease, _text(1)), Completion(10**9, lease, _text(2))]
        )
    assert (await backend.get_job(job.id)).result == 1


async def test_a_rerun_clears_the_result(backend: Backend) -> None:
    job, lease = await executing(backend)
    assert await backend.complete_jobs([Completion(job.id, lease, _text("done once"))])
    await rerun(backend, job.id)
    rerun_job = await backend.get_job(job.id)
    assert rerun_job.status is JobStatus.RETRYABLE
    assert rerun_job.result is None
    again, lease = await claim_one(backend)
    assert again.result is None
    assert await mark_complete(backend, job.id, lease)
    assert (await backend.get_job(job.id)).result is None


async def test_pruning_deletes_the_result_with_its_job(backend: Backend, clock: FakeClock) -> None:
    pruned, lease = await executing(backend, "old")
    assert await backend.complete_jobs([Completion(pruned.id, lease, _text({"big": "x" * 1000}))])
    kept, lease = await executing(backend, "new")
    assert await backend.complete_jobs([Completion(kept.id, lease, _text("still here"))])
    clock.advance(seconds=10)
    spec = PruneSpec(JobStatus.COMPLETE, max_age=timedelta(seconds=1), only=frozenset({"old"}))
    assert await backend.prune_jobs(spec) == 1
    with pytest.raises(JobNotFound):
        await backend.get_job(pruned.id)
    assert (await backend.get_job(kept.id)).result == "still here"
