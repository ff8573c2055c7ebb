"""perform(): one attempt through the runner's own code, with every outcome, storing nothing."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from pydantic import BaseModel

from rexecutor import ErrorType, ExecutionResult, Executor, Job, ValidationError
from rexecutor.backends import InMemoryBackend
from rexecutor.testing import all_enqueued, perform


class Invoice(BaseModel):
    customer: str
    cents: int


class Charge(Executor[Invoice, str]):
    """Returns whatever the amount asks for: the outcomes in one executor."""

    name = "charge"
    max_attempts = 3

    async def execute(self, job: Job[Invoice, str]) -> ExecutionResult | None:
        assert isinstance(job.data, Invoice)  # decoded by the runner, as on a node
        cents = job.data.cents
        if cents == 0:
            return None
        if cents == 1:
            return ExecutionResult.Snooze(timedelta(minutes=5))
        if cents == 2:
            return ExecutionResult.Cancel("customer closed the account")
        if cents == 3:
            return ExecutionResult.Error(KeyError("card"))
        if cents == 4:
            await asyncio.sleep(10)
        if cents == 5:
            return "not a result"  # type: ignore[return-value]
        raise RuntimeError(f"declined {cents} for {job.metadata}")

    def backoff(self, job: Job[Invoice, str]) -> timedelta:
        return timedelta(seconds=30 * job.attempt)

    def timeout(self, job: Job[Invoice, str]) -> timedelta | None:
        return timedelta(milliseconds=50)


def invoice(cents: int) -> Invoice:
    return Invoice(customer="ann", cents=cents)


async def test_done_and_none_complete() -> None:
    done = await perform(Charge, invoice(0), metadata="m")
    assert done.outcome == "complete"
    assert done.result == ExecutionResult.Done()
    assert done.exception is None and done.error is None and done.delay is None
    assert done.job.data == invoice(0) and done.job.metadata == "m" and done.job.attempt == 1


async def test_an_exception_is_retried_after_the_backoff_then_discarded() -> None:
    first = await perform(Charge, invoice(9), metadata="vip")
    assert first.outcome == "retryable"
    assert isinstance(first.exception, RuntimeError) and first.result is None
    assert first.delay == timedelta(seconds=30)
    assert first.error is not None
    assert first.error.error_type is ErrorType.EXCEPTION
    assert first.error.details == "declined 9 for vip"
    assert first.error.traceback and "RuntimeError" in first.error.traceback
    second = await perform(Charge, invoice(9), attempt=2)
    assert (second.outcome, second.delay) == ("retryable", timedelta(seconds=60))
    last = await perform(Charge, invoice(9), attempt=3)
    assert last.outcome == "discarded" and last.delay is None
    assert (await perform(Charge, invoice(9), attempt=1, max_attempts=1)).outcome == "discarded"


async def test_snooze_cancel_user_errors_timeouts_and_bad_results() -> None:
    snoozed = await perform(Charge, invoice(1))
    assert (snoozed.outcome, snoozed.delay) == ("snoozed", timedelta(minutes=5))
    assert snoozed.result == ExecutionResult.Snooze(timedelta(minutes=5))
    cancelled = await perform(Charge, invoice(2))
    assert cancelled.outcome == "cancelled"
    assert cancelled.error is not None and cancelled.error.error_type is ErrorType.CANCELLED
    user = await perform(Charge, invoice(3))
    assert user.outcome == "retryable"
    assert user.error is not None
    assert (user.error.error_type, user.error.name) == (ErrorType.USER, "KeyError")
    late = await perform(Charge, invoice(4))
    assert late.outcome == "retryable"
    assert late.error is not None and late.error.error_type is ErrorType.TIMEOUT
    odd = await perform(Charge, invoice(5))
    assert odd.outcome == "retryable"
    assert odd.error is not None and "return an ExecutionResult or None" in odd.error.details


async def test_data_is_validated_as_at_enqueue() -> None:
    with pytest.raises(ValidationError, match="data for executor 'charge' is invalid"):
        await perform(Charge, {"customer": "ann", "cents": "lots"})  # type: ignore[arg-type]
    coerced = await perform(Charge, {"customer": "ann", "cents": "0"})  # type: ignore[arg-type]
    assert coerced.outcome == "complete" and coerced.job.data == invoice(0)
    with pytest.raises(ValidationError, match="needs data"):
        await perform(Charge)
    with pytest.raises(Exception, match="attempt must be"):
        await perform(Charge, invoice(0), attempt=4)


class Mailer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []


class SendReceipt(Executor[str, None]):
    """A plain ``def`` executor with a dependency: runs in a worker thread, as on a node."""

    name = "send_receipt"

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer

    def execute(self, job: Job[str, None]) -> None:  # type: ignore[override]
        self.mailer.sent.append((job.data, threading.current_thread().name))


async def test_an_instance_with_dependencies_and_a_blocking_execute(
    rexecutor_backend: InMemoryBackend,
) -> None:
    mailer = Mailer()
    result = await perform(SendReceipt(mailer), "ann@example.com")
    assert result.outcome == "complete"
    [(to, thread)] = mailer.sent
    assert to == "ann@example.com" and thread != threading.current_thread().name
    assert await all_enqueued() == []  # nothing was stored
