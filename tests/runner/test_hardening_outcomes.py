"""Every outcome is stored, whatever text or value the job's code produced, on every backend:
lone surrogates, NUL, megabytes of text, ``__str__``/``__repr__`` that raise, a snooze too far
to store. Each job reaches a state with a readable error, and a healthy job still completes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from rexecutor import ErrorType, ExecutionResult, Executor, Job, JobStatus, Rexecutor
from rexecutor._text import DEFAULT_MAX_ERROR_BYTES, cap, clean, describe, storable
from rexecutor.backend import Backend, FailureRecord
from rexecutor.errors import ConfigurationError
from rexecutor.lifecycle import Transition
from tests.support.waiting import wait_for_status

HUGE = "x" * (5 * 1024 * 1024)


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class BadRepr:
    def __repr__(self) -> str:
        raise ValueError("no repr either")


class Hostile(Executor[str, None]):
    """Ends the way its data says, with text no backend could store as given."""

    name = "hostile"

    async def execute(self, job: Job[str, None]) -> ExecutionResult | None:
        match job.data:
            case "surrogate":
                raise ValueError("bad \ud800 text")
            case "nul":
                raise ValueError("bad \x00 text")
            case "huge":
                raise ValueError(HUGE)
            case "unprintable":
                raise Unprintable()
            case "error_nul":
                return ExecutionResult.Error(ValueError("user \x00\ud800 error"))
            case "cancel_surrogate":
                return ExecutionResult.Cancel("reason \udfff\x00")
            case "bad_return":
                return BadRepr()  # type: ignore[return-value]
            case "far_snooze":
                return ExecutionResult.Snooze(timedelta(days=999_999_999))
        return None


async def _run(backend: Backend, data: str, *statuses: JobStatus, **kw: Any) -> Job[Any, Any]:
    job_id = (
        await Hostile.builder().with_data(data).with_max_attempts(1).enqueue_to_backend(backend)
    )
    return await wait_for_status(backend, job_id, *statuses, **kw)


async def _healthy_job_completes(backend: Backend) -> None:
    await _run(backend, "fine", JobStatus.COMPLETE)


@pytest.mark.parametrize(
    ("data", "details"),
    [
        ("surrogate", "bad \ufffd text"),
        ("nul", "bad \\x00 text"),
        ("unprintable", "Unprintable (str() raised RuntimeError)"),
    ],
)
async def test_an_exception_with_unstorable_text_is_recorded_readably(
    backend: Backend, data: str, details: str
) -> None:
    async with Rexecutor(backend).with_executor(Hostile):
        job = await _run(backend, data, JobStatus.DISCARDED)
        [error] = job.errors
        assert error.error_type is ErrorType.EXCEPTION
        assert error.details == details
        assert error.traceback is not None and "Traceback" in error.traceback
        await _healthy_job_completes(backend)


async def test_a_five_megabyte_message_is_capped_with_the_cut_marked(backend: Backend) -> None:
    async with Rexecutor(backend, max_error_bytes=10_000).with_executor(Hostile):
        job = await _run(backend, "huge", JobStatus.DISCARDED)
        [error] = job.errors
        assert len(error.details.encode()) <= 10_000
        assert error.details.startswith("xxxx")
        assert error.details.endswith(" bytes]") and "… [truncated 5,2" in error.details
        assert error.traceback is not None and len(error.traceback.encode()) <= 10_000
        await _healthy_job_completes(backend)


async def test_user_errors_cancel_reasons_and_bad_return_values_are_storable(
    backend: Backend,
) -> None:
    async with Rexecutor(backend).with_executor(Hostile):
        user = await _run(backend, "error_nul", JobStatus.DISCARDED)
        assert (user.errors[0].error_type, user.errors[0].details) == (
            ErrorType.USER,
            "user \\x00\ufffd error",
        )
        cancelled = await _run(backend, "cancel_surrogate", JobStatus.CANCELLED)
        assert cancelled.errors[0].details == "reason \ufffd\\x00"
        returned = await _run(backend, "bad_return", JobStatus.DISCARDED)
        assert returned.errors[0].details == (
            "execute returned <BadRepr (repr() raised ValueError)>; "
            "return an ExecutionResult or None (to keep a value as the job's result, return "
            "ExecutionResult.Done(result))"
        )
        await _healthy_job_completes(backend)


async def test_an_external_cancel_reason_is_made_storable(backend: Backend) -> None:
    job_id = await Hostile.builder().with_data("fine").enqueue_to_backend(backend)
    assert await Hostile.cancel_job_on_backend(job_id, Unprintable(), backend)
    job = await backend.get_job(job_id)
    assert job.status is JobStatus.CANCELLED
    assert job.errors[0].details == "Unprintable (str() raised RuntimeError)"
    other = await Hostile.builder().with_data("fine").enqueue_to_backend(backend)
    assert await Hostile.cancel_job_on_backend(other, "stop \x00 \ud800", backend)
    assert (await backend.get_job(other)).errors[0].details == "stop \\x00 \ufffd"


async def test_a_snooze_too_far_to_store_is_an_error_not_a_stuck_job(backend: Backend) -> None:
    async with Rexecutor(backend).with_executor(Hostile):
        job = await _run(backend, "far_snooze", JobStatus.DISCARDED)
        [error] = job.errors
        assert error.error_type is ErrorType.EXCEPTION
        assert error.details.startswith(
            "the snooze delay datetime.timedelta(days=999999999) cannot be used"
        )
        await _healthy_job_completes(backend)


async def test_an_outcome_the_backend_keeps_refusing_is_replaced_by_a_fallback(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection on the real backend: its discard write raises something unexpected."""
    real = backend.apply_transition
    refused: list[str] = []

    async def refuse_user_errors(job_id: int, fence: Any, transition: Transition) -> bool:
        error = transition.error
        if (
            transition.status is JobStatus.DISCARDED
            and error
            and error.error_type is ErrorType.USER
        ):
            refused.append(error.details)
            raise RuntimeError("the driver choked")
        return await real(job_id, fence, transition)

    monkeypatch.setattr(backend, "apply_transition", refuse_user_errors)
    async with Rexecutor(backend).with_executor(Hostile):
        job = await _run(backend, "error_nul", JobStatus.DISCARDED)
        [error] = job.errors
        assert error.details == (
            "the attempt's outcome (discarded) could not be recorded: "
            "RuntimeError: the driver choked"
        )
        assert len(refused) == 3  # tried UNEXPECTED_WRITE_TRIES times before the fallback
        await _healthy_job_completes(backend)


def test_text_helpers() -> None:
    assert storable("a\x00b") == "a\\x00b"
    assert storable("\ud83d\ude00 \ud800") == "\U0001f600 \ufffd"  # a pair joined, a lone one
    assert storable("plain") == "plain"
    cut = cap("é" * 1000, 100)
    assert len(cut.encode()) <= 100 and cut.startswith("é") and "[truncated" in cut
    assert clean("x" * 10) == "x" * 10
    assert describe(Unprintable()) == "Unprintable (str() raised RuntimeError)"
    record = FailureRecord(ErrorType.EXCEPTION, HUGE, name="\x00", traceback="\ud800")
    assert len(record.details.encode()) <= DEFAULT_MAX_ERROR_BYTES
    assert (record.name, record.traceback) == ("\\x00", "\ufffd")


def test_max_error_bytes_is_validated() -> None:
    from rexecutor.backends import InMemoryBackend

    with pytest.raises(ConfigurationError, match="max_error_bytes"):
        Rexecutor(InMemoryBackend(), max_error_bytes=10)
