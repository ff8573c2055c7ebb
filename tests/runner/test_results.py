"""Results: ``ExecutionResult.Done(result)`` stores ``result`` and ``job.result`` reads it back,
on every backend, through the runner's per-job path (``drain``), a running node, and process
mode. A result that cannot be stored fails the attempt with an error naming why, retried or
discarded as any failure, and loses nothing else."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
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
    ValidationError,
)
from rexecutor.backend import Backend
from rexecutor.testing import DrainResult, FakeClock, drain, perform
from tests.support.waiting import wait_for_status

RESULTS: dict[str, Any] = {
    "dict": {"id": "r-1", "lines": [1, 2.5, None, True], "nested": {"ü": "ß"}},
    "list": ["a", 1],
    "text": "done",
    "number": 7,
    "unencodable": {1, 2},
    "nan": {"ratio": math.nan},
    "infinity": math.inf,
    "nul": "a\x00b",
    "surrogate": ["\ud800"],
    "big": "x" * 2000,
}


class Returns(Executor[str, None]):
    """Returns ``Done(RESULTS[data])``; ``"none"`` returns ``Done(None)``, ``"bare"`` a bare
    value."""

    name = "returns"
    max_attempts = 2
    # Unstorable results are rexecutor's check, not execute's failure: never discarded here.
    discard_on = (ValidationError,)

    async def execute(self, job: Job[str, None]) -> ExecutionResult | None:
        if job.data == "none":
            return ExecutionResult.Done(None)
        if job.data == "bare":
            return {"total": 3}  # type: ignore[return-value]
        return ExecutionResult.Done(RESULTS[job.data])

    def backoff(self, job: Job[str, None], error: BaseException | None = None) -> timedelta:
        return timedelta(minutes=5)


class Receipt(pydantic.BaseModel):
    number: str
    amount: Decimal
    issued_at: datetime


ISSUED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


class Billing(Executor[str, None]):
    """A pydantic model ``result_type``; ``"wrong"`` returns a value that is no receipt."""

    name = "billing"
    result_type = Receipt
    max_attempts = 1

    def execute(self, job: Job[str, None]) -> ExecutionResult | None:
        if job.data == "wrong":
            return ExecutionResult.Done({"number": "r-9"})
        if job.data == "as_dict":
            return ExecutionResult.Done({"number": "r-2", "amount": "1.50", "issued_at": ISSUED})
        return ExecutionResult.Done(
            Receipt(number="r-1", amount=Decimal("12.30"), issued_at=ISSUED)
        )


@dataclasses.dataclass
class Shipment:
    tracking: str
    parcels: list[int]


class Shipping(Executor[str, None]):
    """A dataclass ``result_type``."""

    name = "shipping"
    result_type = Shipment

    async def execute(self, job: Job[str, None]) -> ExecutionResult | None:
        return ExecutionResult.Done(Shipment(tracking=job.data, parcels=[1, 2]))


class InChild(Executor[str, None]):
    """``Done(result)`` returned in a child process (``run_in_process``)."""

    name = "results_in_child"
    run_in_process = True
    result_type = Receipt
    max_attempts = 1

    def execute(self, job: Job[str, None]) -> ExecutionResult | None:
        if job.data == "wrong":
            return ExecutionResult.Done({"number": "r-9"})
        if job.data == "big":
            return ExecutionResult.Done(Receipt(number="r" * 2000, amount=1, issued_at=ISSUED))
        return ExecutionResult.Done(Receipt(number=job.data, amount=Decimal("5"), issued_at=ISSUED))


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    with FakeClock() as installed:
        yield installed


async def _drain_one(
    backend: Backend, executor: type[Executor[str, None]], data: str
) -> tuple[DrainResult, Job[Any, Any]]:
    job_id = await executor.builder().with_data(data).enqueue_to_backend(backend)
    result = await drain(executor, backend=backend)
    return result, await backend.get_job(job_id)


# -- stored and read back ------------------------------------------------------------------------


@pytest.mark.parametrize("data", ["dict", "list", "text", "number"])
async def test_done_with_a_json_result_stores_it(backend: Backend, data: str) -> None:
    result, job = await _drain_one(backend, Returns, data)
    assert result == DrainResult(complete=1)
    assert job.status is JobStatus.COMPLETE
    assert job.result == RESULTS[data]
    assert (await Returns.get_job(job.id, backend)).result == RESULTS[data]


@pytest.mark.parametrize("data", ["none"])
async def test_done_without_a_result_stores_none(backend: Backend, data: str) -> None:
    _, job = await _drain_one(backend, Returns, data)
    assert (job.status, job.result) == (JobStatus.COMPLETE, None)


async def test_a_pydantic_result_type_is_dumped_to_json_and_read_back_as_the_model(
    backend: Backend,
) -> None:
    _, job = await _drain_one(backend, Billing, "receipt")
    assert job.status is JobStatus.COMPLETE
    # Stored as JSON, as pydantic dumps it.
    assert job.result == {
        "number": "r-1",
        "amount": "12.30",
        "issued_at": "2026-12-01T09:30:00Z",
    }
    typed = await Billing.get_job(job.id, backend)
    assert typed.result == Receipt(number="r-1", amount=Decimal("12.30"), issued_at=ISSUED)
    [queried] = await Billing.query_jobs_on_backend(None, backend)
    assert isinstance(queried.result, Receipt)


async def test_a_result_is_validated_through_the_result_type(backend: Backend) -> None:
    _, job = await _drain_one(backend, Billing, "as_dict")
    typed = await Billing.get_job(job.id, backend)
    assert typed.result == Receipt(number="r-2", amount=Decimal("1.50"), issued_at=ISSUED)


async def test_a_dataclass_result_type(backend: Backend) -> None:
    _, job = await _drain_one(backend, Shipping, "TRK-1")
    assert job.result == {"tracking": "TRK-1", "parcels": [1, 2]}
    assert (await Shipping.get_job(job.id, backend)).result == Shipment("TRK-1", [1, 2])


async def test_a_stored_result_that_no_longer_validates_reads_as_its_raw_json(
    backend: Backend,
) -> None:
    # Stored without a result_type; read later by an executor whose result_type it does
    # not match: the job stays readable, the result raw.
    _, job = await _drain_one(backend, Returns, "dict")

    class Renamed(Executor[str, None]):
        name = "returns"
        result_type = Receipt

        async def execute(self, job: Job[str, None]) -> None:
            return None

    assert (await Renamed.get_job(job.id, backend)).result == RESULTS["dict"]


async def test_many_completions_with_and_without_results_in_one_drain(backend: Backend) -> None:
    ids = {}
    for i in range(30):
        data = ("dict", "none", "text")[i % 3]
        ids[i] = (data, await Returns.builder().with_data(data).enqueue_to_backend(backend))
    assert await drain(Returns, backend=backend) == DrainResult(complete=30)
    for data, job_id in ids.values():
        want = None if data == "none" else RESULTS[data]
        assert (await backend.get_job(job_id)).result == want


async def test_a_running_node_stores_results(backend: Backend) -> None:
    async with Rexecutor(backend).with_executor(Billing).with_executor(Returns):
        receipt = await Billing.builder().with_data("receipt").enqueue_to_backend(backend)
        plain = await Returns.builder().with_data("list").enqueue_to_backend(backend)
        await wait_for_status(backend, receipt, JobStatus.COMPLETE)
        await wait_for_status(backend, plain, JobStatus.COMPLETE)
    assert isinstance((await Billing.get_job(receipt, backend)).result, Receipt)
    assert (await backend.get_job(plain)).result == ["a", 1]


async def test_a_rerun_clears_the_result_until_the_job_completes_again(backend: Backend) -> None:
    _, job = await _drain_one(backend, Returns, "text")
    assert job.result == "done"
    await Returns.rerun_job_on_backend(job.id, backend)
    assert (await backend.get_job(job.id)).result is None
    assert await drain(Returns, backend=backend) == DrainResult(complete=1)
    assert (await backend.get_job(job.id)).result == "done"


# -- results that cannot be stored ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ("unencodable", "or declare the executor's result_type to store a model or dataclass"),
        ("nan", "NaN and Infinity have no JSON form"),
        ("infinity", "NaN and Infinity have no JSON form"),
        ("nul", "NUL character"),
        ("surrogate", "lone surrogate"),
    ],
)
async def test_an_unstorable_result_fails_the_attempt_with_a_clear_error(
    backend: Backend, clock: FakeClock, data: str, says: str
) -> None:
    other = await Returns.builder().with_data("text").enqueue_to_backend(backend)
    result, job = await _drain_one(backend, Returns, data)
    # Retried as any failure (discard_on does not apply: the check is rexecutor's).
    assert result == DrainResult(complete=1, retryable=1)
    assert (job.status, job.attempt, job.result) == (JobStatus.RETRYABLE, 1, None)
    assert job.data == data  # nothing else lost
    [error] = job.errors
    assert error.error_type is ErrorType.EXCEPTION
    assert error.name == "ValidationError"
    assert "execute returned a result that cannot be stored" in error.details
    assert "ExecutionResult.Done(result)" in error.details
    assert says in error.details
    assert job.scheduled_at == clock.now() + timedelta(minutes=5)  # the executor's backoff
    assert (await backend.get_job(other)).result == "done"

    # The last attempt fails the same way and discards the job.
    clock.advance(minutes=5)
    assert await drain(Returns, backend=backend) == DrainResult(discarded=1)
    discarded = await backend.get_job(job.id)
    assert (discarded.status, len(discarded.errors)) == (JobStatus.DISCARDED, 2)


async def test_a_result_over_the_backends_payload_limit_fails_the_attempt(
    backend: Backend,
) -> None:
    backend.max_payload_bytes = 1000
    result, job = await _drain_one(backend, Returns, "big")
    assert result == DrainResult(retryable=1)
    [error] = job.errors
    assert error.name == "PayloadTooLarge"
    assert "2002 bytes of JSON, over the backend's limit of 1000 bytes" in error.details
    assert job.result is None
    # Below the limit, the same size is stored.
    backend.max_payload_bytes = 4000
    await Returns.rerun_job_on_backend(job.id, backend)
    assert await drain(Returns, backend=backend) == DrainResult(complete=1)
    assert (await backend.get_job(job.id)).result == RESULTS["big"]


async def test_a_result_that_does_not_match_the_result_type_fails_the_attempt(
    backend: Backend,
) -> None:
    result, job = await _drain_one(backend, Billing, "wrong")
    assert result == DrainResult(discarded=1)  # max_attempts = 1
    [error] = job.errors
    assert error.name == "ValidationError"
    assert "ExecutionResult.Done(result) of a job for executor 'billing' is invalid" in (
        error.details
    )
    assert "amount" in error.details


async def test_a_bare_return_value_is_an_error_naming_done_result(backend: Backend) -> None:
    _, job = await _drain_one(backend, Returns, "bare")
    assert job.status is JobStatus.RETRYABLE
    assert job.result is None
    [error] = job.errors
    assert error.details == (
        "execute returned {'total': 3}; return an ExecutionResult or None (to keep a value "
        "as the job's result, return ExecutionResult.Done(result))"
    )


# -- process mode --------------------------------------------------------------------------------


async def test_process_mode_stores_the_childs_result(backend: Backend) -> None:
    ok = await InChild.builder().with_data("r-7").enqueue_to_backend(backend)
    wrong = await InChild.builder().with_data("wrong").enqueue_to_backend(backend)
    backend.max_payload_bytes = 1000
    big = await InChild.builder().with_data("big").enqueue_to_backend(backend)
    assert await drain(InChild, backend=backend) == DrainResult(complete=1, discarded=2)
    typed = await InChild.get_job(ok, backend)
    assert typed.result == Receipt(number="r-7", amount=Decimal("5"), issued_at=ISSUED)
    [error] = (await backend.get_job(wrong)).errors
    assert error.name == "ValidationError"
    assert "is invalid" in error.details and "amount" in error.details
    [error] = (await backend.get_job(big)).errors
    assert error.name == "PayloadTooLarge"
    assert "over the backend's limit of 1000 bytes" in error.details


# -- rexecutor.testing.perform -------------------------------------------------------------------


async def test_perform_reports_the_stored_result() -> None:
    done = await perform(Billing, "receipt")
    assert done.outcome == "complete"
    assert done.stored_result == Receipt(number="r-1", amount=Decimal("12.30"), issued_at=ISSUED)
    plain = await perform(Returns, "dict")
    assert plain.stored_result == RESULTS["dict"]
    assert (await perform(Returns, "none")).stored_result is None
    refused = await perform(Returns, "nan")
    assert (refused.outcome, refused.stored_result) == ("retryable", None)
    assert refused.error is not None and "NaN" in refused.error.details


class NotAType:
    """No pydantic schema: an unusable result_type."""


class Misconfigured(Executor[str, None]):
    name = "misconfigured"
    result_type = NotAType
    max_attempts = 1

    async def execute(self, job: Job[str, None]) -> ExecutionResult | None:
        return ExecutionResult.Done({"any": "thing"})


async def test_an_unusable_result_type_fails_the_attempt_and_leaves_jobs_readable(
    backend: Backend,
) -> None:
    _, job = await _drain_one(backend, Misconfigured, "x")
    assert job.status is JobStatus.DISCARDED
    [error] = job.errors
    assert error.name == "ConfigurationError"
    assert "pydantic cannot validate its result_type" in error.details
    # A result stored meanwhile (by another version of the code) still reads, raw.
    _, stored = await _drain_one(backend, Returns, "dict")

    class Reader(Executor[str, None]):
        name = "returns"
        result_type = NotAType

        async def execute(self, job: Job[str, None]) -> None:
            return None

    assert (await Reader.get_job(stored.id, backend)).result == RESULTS["dict"]


class MisconfiguredInChild(Executor[str, None]):
    name = "misconfigured_in_child"
    run_in_process = True
    result_type = NotAType
    max_attempts = 1

    def execute(self, job: Job[str, None]) -> ExecutionResult | None:
        return ExecutionResult.Done({"any": "thing"})


async def test_process_mode_names_an_unusable_result_type(backend: Backend) -> None:
    _, job = await _drain_one(backend, MisconfiguredInChild, "x")
    assert job.status is JobStatus.DISCARDED
    [error] = job.errors
    assert error.name == "ConfigurationError"
    assert "pydantic cannot validate its result_type" in error.details
