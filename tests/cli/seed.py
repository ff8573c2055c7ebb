"""Jobs in every status, for the command line and dashboard tests.

``seed`` puts them in place through the backend protocol (deterministic: each job is claimed
and moved on by hand). ``run_real_jobs`` runs a real node on the backend instead, so errors
carry real tracebacks and the throughput chart has real points.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rexecutor import ExecutionResult, Executor, Job, JobStatus, Rexecutor
from rexecutor._payload import check_result
from rexecutor.backend import Backend, Completion, EnqueuableJob, FailureRecord, Lease, NodeInfo
from rexecutor.job import ErrorType
from tests.backends._helpers import mark_cancelled, mark_discarded, mark_retryable
from tests.support.waiting import eventually

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "app/mail.py", line 12, in execute\n'
    "    smtp.send(job.data)\n"
    "ConnectionRefusedError: smtp.example.com refused the connection\n"
)


#: What the complete email job stored as its result.
RESULT = {"message_id": "<m-1@example.com>"}


@dataclass
class Seeded:
    """The ids of the seeded jobs, by what they are."""

    complete: int
    discarded: int
    discarded_other: int
    retryable: int
    executing: int
    scheduled: int
    cancelled: int
    report: int


async def _claim(backend: Backend, executor: str, job: EnqueuableJob) -> tuple[int, Lease]:
    await backend.enqueue(job)
    [claimed] = await backend.claim_ready_jobs(executor, 1, "node-a")
    return int(claimed.id), Lease("node-a", claimed.attempt)


async def seed(backend: Backend) -> Seeded:
    """Email jobs in every status, one report job, and a node with a recent heartbeat."""
    email = "email"
    failure = FailureRecord(
        ErrorType.EXCEPTION,
        "smtp.example.com refused the connection",
        name="ConnectionRefusedError",
        traceback=TRACEBACK,
    )
    complete, lease = await _claim(backend, email, EnqueuableJob(email, "ann@example.com"))
    stored = check_result(RESULT, email, None)
    assert await backend.complete_jobs([Completion(complete, lease, stored)]) == [True]
    discarded, lease = await _claim(
        backend, email, EnqueuableJob(email, "bob@example.com", max_attempts=1, tags=("signup",))
    )
    assert await mark_discarded(backend, discarded, lease, failure)
    other, lease = await _claim(
        backend, email, EnqueuableJob(email, "cy@example.com", max_attempts=1, tags=("bulk",))
    )
    assert await mark_discarded(backend, other, lease, failure)
    retryable, lease = await _claim(
        backend, email, EnqueuableJob(email, "dee@example.com", metadata={"campaign": 7})
    )
    assert await mark_retryable(backend, retryable, lease, timedelta(hours=1), failure)
    executing, _ = await _claim(backend, email, EnqueuableJob(email, "eve@example.com"))
    later = await backend.enqueue(
        EnqueuableJob(
            email,
            {"to": "fay@example.com", "subject": "<b>hi</b>"},
            tags=("signup", "vip"),
            scheduled_at=_in(hours=2),
        )
    )
    gone = await backend.enqueue(EnqueuableJob(email, "gus@example.com", scheduled_at=_in(hours=3)))
    assert await mark_cancelled(
        backend, gone.job_id, None, FailureRecord(ErrorType.CANCELLED, "customer left")
    )
    report = await backend.enqueue(EnqueuableJob("report", {"month": "2026-10"}, priority=3))
    await backend.record_heartbeat(NodeInfo("node-a", host="worker-1", pid=4242))
    return Seeded(
        complete=complete,
        discarded=discarded,
        discarded_other=other,
        retryable=retryable,
        executing=executing,
        scheduled=int(later.job_id),
        cancelled=int(gone.job_id),
        report=int(report.job_id),
    )


def _in(**delta: float) -> Any:
    from rexecutor import _clock

    return _clock.now() + timedelta(**delta)


class Greet(Executor[str, None]):
    """Always succeeds."""

    name = "greet"

    async def execute(self, job: Job[str, None]) -> None:
        await asyncio.sleep(0.001)


class Invoice(Executor[int, None]):
    """Fails for odd numbers, until discarded; snoozes nothing."""

    name = "invoice"
    max_attempts = 2

    def backoff(self, job: Job[int, None]) -> timedelta:
        return timedelta(0)

    async def execute(self, job: Job[int, None]) -> ExecutionResult | None:
        if job.data % 2:
            raise ValueError(f"invoice {job.data} has no customer")
        return None


async def run_real_jobs(backend: Backend, greetings: int = 30, invoices: int = 10) -> None:
    """Run a real node until ``greetings`` greet jobs and ``invoices`` invoice jobs finished."""

    def ours(counts: dict[tuple[str, JobStatus], int]) -> int:
        return sum(
            n
            for (executor, status), n in counts.items()
            if status.is_terminal and executor in (Greet.name, Invoice.name)
        )

    before = ours(await backend.count_jobs())
    rex = Rexecutor(backend).with_executor(Greet).with_executor(Invoice)
    async with rex:
        for i in range(greetings):
            await Greet.builder().with_data(f"visitor {i}").enqueue_to_backend(backend)
        for i in range(invoices):
            await Invoice.builder().with_data(i).with_tags(["billing"]).enqueue_to_backend(backend)

        async def finished() -> bool:
            return ours(await backend.count_jobs()) >= before + greetings + invoices

        await eventually(finished, timeout=60)
    assert JobStatus.DISCARDED in {s for (_, s) in await backend.count_jobs()}
