"""perform() and drain() follow the executor's retry policy, as a node does."""

from __future__ import annotations

from datetime import timedelta

from rexecutor import ErrorType, ExecutionResult, Executor, Job, JobStatus
from rexecutor.backend import Backend
from rexecutor.testing import DrainResult, FakeClock, drain, perform


class CardDeclined(Exception):
    pass


class GatewayDown(ConnectionError):
    pass


class Pay(Executor[str, None]):
    name = "pay"
    max_attempts = 4
    discard_on = (CardDeclined,)
    snooze_on = {ConnectionError: timedelta(minutes=10)}

    async def execute(self, job: Job[str, None]) -> ExecutionResult | None:
        if job.data == "declined":
            raise CardDeclined("card declined")
        if job.data == "declined_result":
            return ExecutionResult.Error(CardDeclined("card declined"))
        if job.data == "down":
            raise GatewayDown("gateway down")
        raise ValueError(f"attempt {job.attempt} failed")

    def backoff(self, job: Job[str, None], error: BaseException | None) -> timedelta:
        # The error is known: a ValueError naming attempt 2 waits 2 minutes.
        assert isinstance(error, ValueError)
        return timedelta(minutes=int(str(error).split()[1]))


async def test_perform_discards_on_a_discard_on_exception_raised_or_returned() -> None:
    raised = await perform(Pay, "declined")
    assert (raised.outcome, raised.delay) == ("discarded", None)
    assert isinstance(raised.exception, CardDeclined)
    assert raised.error is not None and raised.error.name == "CardDeclined"
    returned = await perform(Pay, "declined_result")
    assert returned.outcome == "discarded"
    assert returned.error is not None and returned.error.error_type is ErrorType.USER


async def test_perform_snoozes_on_a_snooze_on_exception_with_its_error() -> None:
    snoozed = await perform(Pay, "down", attempt=4)  # even the last attempt is given back
    assert (snoozed.outcome, snoozed.delay) == ("snoozed", timedelta(minutes=10))
    assert isinstance(snoozed.exception, GatewayDown)
    assert snoozed.error is not None and snoozed.error.details == "gateway down"


async def test_perform_computes_the_backoff_with_the_error() -> None:
    retried = await perform(Pay, "other", attempt=2)
    assert (retried.outcome, retried.delay) == ("retryable", timedelta(minutes=2))
    assert (await perform(Pay, "other", attempt=4)).outcome == "discarded"


async def test_drain_follows_the_policy(clocked_backend: Backend) -> None:
    with FakeClock() as clock:
        ids = [
            await Pay.builder().with_data(data).enqueue_to_backend(clocked_backend)
            for data in ("declined", "down", "other")
        ]
        assert await drain(Pay, backend=clocked_backend) == DrainResult(
            discarded=1, snoozed=1, retryable=1
        )
        declined, down, other = [await clocked_backend.get_job(i) for i in ids]
        assert declined.status is JobStatus.DISCARDED
        assert (down.status, down.attempt) == (JobStatus.SCHEDULED, 0)
        assert down.scheduled_at == clock.now() + timedelta(minutes=10)
        assert other.scheduled_at == clock.now() + timedelta(minutes=1)
        result = await drain(Pay, backend=clocked_backend, with_scheduled=True)
        assert result == DrainResult(snoozed=1, retryable=1)
