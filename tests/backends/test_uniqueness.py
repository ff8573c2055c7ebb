"""Conformance: unique jobs. A new job conflicts with a stored one when every part of its
criteria matches; the earliest match wins, its id comes back as a duplicate, and ``Replace``
overwrites its fields only while its status allows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from rexecutor.backend import Backend, EnqueueResult
from rexecutor.job import JobStatus
from rexecutor.query import Where
from rexecutor.uniqueness import Replace, UniquenessCriteria

from ._helpers import (
    FAR_FUTURE,
    assert_between,
    enqueue,
    executing,
    find,
    finished,
    new_job,
    retryable,
    utcnow,
)


async def _unique(
    backend: Backend,
    criteria: UniquenessCriteria,
    executor: str = "ex",
    data: object = None,
    **fields: object,
) -> EnqueueResult:
    return await backend.enqueue(new_job(executor, data, uniqueness=criteria, **fields))


async def _count(backend: Backend) -> int:
    return len(await find(backend, Where.everything()))


# -- keys ------------------------------------------------------------------------------------


async def test_same_key_returns_the_stored_job_as_a_duplicate(backend: Backend) -> None:
    first = await _unique(backend, UniquenessCriteria.by_key("order-1"), data={"n": 1})
    second = await _unique(backend, UniquenessCriteria.by_key("order-1"), data={"n": 2})
    assert first.duplicate is False
    assert second.duplicate is True
    assert second.job_id == first.job_id
    assert await _count(backend) == 1
    assert (await backend.get_job(first.job_id)).data == {"n": 1}


async def test_different_key_makes_a_new_job(backend: Backend) -> None:
    first = await _unique(backend, UniquenessCriteria.by_key("order-1"))
    second = await _unique(backend, UniquenessCriteria.by_key("order-2"))
    assert second.duplicate is False
    assert second.job_id != first.job_id
    assert await _count(backend) == 2


async def test_keys_compare_as_json_values(backend: Backend) -> None:
    first = await _unique(backend, UniquenessCriteria.by_key({"a": 1, "b": [1, 2]}))
    same = await _unique(backend, UniquenessCriteria.by_key({"b": [1, 2], "a": 1}))
    other = await _unique(backend, UniquenessCriteria.by_key({"a": 1, "b": [2, 1]}))
    assert same.job_id == first.job_id
    assert same.duplicate
    assert not other.duplicate


async def test_a_key_alone_matches_jobs_of_any_executor(backend: Backend) -> None:
    first = await _unique(backend, UniquenessCriteria.by_key("k"), "a")
    second = await _unique(backend, UniquenessCriteria.by_key("k"), "b")
    assert second.duplicate
    assert second.job_id == first.job_id


async def test_a_key_with_executor_matches_only_the_same_executor(backend: Backend) -> None:
    criteria = UniquenessCriteria.by_key("k").and_executor()
    first = await _unique(backend, criteria, "a")
    other_executor = await _unique(backend, criteria, "b")
    same_executor = await _unique(backend, criteria, "a")
    assert not other_executor.duplicate
    assert same_executor.duplicate
    assert same_executor.job_id == first.job_id


async def test_keyed_criteria_do_not_match_jobs_without_a_key(backend: Backend) -> None:
    await enqueue(backend)
    result = await _unique(backend, UniquenessCriteria.by_key("k"))
    assert not result.duplicate
    assert await _count(backend) == 2


async def test_keyless_criteria_match_jobs_with_and_without_keys(backend: Backend) -> None:
    plain = await enqueue(backend, "plain")
    keyed = await _unique(backend, UniquenessCriteria.by_key("k"), "keyed")
    to_plain = await _unique(backend, UniquenessCriteria.by_executor(), "plain")
    to_keyed = await _unique(backend, UniquenessCriteria.by_executor(), "keyed")
    assert (to_plain.job_id, to_plain.duplicate) == (plain, True)
    assert (to_keyed.job_id, to_keyed.duplicate) == (keyed.job_id, True)
    assert await _count(backend) == 2


async def test_by_executor_scopes_to_the_executor(backend: Backend) -> None:
    a = await _unique(backend, UniquenessCriteria.by_executor(), "a")
    b = await _unique(backend, UniquenessCriteria.by_executor(), "b")
    a_again = await _unique(backend, UniquenessCriteria.by_executor(), "a")
    assert not b.duplicate
    assert a_again.duplicate
    assert a_again.job_id == a.job_id


async def test_criteria_without_key_or_executor_match_any_job(backend: Backend) -> None:
    first = await enqueue(backend, "a")
    result = await _unique(backend, UniquenessCriteria.by_statuses([JobStatus.SCHEDULED]), "b")
    assert result.duplicate
    assert result.job_id == first


# -- statuses --------------------------------------------------------------------------------


async def test_by_default_only_scheduled_jobs_conflict(backend: Backend) -> None:
    criteria = UniquenessCriteria.by_key("k")
    done = await finished(backend, JobStatus.COMPLETE, uniqueness=criteria)
    running, _ = await executing(backend, "ex2", uniqueness=criteria)
    waiting = await retryable(backend, "ex3", delay=FAR_FUTURE, uniqueness=criteria)
    result = await _unique(backend, criteria)
    assert not result.duplicate
    assert result.job_id not in (done, running.id, waiting)
    again = await _unique(backend, criteria)
    assert again.job_id == result.job_id
    assert again.duplicate


async def test_completed_jobs_conflict_when_the_statuses_say_so(backend: Backend) -> None:
    done = await finished(backend, JobStatus.COMPLETE, uniqueness=UniquenessCriteria.by_key("k"))
    criteria = UniquenessCriteria.by_key("k").and_statuses(JobStatus.ALL)
    result = await _unique(backend, criteria)
    assert result.duplicate
    assert result.job_id == done


@pytest.mark.parametrize(
    "status",
    [JobStatus.EXECUTING, JobStatus.RETRYABLE, JobStatus.CANCELLED, JobStatus.DISCARDED],
)
async def test_each_status_can_conflict(backend: Backend, status: JobStatus) -> None:
    if status is JobStatus.EXECUTING:
        stored = (await executing(backend))[0].id
    elif status is JobStatus.RETRYABLE:
        stored = await retryable(backend, delay=FAR_FUTURE)
    else:
        stored = await finished(backend, status)
    result = await _unique(backend, UniquenessCriteria.by_statuses([status]))
    assert (result.job_id, result.duplicate) == (stored, True)
    others = [s for s in JobStatus.ALL if s is not status]
    assert not (await _unique(backend, UniquenessCriteria.by_statuses(others), "other")).duplicate


# -- windows ---------------------------------------------------------------------------------


async def test_window_is_measured_between_scheduled_at_values_inclusively(
    backend: Backend,
) -> None:
    base = datetime(2040, 1, 1, 12, 0, tzinfo=UTC)
    window = timedelta(minutes=5)
    criteria = UniquenessCriteria.by_executor().and_within(window)
    first = await _unique(backend, criteria, scheduled_at=base)
    at_edge = await _unique(backend, criteria, scheduled_at=base + window)
    before_edge = await _unique(backend, criteria, scheduled_at=base - window)
    assert (at_edge.job_id, at_edge.duplicate) == (first.job_id, True)
    assert (before_edge.job_id, before_edge.duplicate) == (first.job_id, True)
    just_outside = await _unique(
        backend, criteria, scheduled_at=base + window + timedelta(microseconds=1)
    )
    assert not just_outside.duplicate
    assert await _count(backend) == 2


async def test_window_does_not_depend_on_the_current_time(backend: Backend) -> None:
    criteria = UniquenessCriteria.by_executor().and_within(timedelta(minutes=5))
    far = utcnow() + timedelta(days=30)
    first = await _unique(backend, criteria, scheduled_at=far)
    near_it = await _unique(backend, criteria, scheduled_at=far + timedelta(minutes=2))
    now = await _unique(backend, criteria)
    assert (near_it.job_id, near_it.duplicate) == (first.job_id, True)
    assert not now.duplicate


async def test_window_uses_now_for_a_job_without_scheduled_at(backend: Backend) -> None:
    criteria = UniquenessCriteria.by_executor().and_within(timedelta(minutes=5))
    stored = await enqueue(backend, scheduled_at=utcnow() + timedelta(minutes=1))
    result = await _unique(backend, criteria)
    assert (result.job_id, result.duplicate) == (stored, True)


async def test_window_of_an_hour_ignores_jobs_further_away(backend: Backend) -> None:
    await enqueue(backend, scheduled_at=utcnow() - timedelta(hours=2))
    await enqueue(backend, scheduled_at=utcnow() + timedelta(hours=2))
    result = await _unique(backend, UniquenessCriteria.within(timedelta(hours=1)))
    assert not result.duplicate


# -- several matches -------------------------------------------------------------------------


async def test_the_earliest_match_wins(backend: Backend) -> None:
    now = utcnow()
    first = await enqueue(backend, scheduled_at=now + timedelta(hours=2), priority=9)
    await enqueue(backend, scheduled_at=now - timedelta(hours=2), priority=0)
    await enqueue(backend, scheduled_at=now)
    result = await _unique(backend, UniquenessCriteria.by_executor())
    assert (result.job_id, result.duplicate) == (first, True)


async def test_the_earliest_match_among_matching_ones_wins(backend: Backend) -> None:
    await finished(backend, JobStatus.COMPLETE)
    await enqueue(backend, "other")
    wanted = await enqueue(backend, scheduled_at=utcnow() + FAR_FUTURE)
    await enqueue(backend)
    result = await _unique(backend, UniquenessCriteria.by_executor())
    assert (result.job_id, result.duplicate) == (wanted, True)


# -- replace ---------------------------------------------------------------------------------


async def test_do_nothing_leaves_the_stored_job_alone(backend: Backend) -> None:
    criteria = UniquenessCriteria.by_key("k").on_conflict_do_nothing()
    first = await _unique(backend, criteria, data={"v": 1}, priority=1)
    before = await backend.get_job(first.job_id)
    second = await _unique(
        backend,
        criteria,
        data={"v": 2},
        metadata={"m": 2},
        priority=2,
        max_attempts=9,
        tags=("new",),
        scheduled_at=utcnow() + FAR_FUTURE,
    )
    assert second.duplicate
    assert await backend.get_job(first.job_id) == before


async def test_replace_of_each_field_overwrites_only_that_field(backend: Backend) -> None:
    when = datetime(2041, 7, 8, 9, 10, 11, 120000, tzinfo=UTC)
    new_values = {
        "data": {"v": 2},
        "metadata": {"m": 2},
        "priority": 7,
        "max_attempts": 11,
        "scheduled_at": when,
    }
    replaces = {
        "data": Replace.data(),
        "metadata": Replace.metadata(),
        "priority": Replace.priority(),
        "max_attempts": Replace.max_attempts(),
        "scheduled_at": Replace.scheduled_at(),
    }
    for name, action in replaces.items():
        key = f"key-{name}"
        first = await _unique(
            backend,
            UniquenessCriteria.by_key(key),
            data={"v": 1},
            metadata={"m": 1},
            priority=1,
            max_attempts=3,
            tags=("old",),
            scheduled_at=datetime(2040, 1, 1, tzinfo=UTC),
        )
        before = await backend.get_job(first.job_id)
        second = await _unique(
            backend,
            UniquenessCriteria.by_key(key).on_conflict(action),
            tags=("new",),
            **new_values,
        )
        assert (second.job_id, second.duplicate) == (first.job_id, True)
        after = await backend.get_job(first.job_id)
        for field in new_values:
            expected = new_values[field] if field == name else getattr(before, field)
            assert getattr(after, field) == expected, f"{name}: {field}"
        assert after.tags == ["old"]
        assert after.status is JobStatus.SCHEDULED


async def test_replace_of_several_fields(backend: Backend) -> None:
    first = await _unique(backend, UniquenessCriteria.by_key("k"), data={"v": 1}, priority=5)
    action = Replace.data().and_priority().and_max_attempts().and_metadata()
    await _unique(
        backend,
        UniquenessCriteria.by_key("k").on_conflict(action),
        data={"v": 2},
        priority=0,
        max_attempts=2,
        metadata="meta",
    )
    stored = await backend.get_job(first.job_id)
    assert (stored.data, stored.priority, stored.max_attempts, stored.metadata) == (
        {"v": 2},
        0,
        2,
        "meta",
    )


async def test_replace_of_scheduled_at_without_a_time_means_now(backend: Backend) -> None:
    first = await _unique(
        backend, UniquenessCriteria.by_key("k"), scheduled_at=utcnow() + FAR_FUTURE
    )
    before = utcnow()
    await _unique(backend, UniquenessCriteria.by_key("k").on_conflict(Replace.scheduled_at()))
    after = utcnow()
    stored = await backend.get_job(first.job_id)
    assert_between(stored.scheduled_at, before, after)


async def test_replace_applies_only_to_the_statuses_it_names(backend: Backend) -> None:
    criteria = UniquenessCriteria.by_key("k").and_statuses(
        [JobStatus.SCHEDULED, JobStatus.RETRYABLE]
    )
    waiting = await retryable(backend, delay=FAR_FUTURE, uniqueness=criteria, priority=4)
    before = await backend.get_job(waiting)

    default_replace = criteria.on_conflict(Replace.priority())
    result = await _unique(backend, default_replace, priority=0)
    assert (result.job_id, result.duplicate) == (waiting, True)
    assert await backend.get_job(waiting) == before

    retryable_replace = criteria.on_conflict(Replace.priority().for_statuses([JobStatus.RETRYABLE]))
    result = await _unique(backend, retryable_replace, priority=0)
    assert (result.job_id, result.duplicate) == (waiting, True)
    stored = await backend.get_job(waiting)
    assert stored.priority == 0
    assert stored.status is JobStatus.RETRYABLE
    assert stored.attempt == 1
    assert stored.errors == before.errors


async def test_replace_never_touches_a_job_the_criteria_do_not_match(backend: Backend) -> None:
    done = await finished(backend, JobStatus.COMPLETE, uniqueness=UniquenessCriteria.by_key("k"))
    before = await backend.get_job(done)
    action = Replace.priority().for_statuses(JobStatus.ALL)
    result = await _unique(backend, UniquenessCriteria.by_key("k").on_conflict(action), priority=3)
    assert not result.duplicate
    assert await backend.get_job(done) == before


# -- concurrency and batches -----------------------------------------------------------------


async def test_concurrent_identical_unique_enqueues_store_one_job(backend: Backend) -> None:
    criteria = UniquenessCriteria.by_key("only-once").and_executor()
    results = await asyncio.gather(*(_unique(backend, criteria, data={"i": i}) for i in range(20)))
    assert len({r.job_id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert await _count(backend) == 1


async def test_concurrent_keyless_unique_enqueues_store_one_job(backend: Backend) -> None:
    criteria = UniquenessCriteria.by_executor().and_within(timedelta(minutes=1))
    results = await asyncio.gather(*(_unique(backend, criteria) for _ in range(20)))
    assert len({r.job_id for r in results}) == 1
    assert await _count(backend) == 1


async def test_enqueue_many_resolves_duplicates_inside_the_batch(backend: Backend) -> None:
    criteria = UniquenessCriteria.by_key("k")
    results = await backend.enqueue_many(
        [
            new_job(data={"i": 0}, uniqueness=criteria),
            new_job(data={"i": 1}),
            new_job(data={"i": 2}, uniqueness=criteria),
            new_job(data={"i": 3}, uniqueness=UniquenessCriteria.by_key("other")),
        ]
    )
    assert [r.duplicate for r in results] == [False, False, True, False]
    assert results[2].job_id == results[0].job_id
    assert len({r.job_id for r in results}) == 3
    assert await _count(backend) == 3
    assert (await backend.get_job(results[0].job_id)).data == {"i": 0}


async def test_enqueue_many_resolves_duplicates_of_stored_jobs(backend: Backend) -> None:
    stored = await _unique(backend, UniquenessCriteria.by_key("k"))
    results = await backend.enqueue_many(
        [new_job(uniqueness=UniquenessCriteria.by_key("k")), new_job()]
    )
    assert (results[0].job_id, results[0].duplicate) == (stored.job_id, True)
    assert not results[1].duplicate
    assert await _count(backend) == 2
