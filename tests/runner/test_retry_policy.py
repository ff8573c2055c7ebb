"""The retry policy per exception (``discard_on``, ``snooze_on``, a backoff that sees the error),
on every backend: through the runner's per-job path (``drain``), a running node, and process
mode. Time is a ``FakeClock``, so retry and snooze times are exact."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, ClassVar

import pytest

from rexecutor import ErrorType, ExecutionResult, Executor, Job, JobStatus, Rexecutor
from rexecutor.backend import Backend, EnqueuableJob
from rexecutor.testing import DrainResult, FakeClock, drain
from tests.support.waiting import wait_for_status


class Gone(Exception):
    """The thing the job works on no longer exists: retrying cannot help."""


class Flaky(Exception):
    """Worth retrying soon-ish."""


class Policy(Executor[str, None]):
    """Fails the way its data says."""

    name = "policy"
    max_attempts = 3
    discard_on = (Gone, LookupError, TimeoutError)
    snooze_on = {ConnectionError: timedelta(minutes=5), KeyError: timedelta(minutes=1)}
    seen: ClassVar[list[tuple[int, str | None]]] = []

    async def execute(self, job: Job[str, None]) -> ExecutionResult | None:
        match job.data:
            case "gone":
                raise Gone("the invoice was deleted")
            case "gone_result":
                return ExecutionResult.Error(Gone("the invoice was deleted"))
            case "key":
                raise KeyError("k")  # a LookupError, but KeyError is named itself
            case "index":
                raise IndexError("i")
            case "reset":
                raise ConnectionResetError("peer went away")
            case "flaky":
                raise Flaky("try again")
            case "cancel":
                return ExecutionResult.Cancel("not wanted")
            case "slow":
                await asyncio.sleep(10)
        return None

    def timeout(self, job: Job[str, None]) -> timedelta | None:
        return timedelta(milliseconds=50) if job.data == "slow" else None

    def backoff(self, job: Job[str, None], error: BaseException | None) -> timedelta:
        Policy.seen.append((job.attempt, None if error is None else type(error).__name__))
        return timedelta(minutes=7) if isinstance(error, Flaky) else timedelta(minutes=2)


class Legacy(Executor[str, None]):
    """A backoff written before it could see the error."""

    name = "legacy"

    async def execute(self, job: Job[str, None]) -> None:
        raise Flaky("again")

    def backoff(self, job: Job[str, None]) -> timedelta:  # type: ignore[override]
        return timedelta(minutes=9)


class Everything(Executor[int, None]):
    """Snoozes on any exception of its own code, and only of its own code."""

    name = "everything"
    max_attempts = 2
    snooze_on = {Exception: timedelta(hours=1)}

    async def execute(self, job: Job[int, None]) -> ExecutionResult | None:
        if job.data == 1:
            return ExecutionResult.Snooze(timedelta(days=999_999_999))  # cannot be stored
        raise ValueError("mine")


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    with FakeClock() as installed:
        yield installed


@pytest.fixture(autouse=True)
def _reset() -> None:
    Policy.seen = []


async def _drain_one(
    backend: Backend, data: str, executor: type[Executor[str, None]] = Policy, **kw: Any
) -> tuple[DrainResult, Job[Any, Any]]:
    builder = executor.builder().with_data(data)
    if "max_attempts" in kw:
        builder = builder.with_max_attempts(kw["max_attempts"])
    job_id = await builder.enqueue_to_backend(backend)
    result = await drain(executor, backend=backend)
    return result, await backend.get_job(job_id)


@pytest.mark.parametrize(
    ("data", "error_type"), [("gone", ErrorType.EXCEPTION), ("gone_result", ErrorType.USER)]
)
async def test_an_exception_in_discard_on_discards_at_once(
    backend: Backend, clock: FakeClock, data: str, error_type: ErrorType
) -> None:
    result, job = await _drain_one(backend, data)
    assert result == DrainResult(discarded=1)
    assert (job.status, job.attempt, job.max_attempts) == (JobStatus.DISCARDED, 1, 3)
    assert job.discarded_at is not None
    [error] = job.errors
    assert (error.error_type, error.name, error.details) == (
        error_type,
        "Gone",
        "the invoice was deleted",
    )
    assert Policy.seen == []  # no retry follows: no backoff asked for


async def test_an_exception_in_snooze_on_gives_the_attempt_back_and_records_the_error(
    backend: Backend, clock: FakeClock
) -> None:
    result, job = await _drain_one(backend, "reset")
    assert result == DrainResult(snoozed=1)
    assert (job.status, job.attempt) == (JobStatus.SCHEDULED, 0)
    assert job.scheduled_at == clock.now() + timedelta(minutes=5)
    [error] = job.errors
    assert (error.error_type, error.name, error.attempt) == (
        ErrorType.EXCEPTION,
        "ConnectionResetError",
        1,
    )
    # Snoozing never uses an attempt: more snoozes than max_attempts never discard it.
    for _ in range(Policy.max_attempts):
        clock.advance(minutes=5)
        assert await drain(Policy, backend=backend) == DrainResult(snoozed=1)
    job = await backend.get_job(job.id)
    assert (job.status, job.attempt, len(job.errors)) == (JobStatus.SCHEDULED, 0, 4)
    assert Policy.seen == []


@pytest.mark.parametrize(
    ("data", "status", "delay"),
    [("key", JobStatus.SCHEDULED, timedelta(minutes=1)), ("index", JobStatus.DISCARDED, None)],
)
async def test_the_most_specific_class_named_wins(
    backend: Backend, clock: FakeClock, data: str, status: JobStatus, delay: timedelta | None
) -> None:
    _, job = await _drain_one(backend, data)
    assert job.status is status
    if delay is not None:
        assert job.scheduled_at == clock.now() + delay


async def test_the_backoff_is_computed_after_the_attempt_with_its_error(
    backend: Backend, clock: FakeClock
) -> None:
    result, job = await _drain_one(backend, "flaky")
    assert result == DrainResult(retryable=1)
    assert job.status is JobStatus.RETRYABLE
    assert job.scheduled_at == clock.now() + timedelta(minutes=7)
    assert Policy.seen == [(1, "Flaky")]
    # The last attempt is discarded: no retry follows, so no backoff is asked for.
    _, last = await _drain_one(backend, "flaky", max_attempts=1)
    assert last.status is JobStatus.DISCARDED
    assert Policy.seen == [(1, "Flaky")]


async def test_a_timeout_keeps_its_meaning(backend: Backend, clock: FakeClock) -> None:
    """TimeoutError is in discard_on, but the runner's time limit is no exception of the job."""
    result, job = await _drain_one(backend, "slow")
    assert result == DrainResult(retryable=1)
    assert job.errors[0].error_type is ErrorType.TIMEOUT
    assert job.scheduled_at == clock.now() + timedelta(minutes=2)
    assert Policy.seen == [(1, None)]


async def test_a_cancel_keeps_its_meaning(backend: Backend, clock: FakeClock) -> None:
    result, job = await _drain_one(backend, "cancel")
    assert result == DrainResult(cancelled=1)
    assert job.status is JobStatus.CANCELLED


async def test_an_old_backoff_without_the_error_is_still_called(
    backend: Backend, clock: FakeClock
) -> None:
    _, job = await _drain_one(backend, "x", Legacy)
    assert job.status is JobStatus.RETRYABLE
    assert job.scheduled_at == clock.now() + timedelta(minutes=9)


async def test_the_policy_applies_to_execute_only_not_to_the_runner_checks(
    backend: Backend, clock: FakeClock
) -> None:
    """snooze_on = {Exception: ...} snoozes execute's ValueError, not data that no longer
    decodes nor a snooze too far to store: those still use their attempt."""
    own = await Everything.builder().with_data(0).enqueue_to_backend(backend)
    far = await Everything.builder().with_data(1).enqueue_to_backend(backend)
    bad = (await backend.enqueue(EnqueuableJob("everything", "not an int"))).job_id
    assert await drain(Everything, backend=backend) == DrainResult(retryable=2, snoozed=1)
    assert (await backend.get_job(own)).status is JobStatus.SCHEDULED
    for job_id, error_type in ((far, ErrorType.EXCEPTION), (bad, ErrorType.INVALID_DATA)):
        job = await backend.get_job(job_id)
        assert (job.status, job.attempt) == (JobStatus.RETRYABLE, 1)
        assert job.errors[0].error_type is error_type


async def test_a_running_node_follows_the_policy(backend: Backend) -> None:
    async with Rexecutor(backend).with_executor(Policy):
        gone = await Policy.builder().with_data("gone").enqueue_to_backend(backend)
        reset = await Policy.builder().with_data("reset").enqueue_to_backend(backend)
        flaky = await Policy.builder().with_data("flaky").enqueue_to_backend(backend)
        assert (await wait_for_status(backend, gone, JobStatus.DISCARDED)).attempt == 1
        snoozed = await wait_for_status(backend, reset, JobStatus.SCHEDULED)
        assert (snoozed.attempt, len(snoozed.errors)) == (0, 1)
        await wait_for_status(backend, flaky, JobStatus.RETRYABLE)
    assert Policy.seen == [(1, "Flaky")]


class InChild(Executor[str, None]):
    """The policy of an executor whose attempts run in a child process."""

    name = "policy_in_child"
    run_in_process = True
    max_attempts = 3
    discard_on = (Gone,)
    snooze_on = {ConnectionError: timedelta(minutes=5)}
    seen: ClassVar[list[tuple[str, ...]]] = []

    def execute(self, job: Job[str, None]) -> ExecutionResult | None:
        match job.data:
            case "gone":
                raise Gone("deleted")
            case "gone_result":
                return ExecutionResult.Error(Gone("deleted"))
            case "reset":
                raise ConnectionResetError("peer went away")
        raise Flaky("again")

    def backoff(self, job: Job[str, None], error: BaseException | None) -> timedelta:
        # The child's exception arrives as a stand-in naming its classes.
        InChild.seen.append(tuple(getattr(error, "classes", ())))
        return timedelta(minutes=3)


async def test_process_mode_matches_the_childs_exceptions_by_class(backend: Backend) -> None:
    InChild.seen = []
    ids = {
        data: await InChild.builder().with_data(data).enqueue_to_backend(backend)
        for data in ("gone", "gone_result", "reset", "flaky")
    }
    assert await drain(InChild, backend=backend) == DrainResult(discarded=2, snoozed=1, retryable=1)
    statuses = {data: (await backend.get_job(i)).status for data, i in ids.items()}
    assert statuses == {
        "gone": JobStatus.DISCARDED,
        "gone_result": JobStatus.DISCARDED,
        "reset": JobStatus.SCHEDULED,
        "flaky": JobStatus.RETRYABLE,
    }
    [classes] = InChild.seen
    assert classes[0] == f"{__name__}.Flaky"
    assert "builtins.Exception" in classes


class BrokenBackoff(Executor[str, None]):
    name = "broken_backoff"

    async def execute(self, job: Job[str, None]) -> None:
        raise Flaky("the attempt's own error")

    def backoff(self, job: Job[str, None], error: BaseException | None = None) -> timedelta:
        raise RuntimeError("backoff bug")


async def test_a_failing_backoff_falls_back_to_the_default_and_keeps_the_attempts_error(
    backend: Backend, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    _, job = await _drain_one(backend, "x", BrokenBackoff)
    assert job.status is JobStatus.RETRYABLE
    [error] = job.errors
    assert (error.name, error.details) == ("Flaky", "the attempt's own error")
    # The default backoff's first delay: 4 s, ±10 % jitter.
    wait = job.scheduled_at - clock.now()
    assert timedelta(seconds=3.5) < wait < timedelta(seconds=4.5)
    assert "its executor's backoff failed" in caplog.text
