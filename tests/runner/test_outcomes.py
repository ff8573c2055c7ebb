"""How the runner turns each kind of attempt outcome into a job state (memory backend)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import pytest

from rexecutor import (
    ErrorType,
    ExecutionResult,
    Executor,
    Job,
    JobStatus,
    Rexecutor,
)
from rexecutor.backend import EnqueuableJob
from rexecutor.backends import InMemoryBackend
from tests.support.waiting import wait_for_status


class Outcome(Executor[str, None]):
    """Does what its data says."""

    name = "outcome"
    max_attempts = 2

    async def execute(self, job: Job[str, None]) -> ExecutionResult | None:
        match job.data:
            case "done":
                return ExecutionResult.Done()
            case "none":
                return None
            case "raise":
                raise ValueError("it broke")
            case "error":
                return ExecutionResult.Error(QuotaExceeded("over quota"))
            case "snooze":
                return ExecutionResult.Snooze(timedelta(hours=1))
            case "cancel":
                return ExecutionResult.Cancel("not needed any more")
            case "slow":
                await asyncio.sleep(10)
            case "weird":
                return "not a result"  # type: ignore[return-value]
        return None

    def timeout(self, job: Job[str, None]) -> timedelta | None:
        return timedelta(milliseconds=100) if job.data == "slow" else None

    def backoff(self, job: Job[str, None]) -> timedelta:
        return timedelta(minutes=10)


class QuotaExceeded(Exception):
    error_type = "quota"


@pytest.fixture
async def node() -> Any:
    backend = InMemoryBackend()
    rex = Rexecutor(backend).with_executor(Outcome)
    async with rex:
        yield rex


async def run(rex: Rexecutor, data: str, *statuses: JobStatus, **kw: Any) -> Job[Any, Any]:
    job_id = await Outcome.builder().with_data(data).enqueue_to_backend(rex.backend)
    return await wait_for_status(rex.backend, job_id, *statuses, **kw)


@pytest.mark.parametrize("data", ["done", "none"])
async def test_done_and_none_complete_the_job(node: Rexecutor, data: str) -> None:
    job = await run(node, data, JobStatus.COMPLETE)
    assert job.attempt == 1
    assert job.completed_at is not None
    assert job.errors == []


async def test_an_exception_is_recorded_with_its_traceback_and_retried_after_backoff(
    node: Rexecutor,
) -> None:
    before = datetime.now(UTC)
    job = await run(node, "raise", JobStatus.RETRYABLE)
    [error] = job.errors
    assert error.error_type is ErrorType.EXCEPTION
    assert error.name == "ValueError"
    assert error.details == "it broke"
    assert error.traceback is not None and "it broke" in error.traceback
    assert error.attempt == 1
    assert before + timedelta(minutes=9) < job.scheduled_at < before + timedelta(minutes=11)


async def test_the_last_failed_attempt_discards_the_job(node: Rexecutor) -> None:
    job_id = (
        await Outcome.builder()
        .with_data("raise")
        .with_max_attempts(1)
        .enqueue_to_backend(node.backend)
    )
    job = await wait_for_status(node.backend, job_id, JobStatus.DISCARDED)
    assert job.discarded_at is not None
    assert [e.attempt for e in job.errors] == [1]


async def test_a_user_error_records_its_error_type(node: Rexecutor) -> None:
    job = await run(node, "error", JobStatus.RETRYABLE)
    [error] = job.errors
    assert (error.error_type, error.name, error.details) == (ErrorType.USER, "quota", "over quota")


async def test_snooze_gives_the_attempt_back_and_records_no_error(node: Rexecutor) -> None:
    job = await run(node, "snooze", JobStatus.SCHEDULED)
    assert job.attempt == 0
    assert job.errors == []
    assert job.scheduled_at > datetime.now(UTC) + timedelta(minutes=59)


async def test_cancel_result_cancels_for_good_with_the_reason(node: Rexecutor) -> None:
    job = await run(node, "cancel", JobStatus.CANCELLED)
    [error] = job.errors
    assert (error.error_type, error.details) == (ErrorType.CANCELLED, "not needed any more")
    assert job.cancelled_at is not None


async def test_an_attempt_that_outruns_its_timeout_is_a_timeout_error(node: Rexecutor) -> None:
    job = await run(node, "slow", JobStatus.RETRYABLE)
    [error] = job.errors
    assert error.error_type is ErrorType.TIMEOUT
    assert "0:00:00.100000" in error.details


async def test_a_wrong_return_value_is_an_error_that_says_what_to_return(node: Rexecutor) -> None:
    job = await run(node, "weird", JobStatus.RETRYABLE)
    assert "return an ExecutionResult or None" in job.errors[0].details


async def test_stored_data_that_no_longer_validates_fails_the_attempt_and_runner_goes_on(
    node: Rexecutor,
) -> None:
    bad = await node.backend.enqueue(EnqueuableJob("outcome", {"not": "a string"}))
    job = await wait_for_status(node.backend, bad.job_id, JobStatus.RETRYABLE)
    [error] = job.errors
    assert error.error_type is ErrorType.INVALID_DATA
    assert "no longer validates" in error.details
    assert (await run(node, "done", JobStatus.COMPLETE)).status is JobStatus.COMPLETE


class Point(pydantic.BaseModel):
    x: int
    y: int


@dataclass
class Meta:
    source: str


class Typed(Executor[Point, Meta]):
    name = "typed"
    seen: list[tuple[Any, Any]] = []

    async def execute(self, job: Job[Point, Meta]) -> None:
        self.seen.append((job.data, job.metadata))


async def test_data_and_metadata_arrive_as_the_declared_types() -> None:
    backend = InMemoryBackend()
    async with Rexecutor(backend).with_executor(Typed):
        job_id = await (
            Typed.builder()
            .with_data(Point(x=1, y=2))
            .with_metadata(Meta("api"))
            .enqueue_to_backend(backend)
        )
        await wait_for_status(backend, job_id, JobStatus.COMPLETE)
    assert Typed.seen == [(Point(x=1, y=2), Meta("api"))]
    stored = await backend.get_job(job_id)
    assert (stored.data, stored.metadata) == ({"x": 1, "y": 2}, {"source": "api"})
