"""rexecutor.testing: exact counts, every filter, and a failure message that shows the queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rexecutor import Executor, Job, Rexecutor
from rexecutor.backends import InMemoryBackend
from rexecutor.testing import all_enqueued, assert_enqueued, refute_enqueued, reset_global_backend


class Notify(Executor[dict[str, int], str]):
    name = "notify"

    async def execute(self, job: Job[dict[str, int], str]) -> None:
        return None


class Other(Executor[str, None]):
    name = "other"

    async def execute(self, job: Job[str, None]) -> None:
        return None


@pytest.fixture
async def backend() -> Any:
    backend = InMemoryBackend().paused()
    Rexecutor(backend).set_global_backend()
    yield backend
    reset_global_backend()


async def test_count_is_exact(backend: InMemoryBackend) -> None:
    for i in range(2):
        await Notify.builder().with_data({"n": i}).enqueue()
    await assert_enqueued(for_executor=Notify, count=2)
    with pytest.raises(AssertionError, match="expected 1 enqueued job"):
        await assert_enqueued(for_executor=Notify)


async def test_every_filter(backend: InMemoryBackend) -> None:
    soon = datetime.now(UTC) + timedelta(hours=1)
    await (
        Notify.builder()
        .with_data({"n": 1})
        .with_metadata("m")
        .with_tags(["a", "b"])
        .schedule_at(soon)
        .enqueue()
    )
    await Notify.builder().with_data({"n": 2}).enqueue()
    await Other.builder().with_data("x").enqueue()
    await assert_enqueued(for_executor=Notify, with_data={"n": 1}, with_metadata="m")
    await assert_enqueued(for_executor="notify", tagged_with=["a"])
    await assert_enqueued(scheduled_after=soon - timedelta(minutes=1))
    await assert_enqueued(count=2, scheduled_before=soon - timedelta(minutes=1))
    await assert_enqueued(count=3)
    await refute_enqueued(for_executor=Other, with_data="y")
    assert len(await all_enqueued(for_executor=Other)) == 1


async def test_the_failure_message_lists_what_is_enqueued(backend: InMemoryBackend) -> None:
    await Other.builder().with_data("visible").enqueue()
    with pytest.raises(AssertionError) as info:
        await assert_enqueued(for_executor=Notify, with_data={"n": 9})
    message = str(info.value)
    assert "for_executor='notify'" in message and "with_data={'n': 9}" in message
    assert "found 0" in message
    assert "other [scheduled] data='visible'" in message


async def test_a_paused_backend_never_hands_jobs_to_runners() -> None:
    backend = InMemoryBackend().paused()
    async with Rexecutor(backend).with_executor(Other):
        job_id = await Other.builder().with_data("x").enqueue_to_backend(backend)
        import asyncio

        await asyncio.sleep(0.2)
    assert (await backend.get_job(job_id)).attempt == 0
    await assert_enqueued(for_executor=Other, backend=backend)
