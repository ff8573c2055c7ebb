"""Hostile values at enqueue and update: one rule on every backend and every path.

Whatever the path (``backend.enqueue`` called directly, ``enqueue_many``, the builder,
``update_job``), a value no backend can store faithfully is refused with a ``ValidationError``
that names the field, and nothing is stored.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rexecutor import Executor, Job, PayloadTooLarge, ValidationError, Where, enqueue_many
from rexecutor.backend import Backend, EnqueuableJob

from ._helpers import (
    CANCEL,
    enqueue,
    find,
    mark_cancelled,
    mark_retryable,
    new_job,
)

#: UTC year 10000 and UTC year 0: aware datetimes no backend can store.
YEAR_10000 = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-14)))
YEAR_0 = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))
NAIVE = datetime(2030, 1, 1, 12, 0)


class Floats(Executor[float, None]):
    name = "hardening-float"

    async def execute(self, job: Job[float, None]) -> None:
        return None


async def assert_nothing_stored(backend: Backend) -> None:
    assert await find(backend, Where.everything()) == []


BAD_JOBS: dict[str, tuple[dict[str, Any], str]] = {
    "NUL in data": ({"data": {"a": "x\x00y"}}, "data"),
    "NUL in a key": ({"data": {"k\x00": 1}}, "data"),
    "NUL in metadata": ({"metadata": ["\x00"]}, "metadata"),
    "NUL in a tag": ({"tags": ("a", "b", "c", "d\x00")}, "tags[3]"),
    "lone surrogate in data": ({"data": "\ud800"}, "data"),
    "lone surrogate in metadata": ({"metadata": {"x": "a\udfffb"}}, "metadata"),
    "lone surrogate in a tag": ({"tags": ("ok", "\udc80")}, "tags[1]"),
    "NaN in data": ({"data": {"x": float("nan")}}, "data"),
    "Infinity in data": ({"data": [float("inf")]}, "data"),
    "-Infinity in metadata": ({"metadata": float("-inf")}, "metadata"),
    "a tag that is not a string": ({"tags": ("a", 3)}, "tags[1]"),
    "negative priority": ({"priority": -1}, "priority"),
    "priority beyond 32 bits": ({"priority": 2**31}, "priority"),
    "no attempts": ({"max_attempts": 0}, "max_attempts"),
    "UTC year 10000": ({"scheduled_at": YEAR_10000}, "scheduled_at"),
    "UTC year 0": ({"scheduled_at": YEAR_0}, "scheduled_at"),
    "naive scheduled_at": ({"scheduled_at": NAIVE}, "scheduled_at"),
    "data that is not JSON": ({"data": {1, 2}}, "data"),
}


@pytest.mark.parametrize(("fields", "field"), BAD_JOBS.values(), ids=BAD_JOBS.keys())
async def test_enqueue_refuses_what_no_backend_can_store(
    backend: Backend, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError, match=field.replace("[", r"\[")):
        await backend.enqueue(new_job(**fields))
    with pytest.raises(ValidationError, match=field.replace("[", r"\[")):
        await backend.enqueue_many([new_job(), new_job(**fields)])
    await assert_nothing_stored(backend)


@pytest.mark.parametrize(
    "executor", ["", "x" * 2049, "a\x00b", "\ud800", 42], ids=["empty", "long", "nul", "sur", "int"]
)
async def test_enqueue_refuses_a_bad_executor_name(backend: Backend, executor: Any) -> None:
    with pytest.raises(ValidationError, match="executor"):
        await backend.enqueue(EnqueuableJob(executor, {}))
    await assert_nothing_stored(backend)


async def test_tags_count_toward_the_payload_limit(backend: Backend) -> None:
    backend.max_payload_bytes = 10_000
    with pytest.raises(PayloadTooLarge, match=r"tags \d+"):
        await backend.enqueue(new_job(tags=("t" * 5_000, "u" * 5_000)))
    # Called directly, as the builder would: the backend applies the limit itself.
    with pytest.raises(PayloadTooLarge):
        await backend.enqueue(new_job(data="d" * 10_001))
    with pytest.raises(PayloadTooLarge):
        await backend.enqueue_many([new_job(), new_job(metadata="m" * 10_001)])
    await assert_nothing_stored(backend)
    await enqueue(backend, data="d" * 9_000)  # within the limit


async def test_a_literal_backslash_u0000_is_not_a_nul(backend: Backend) -> None:
    job = await backend.get_job(await enqueue(backend, data={"text": "\\u0000"}))
    assert job.data == {"text": "\\u0000"}


async def test_the_builder_refuses_nan_for_a_float_executor(backend: Backend) -> None:
    with pytest.raises(ValidationError, match="NaN"):
        await Floats.builder().with_data(float("nan")).enqueue_to_backend(backend)
    with pytest.raises(ValidationError, match="data"):
        await enqueue_many([Floats.builder().with_data(float("inf"))], backend)
    await assert_nothing_stored(backend)


@pytest.mark.parametrize("moment", [YEAR_10000, YEAR_0], ids=["year-10000", "year-0"])
async def test_unstorable_datetimes_are_refused_on_every_path(
    backend: Backend, moment: datetime
) -> None:
    with pytest.raises(ValidationError, match="schedule_at"):
        Floats.builder().with_data(1).schedule_at(moment)
    with pytest.raises(ValidationError, match="scheduled_at"):
        await backend.enqueue(new_job(scheduled_at=moment))
    with pytest.raises(ValidationError, match="scheduled_at"):
        await backend.enqueue_many([new_job(scheduled_at=moment)])
    for where in (Where.scheduled_at_before, Where.scheduled_at_after, Where.scheduled_at_equals):
        with pytest.raises(ValidationError, match="query datetime"):
            where(moment)
    with pytest.raises(ValidationError):
        Where.scheduled_at_older_than(timedelta(days=999_999_999))
    await assert_nothing_stored(backend)
    job = await backend.get_job(await enqueue(backend))
    before = await backend.get_job(job.id)
    job.scheduled_at = moment
    with pytest.raises(ValidationError, match="scheduled_at"):
        await backend.update_job(job)
    assert await backend.get_job(job.id) == before


async def test_the_edges_of_the_accepted_range_round_trip_in_any_offset(backend: Backend) -> None:
    from rexecutor._payload import EARLIEST, LATEST

    for moment in (EARLIEST, LATEST):
        for hours in (-14, 0, 14):
            shown = moment.astimezone(timezone(timedelta(hours=hours)))
            job = await backend.get_job(await enqueue(backend, scheduled_at=shown))
            assert job.scheduled_at == moment and job.scheduled_at.tzinfo is UTC


UPDATES: dict[str, tuple[str, Any, str]] = {
    "negative priority": ("priority", -1, "priority"),
    "no attempts": ("max_attempts", 0, "max_attempts"),
    "NaN data": ("data", float("nan"), "data"),
    "NUL metadata": ("metadata", "\x00", "metadata"),
    "surrogate tag": ("tags", ["a", "\ud83d"], r"tags\[1\]"),
    "huge tags": ("tags", ["x" * 2_000_000], "limit"),
    "naive time": ("scheduled_at", NAIVE, "scheduled_at"),
}


@pytest.mark.parametrize(("attribute", "value", "field"), UPDATES.values(), ids=UPDATES.keys())
async def test_update_job_applies_the_same_rule(
    backend: Backend, attribute: str, value: Any, field: str
) -> None:
    job = await backend.get_job(await enqueue(backend, data={"v": 1}))
    before = await backend.get_job(job.id)
    setattr(job, attribute, value)
    with pytest.raises(ValidationError, match=field):
        await backend.update_job(job)
    assert await backend.get_job(job.id) == before


async def test_huge_retry_and_snooze_delays_stay_storable(backend: Backend) -> None:
    from ._helpers import FAILURE, executing

    job, lease = await executing(backend)
    assert await mark_retryable(backend, job.id, lease, timedelta(days=999_999_999), FAILURE)
    stored = await backend.get_job(job.id)
    assert stored.scheduled_at.year < 9999


edge_moments = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 4)),
    st.datetimes(min_value=datetime(9999, 12, 29), max_value=datetime(9999, 12, 31, 23, 59)),
    st.datetimes(),
)
offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(local=edge_moments, offset=offsets)
async def test_any_aware_datetime_is_stored_exactly_or_refused_clearly(
    backend: Backend, local: datetime, offset: timezone
) -> None:
    from rexecutor._payload import EARLIEST, LATEST

    moment = local.replace(tzinfo=offset)
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        utc = None
    storable = utc is not None and EARLIEST <= utc <= LATEST
    try:
        job_id = await enqueue(backend, scheduled_at=moment)
    except ValidationError as exc:
        assert not storable, f"{moment!r} was refused: {exc}"
        assert "scheduled_at" in str(exc)
        return
    assert storable, f"{moment!r} was accepted"
    job = await backend.get_job(job_id)
    assert job.scheduled_at == utc
    # Examples share the backend: earlier jobs may sit at the same moment.
    found = await backend.query(Where.scheduled_at_equals(moment).node)
    assert job_id in [j.id for j in found] and all(j.scheduled_at == utc for j in found)
    await mark_cancelled(backend, job_id, None, CANCEL)
