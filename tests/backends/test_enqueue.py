"""Conformance: ``enqueue`` and ``enqueue_many`` store jobs exactly as given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from rexecutor.backend import Backend
from rexecutor.errors import ValidationError
from rexecutor.job import JobStatus
from rexecutor.query import Where
from rexecutor.testing import FakeClock

from ._helpers import assert_between, assert_utc, enqueue, find, new_job, utcnow


async def test_enqueue_returns_increasing_ids(backend: Backend) -> None:
    first = await enqueue(backend)
    second = await enqueue(backend, "other")
    third = await enqueue(backend)
    assert first < second < third


async def test_enqueue_returns_not_duplicate_for_a_plain_job(backend: Backend) -> None:
    result = await backend.enqueue(new_job())
    assert result.duplicate is False


async def test_enqueued_job_is_stored_with_its_fields(backend: Backend) -> None:
    when = utcnow() + timedelta(minutes=10)
    before = utcnow()
    job_id = await enqueue(
        backend,
        "mailer",
        {"to": "a@example.com", "n": [1, 2, {"x": None}]},
        metadata={"trace": "abc"},
        max_attempts=3,
        scheduled_at=when,
        tags=("b", "a", "c"),
        priority=7,
    )
    after = utcnow()

    job = await backend.get_job(job_id)
    assert job.id == job_id
    assert job.executor == "mailer"
    assert job.status is JobStatus.SCHEDULED
    assert job.data == {"to": "a@example.com", "n": [1, 2, {"x": None}]}
    assert job.metadata == {"trace": "abc"}
    assert job.attempt == 0
    assert job.max_attempts == 3
    assert job.priority == 7
    assert job.tags == ["b", "a", "c"]
    assert job.errors == []
    assert job.scheduled_at == when
    assert_utc(job.scheduled_at)
    assert_between(job.inserted_at, before, after)
    assert job.attempted_at is None
    assert job.completed_at is None
    assert job.cancelled_at is None
    assert job.discarded_at is None


async def test_enqueued_job_defaults(backend: Backend) -> None:
    job = await backend.get_job(await enqueue(backend))
    assert job.metadata is None
    assert job.tags == []
    assert job.priority == 0
    assert job.max_attempts == 5


async def test_scheduled_at_none_means_now(backend: Backend) -> None:
    before = utcnow()
    job = await backend.get_job(await enqueue(backend))
    after = utcnow()
    assert_between(job.scheduled_at, before, after)


async def test_scheduled_at_in_another_timezone_is_stored_as_the_same_instant_in_utc(
    backend: Backend,
) -> None:
    plus_two = timezone(timedelta(hours=2))
    when = datetime(2030, 5, 17, 12, 30, 15, 123456, tzinfo=plus_two)
    job = await backend.get_job(await enqueue(backend, scheduled_at=when))
    assert job.scheduled_at == when
    assert_utc(job.scheduled_at)
    assert job.scheduled_at == datetime(2030, 5, 17, 10, 30, 15, 123456, tzinfo=UTC)


async def test_microseconds_of_scheduled_at_are_kept(backend: Backend) -> None:
    when = datetime(2031, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    job = await backend.get_job(await enqueue(backend, scheduled_at=when))
    assert job.scheduled_at == when


async def test_scheduled_at_in_the_past_is_accepted(backend: Backend) -> None:
    when = utcnow() - timedelta(days=3)
    job = await backend.get_job(await enqueue(backend, scheduled_at=when))
    assert job.scheduled_at == when
    assert job.status is JobStatus.SCHEDULED


@pytest.mark.parametrize("max_attempts", [0, -1])
async def test_max_attempts_below_one_is_rejected(backend: Backend, max_attempts: int) -> None:
    with pytest.raises(ValidationError):
        await backend.enqueue(new_job(max_attempts=max_attempts))
    assert await find(backend, Where.everything()) == []


async def test_max_attempts_of_one_is_accepted(backend: Backend) -> None:
    job = await backend.get_job(await enqueue(backend, max_attempts=1))
    assert job.max_attempts == 1


async def test_naive_scheduled_at_is_rejected(backend: Backend) -> None:
    with pytest.raises(ValidationError):
        await backend.enqueue(new_job(scheduled_at=datetime(2030, 1, 1, 12, 0)))
    assert await find(backend, Where.everything()) == []


async def test_priority_far_out_of_range_is_rejected(backend: Backend) -> None:
    with pytest.raises(ValidationError):
        await backend.enqueue(new_job(priority=2**40))


async def test_negative_priority_is_rejected(backend: Backend) -> None:
    # The builder refuses it too: every path applies the same rule.
    with pytest.raises(ValidationError, match="priority"):
        await backend.enqueue(new_job(priority=-5))
    assert await find(backend, Where.everything()) == []


async def test_json_values_of_every_kind_round_trip(backend: Backend) -> None:
    data = {
        "str": "text",
        "int": -42,
        "big": 2**53,
        "float": 1.5,
        "true": True,
        "false": False,
        "null": None,
        "list": [1, "two", [3.25], {"four": 4}],
        "empty": {"list": [], "dict": {}, "str": ""},
    }
    job = await backend.get_job(await enqueue(backend, data=data, metadata=["m", 1, None]))
    assert job.data == data
    assert job.metadata == ["m", 1, None]
    assert type(job.data["true"]) is bool
    assert type(job.data["int"]) is int
    assert type(job.data["float"]) is float


async def test_scalar_data_round_trips(backend: Backend) -> None:
    first = await enqueue(backend, data="just a string")
    second = await enqueue(backend, data=12)
    assert (await backend.get_job(first)).data == "just a string"
    assert (await backend.get_job(second)).data == 12


async def test_changing_the_enqueued_value_afterwards_does_not_change_the_stored_job(
    backend: Backend,
) -> None:
    data = {"items": [1, 2]}
    metadata = {"trace": "x"}
    job_id = await enqueue(backend, data=data, metadata=metadata)
    data["items"].append(3)
    metadata["trace"] = "changed"
    job = await backend.get_job(job_id)
    assert job.data == {"items": [1, 2]}
    assert job.metadata == {"trace": "x"}


async def test_changing_a_returned_job_does_not_change_the_stored_job(backend: Backend) -> None:
    job_id = await enqueue(backend, data={"items": [1]}, tags=("a",))
    job = await backend.get_job(job_id)
    job.data["items"].append(2)
    job.tags.append("b")
    job.status = JobStatus.COMPLETE
    again = await backend.get_job(job_id)
    assert again.data == {"items": [1]}
    assert again.tags == ["a"]
    assert again.status is JobStatus.SCHEDULED


async def test_enqueue_many_returns_one_result_per_job_in_order(backend: Backend) -> None:
    jobs = [new_job("a", {"i": 0}), new_job("b", {"i": 1}), new_job("a", {"i": 2}, priority=3)]
    results = await backend.enqueue_many(jobs)
    assert len(results) == 3
    assert [r.duplicate for r in results] == [False, False, False]
    assert results[0].job_id < results[1].job_id < results[2].job_id
    for result, job in zip(results, jobs, strict=True):
        stored = await backend.get_job(result.job_id)
        assert stored.executor == job.executor
        assert stored.data == job.data
        assert stored.priority == job.priority
        assert stored.status is JobStatus.SCHEDULED
    assert sorted(await find(backend, Where.everything())) == sorted(r.job_id for r in results)


#: Bigger than the batches PostgreSQL stores by COPY (``COPY_AT_LEAST``).
LARGE_BATCH = 1_100


async def test_a_large_batch_stores_every_field_of_every_job_in_order(backend: Backend) -> None:
    # Texts that COPY's formats must escape, and every optional field, set on some jobs only.
    awkward = ["tab\there", "line\nbreak", "back\\slash", '{"brace", quote}', "NULL", "ü€😀", ""]
    later = utcnow() + timedelta(hours=1)
    jobs = [
        new_job(
            f"ex {awkward[i % 6]}",
            {"i": i, "text": awkward[i % len(awkward)], "nested": [None, 1.5, {"k": "\\N"}]},
            metadata={"m": awkward[i % 7]} if i % 2 else None,
            tags=tuple(awkward[(i + k) % len(awkward)] for k in range(i % 3)),
            priority=i % 4,
            max_attempts=1 + i % 7,
            scheduled_at=later + timedelta(microseconds=i) if i % 5 == 0 else None,
            partition_key=awkward[i % 6] if i % 3 == 0 else None,
        )
        for i in range(LARGE_BATCH)
    ]
    before = utcnow()
    results = await backend.enqueue_many(jobs)
    after = utcnow()
    ids = [r.job_id for r in results]
    assert ids == sorted(ids) and len(set(ids)) == LARGE_BATCH
    assert not any(r.duplicate for r in results)
    everything = {j.id: j for j in await backend.query(Where.everything().node)}
    for job_id, job in zip(ids, jobs, strict=True):
        stored = everything[job_id]
        assert (stored.executor, stored.data, stored.metadata) == (
            job.executor,
            job.data,
            job.metadata,
        )
        assert tuple(stored.tags) == job.tags
        assert (stored.priority, stored.max_attempts) == (job.priority, job.max_attempts)
        assert stored.partition_key == job.partition_key
        assert stored.status is JobStatus.SCHEDULED and stored.attempt == 0
        assert_between(stored.inserted_at, before, after)
        if job.scheduled_at is None:
            assert stored.scheduled_at == stored.inserted_at
        else:
            assert stored.scheduled_at == job.scheduled_at
    due = await backend.claim_ready_jobs(jobs[1].executor, LARGE_BATCH, "node-1")
    assert {j.id for j in due} == {
        i
        for i, job in zip(ids, jobs, strict=True)
        if job.executor == jobs[1].executor and job.scheduled_at is None
    }


async def test_a_large_batch_with_one_job_refused_stores_none_of_it(backend: Backend) -> None:
    # PostgreSQL checks such a batch while COPY streams it: the refusal comes mid-stream.
    jobs = [new_job(data={"i": i}) for i in range(LARGE_BATCH)]
    jobs[-2] = new_job(data={"ratio": float("nan")})
    with pytest.raises(ValidationError, match="NaN"):
        await backend.enqueue_many(jobs)
    assert await find(backend, Where.everything()) == []
    # The backend goes on working, with a batch of the same size and path.
    results = await backend.enqueue_many([new_job(data={"i": i}) for i in range(LARGE_BATCH)])
    assert sorted(await find(backend, Where.everything())) == [r.job_id for r in results]


async def test_a_large_batch_under_the_test_clock_is_stamped_with_its_time(
    backend: Backend,
) -> None:
    start = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    with FakeClock(start):
        results = await backend.enqueue_many([new_job(data={"i": i}) for i in range(LARGE_BATCH)])
        for result in results[:: LARGE_BATCH // 5]:
            stored = await backend.get_job(result.job_id)
            assert stored.inserted_at == start
            assert stored.scheduled_at == start


async def test_enqueue_many_of_nothing_stores_nothing(backend: Backend) -> None:
    assert await backend.enqueue_many([]) == []
    assert await find(backend, Where.everything()) == []


async def test_enqueue_many_rejects_max_attempts_below_one(backend: Backend) -> None:
    with pytest.raises(ValidationError):
        await backend.enqueue_many([new_job(max_attempts=0)])
