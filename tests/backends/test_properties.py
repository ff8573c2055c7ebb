"""Property-based tests: arbitrary strings, tags, keys and nested data thrown at enqueue,
queries and uniqueness on every backend. Nothing may fail but with a clear validation error,
nothing may be lost or altered, and no value may change the meaning of a query."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rexecutor import (
    Executor,
    Job,
    JobStatus,
    UniquenessCriteria,
    ValidationError,
    Where,
    enqueue_many,
)
from rexecutor._payload import _has_nul as _contains_nul
from rexecutor.backend import Backend
from rexecutor.query import ExecutorEquals

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

text = st.text(max_size=30)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False, width=32).filter(lambda f: f != int(f))
    | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)


class Anything(Executor[Any, Any]):
    """Accepts any JSON data; each example gets its own name so examples do not mix."""

    name = "anything"

    async def execute(self, job: Job[Any, Any]) -> None:
        return None


def fresh_executor() -> type[Anything]:
    return type("Fresh", (Anything,), {"name": f"prop-{uuid.uuid4().hex}"})


@SETTINGS
@given(data=json_values, metadata=json_values, tags=st.lists(text, max_size=4))
async def test_any_json_round_trips_or_is_refused_clearly(
    backend: Backend, data: Any, metadata: Any, tags: list[str]
) -> None:
    executor = fresh_executor()
    builder = executor.builder().with_data(data).with_metadata(metadata).with_tags(tags)
    if _contains_nul([data, metadata, tags]):
        try:
            await builder.enqueue_to_backend(backend)
        except ValidationError as exc:
            assert "NUL" in str(exc)
        else:
            raise AssertionError("a NUL character was accepted")
        assert await backend.query(ExecutorEquals(executor.name)) == []
        return
    job_id = await builder.enqueue_to_backend(backend)
    job = await backend.get_job(job_id)
    assert (job.data, job.metadata, job.tags) == (data, metadata, tags)
    found = await executor.query_jobs_on_backend(
        Where.data_equals(data) & Where.metadata_equals(metadata), backend
    )
    assert [j.id for j in found] == [job_id]
    if tags:
        by_tags = await executor.query_jobs_on_backend(Where.tagged_by_all_of(tags), backend)
        assert [j.id for j in by_tags] == [job_id]


@SETTINGS
@given(
    tag_sets=st.lists(
        st.lists(text.filter(lambda t: "\x00" not in t), max_size=3), min_size=1, max_size=5
    ),
    wanted=st.lists(text.filter(lambda t: "\x00" not in t), max_size=3),
)
async def test_tag_queries_mean_what_they_say(
    backend: Backend, tag_sets: list[list[str]], wanted: list[str]
) -> None:
    executor = fresh_executor()
    results = await enqueue_many(
        [executor.builder().with_data(i).with_tags(tags) for i, tags in enumerate(tag_sets)],
        backend,
    )
    ids = [int(r.job_id) for r in results]
    one_of = await executor.query_jobs_on_backend(Where.tagged_by_one_of(wanted), backend)
    all_of = await executor.query_jobs_on_backend(Where.tagged_by_all_of(wanted), backend)
    neither = await executor.query_jobs_on_backend(
        ~Where.tagged_by_one_of(wanted) | Where.id_in([]), backend
    )
    expect_one = [i for i, tags in zip(ids, tag_sets, strict=True) if set(tags) & set(wanted)]
    expect_all = [i for i, tags in zip(ids, tag_sets, strict=True) if set(wanted) <= set(tags)]
    assert [int(j.id) for j in one_of] == expect_one
    assert [int(j.id) for j in all_of] == expect_all
    assert [int(j.id) for j in neither] == [i for i in ids if i not in expect_one]


@SETTINGS
@given(keys=st.lists(json_values.filter(lambda v: not _contains_nul(v)), min_size=1, max_size=6))
async def test_unique_keys_of_any_shape_dedupe_exactly(backend: Backend, keys: list[Any]) -> None:
    executor = fresh_executor()
    first: dict[int, int] = {}
    for key in keys + keys:
        criteria = UniquenessCriteria.by_key(key).and_executor().and_statuses(JobStatus.ALL)
        result = (
            await executor.builder().with_data(None).unique(criteria).enqueue_with_result(backend)
        )
        hashed = criteria.key
        assert hashed is not None
        if hashed in first:
            assert result.duplicate and result.job_id == first[hashed]
        else:
            assert not result.duplicate
            first[hashed] = int(result.job_id)
    stored = await backend.query(ExecutorEquals(executor.name))
    assert sorted(int(j.id) for j in stored) == sorted(first.values())


@SETTINGS
@given(value=text)
async def test_hostile_strings_only_ever_match_themselves(backend: Backend, value: str) -> None:
    executor = fresh_executor()
    other = await executor.builder().with_data("plain").enqueue_to_backend(backend)
    if "\x00" in value:
        return
    mine = await executor.builder().with_data(value).with_tags([value]).enqueue_to_backend(backend)
    by_data = await executor.query_jobs_on_backend(Where.data_equals(value), backend)
    by_tag = await executor.query_jobs_on_backend(Where.tagged_by_one_of([value]), backend)
    expected = [other, mine] if value == "plain" else [mine]
    assert [j.id for j in by_data] == expected
    assert [j.id for j in by_tag] == [mine]
    assert len(await backend.query(ExecutorEquals(executor.name))) == 2


async def test_payload_size_limit_is_enforced_with_a_clear_error(backend: Backend) -> None:
    executor = fresh_executor()
    backend.max_payload_bytes = 1000
    try:
        await executor.builder().with_data("x" * 900).enqueue_to_backend(backend)
        try:
            await executor.builder().with_data("x" * 2000).enqueue_to_backend(backend)
        except ValidationError as exc:
            assert "over the backend's limit of 1000 bytes" in str(exc)
        else:
            raise AssertionError("an oversized payload was accepted")
    finally:
        backend.max_payload_bytes = 1024 * 1024
    assert len(await backend.query(ExecutorEquals(executor.name))) == 1
