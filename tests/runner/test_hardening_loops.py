"""A node's loops never die: an unexpected exception in claiming, outcome writes, the cancel
watch, cron or pruning is logged, reported as ``runner.error``, backed off and retried; the
OpenTelemetry span of every attempt is ended, whatever its outcome."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rexecutor import Executor, Job, JobStatus, Rexecutor, telemetry
from rexecutor.backend import Backend
from rexecutor.backends import InMemoryBackend
from rexecutor.contrib.otel import JobTracing
from tests.support.waiting import eventually, wait_for_status


class Simple(Executor[str, None]):
    name = "simple"
    max_attempts = 1

    async def execute(self, job: Job[str, None]) -> None:
        if job.data == "unprintable":
            raise Unprintable()


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


@pytest.fixture
def errors() -> Iterator[list[telemetry.Event]]:
    seen: list[telemetry.Event] = []
    telemetry.attach("test-runner-error", ["runner.error"], seen.append)
    try:
        yield seen
    finally:
        telemetry.detach("test-runner-error")


class Faulty:
    """Fault injection on a real backend: the first ``times`` calls of a method raise."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, backend: Backend, method: str, times: int):
        self.calls = 0
        real = getattr(backend, method)

        async def faulty(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls <= times:
                raise KeyError(f"injected fault {self.calls}")
            return await real(*args, **kwargs)

        monkeypatch.setattr(backend, method, faulty)


async def test_a_claim_that_keeps_failing_never_kills_the_runner(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, errors: list[telemetry.Event]
) -> None:
    fault = Faulty(monkeypatch, backend, "claim_ready_jobs", times=4)
    rex = Rexecutor(backend, poll_interval=0.05).with_executor(Simple)
    async with rex:
        job_id = await Simple.builder().with_data("fine").enqueue_to_backend(backend)
        await wait_for_status(backend, job_id, JobStatus.COMPLETE)
        assert fault.calls > 4
        assert all(not task.done() for task in rex._claimers)
    claims = [e for e in errors if e.metadata["where"] == "claiming jobs"]
    assert [e.measurements["failures"] for e in claims] == [1, 2, 3, 4]
    assert [e.measurements["retry_in"] for e in claims] == [0.1, 0.2, 0.4, 0.8]
    assert claims[0].metadata["error_type"] == "KeyError"
    assert claims[0].metadata["executor"] == "simple"
    assert claims[0].metadata["node_id"] == rex.node_id


async def test_a_failing_batch_of_completions_is_written_one_by_one(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, errors: list[telemetry.Event]
) -> None:
    Faulty(monkeypatch, backend, "complete_jobs", times=10)
    async with Rexecutor(backend).with_executor(Simple):
        job_id = await Simple.builder().with_data("fine").enqueue_to_backend(backend)
        await wait_for_status(backend, job_id, JobStatus.COMPLETE)
    assert {e.metadata["where"] for e in errors} == {"writing a job outcome"}


async def test_the_cancel_watch_survives_an_unexpected_error(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, errors: list[telemetry.Event]
) -> None:
    class Slow(Executor[None, None]):
        name = "slow_watch"

        async def execute(self, job: Job[None, None]) -> None:
            import asyncio

            await asyncio.sleep(30)

    fault = Faulty(monkeypatch, backend, "lost_jobs", times=2)
    async with Rexecutor(backend, cancel_check_interval=0.05).with_executor(Slow) as rex:
        job_id = await Slow.builder().enqueue_to_backend(backend)
        await wait_for_status(backend, job_id, JobStatus.EXECUTING)
        await eventually(lambda: fault.calls > 2)
        assert await Slow.cancel_job_on_backend(job_id, "stop", backend)
        await eventually(lambda: rex.running_jobs == 0)
    assert [e.metadata["where"] for e in errors][:2] == ["watching for cancelled jobs"] * 2


async def test_a_failing_pruning_rule_is_reported_and_tried_again(
    monkeypatch: pytest.MonkeyPatch, errors: list[telemetry.Event]
) -> None:
    from rexecutor import Pruner, PrunerConfig

    backend = InMemoryBackend()
    fault = Faulty(monkeypatch, backend, "prune_jobs", times=2)
    config = PrunerConfig(
        "* * * * * *", pruners=(Pruner.max_age(timedelta(days=1), JobStatus.COMPLETE),)
    )
    async with Rexecutor(backend).with_job_pruner(config) as rex:
        await eventually(lambda: fault.calls >= 3, timeout=10)
        assert all(not task.done() for task in rex._services)
    assert [e.metadata["where"] for e in errors] == ["pruning", "pruning"]


async def test_a_failing_cron_catch_up_is_reported_and_tried_again(
    monkeypatch: pytest.MonkeyPatch, errors: list[telemetry.Event]
) -> None:
    from rexecutor._cron_jobs import enqueue_tick
    from rexecutor.cron import CronSchedule
    from rexecutor.query import TagsAllOf
    from rexecutor.testing import FakeClock

    backend = InMemoryBackend()
    real_query = backend.query
    faults = 0

    async def query(where: Any, **kwargs: Any) -> Any:
        # Only the catch-up's look-up of the last tick (the one query by a tag) fails, twice.
        nonlocal faults
        children = getattr(where, "children", ())
        if faults < 2 and any(isinstance(child, TagsAllOf) for child in children):
            faults += 1
            raise KeyError(f"injected fault {faults}")
        return await real_query(where, **kwargs)

    start = datetime(2030, 1, 1, tzinfo=UTC)
    with FakeClock(start) as clock:
        await enqueue_tick(Simple, CronSchedule("0 * * * *"), "tick", None, backend, start)
        clock.set(start + timedelta(hours=3, minutes=5))
        monkeypatch.setattr(backend, "query", query)
        rex = Rexecutor(backend).with_cron_executor(
            Simple, "0 * * * *", data="tick", catch_up="all"
        )
        async with rex:

            async def caught_up() -> bool:
                return len(await Simple.query_jobs_on_backend(None, backend)) == 4

            await eventually(caught_up)
    assert faults == 2
    assert [e.metadata["where"] for e in errors] == ["cron", "cron"]


async def test_the_span_of_every_attempt_is_ended(backend: Backend) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = JobTracing(provider).attach()
    try:
        async with Rexecutor(backend).with_executor(Simple):
            ids = [
                await Simple.builder().with_data(data).enqueue_to_backend(backend)
                for data in ("unprintable", "fine", "unprintable")
            ]
            for job_id in ids:
                await wait_for_status(backend, job_id, JobStatus.COMPLETE, JobStatus.DISCARDED)
            await eventually(lambda: len(exporter.get_finished_spans()) == 3)
        assert tracing._open == {}
    finally:
        tracing.detach()
