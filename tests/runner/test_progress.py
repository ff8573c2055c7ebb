"""``report_progress`` on a real node: the job being run reports, readers see it through
``get_job`` while it runs, writes are rate-limited (counted at the backend), the last report
survives the end of the attempt, and bad calls raise in the caller only.

Time is the test clock's: the rate limit's interval passes when the test moves it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rexecutor import (
    ConfigurationError,
    Executor,
    Job,
    JobProgress,
    JobStatus,
    Rexecutor,
    ValidationError,
    report_progress,
)
from rexecutor.backend import Backend, EnqueuableJob, Lease
from rexecutor.progress import (
    MAX_MESSAGE_BYTES,
    PROGRESS_INTERVAL,
    ProgressReporter,
    is_from_earlier_attempt,
)
from rexecutor.testing import FakeClock, perform
from tests.support.waiting import eventually, wait_for_status


class Gate:
    """Holds a job until the test opens it; usable from the loop and from threads."""

    reached = threading.Event()
    release = threading.Event()

    @classmethod
    def reset(cls) -> None:
        cls.reached = threading.Event()
        cls.release = threading.Event()

    @classmethod
    async def wait_async(cls) -> None:
        cls.reached.set()
        await asyncio.to_thread(cls.release.wait, 10)


class TightLoop(Executor[int, None]):
    """Reports ``data`` times in a loop that only yields to the event loop, waits at the
    gate, then reports 100."""

    name = "tight_loop"

    async def execute(self, job: Job[int, None]) -> None:
        for n in range(job.data):
            await report_progress(100 * n / job.data, message=f"step {n}")
            await asyncio.sleep(0)
        await Gate.wait_async()
        await report_progress(100, message="done")


class Blocking(Executor[int, None]):
    """A plain ``def execute``, run in a worker thread, reporting without awaiting."""

    name = "blocking_progress"

    def execute(self, job: Job[int, None]) -> None:
        for n in range(job.data):
            report_progress(n, message="in a thread")
        Gate.reached.set()
        Gate.release.wait(10)
        report_progress(100, message="thread done")


class InAChild(Executor[str, None]):
    """Runs in a child process: reports, waits for the gate file ``data``, reports 100."""

    name = "progress_in_process"
    run_in_process = True

    def execute(self, job: Job[str, None]) -> None:
        report_progress(50, message="waiting in a child")
        gate = Path(job.data)
        for _ in range(1000):
            if gate.exists():
                break
            time.sleep(0.01)
        for n in range(100):
            report_progress(n, message="after the gate")
        report_progress(100, message="child done")


class BadCalls(Executor[None, None]):
    """Makes every kind of bad call, catching each, between two good reports."""

    name = "bad_calls"
    refused: list[str] = []

    async def execute(self, job: Job[None, None]) -> None:
        await report_progress(30, message="before")
        bad: list[tuple[Any, Any]] = [
            (float("nan"), None),
            (float("inf"), None),
            (True, None),
            (-0.5, None),
            (100.01, None),
            ("50", None),
            (None, None),
            (50, 7),
            (50, b"bytes"),
        ]
        for percent, message in bad:
            try:
                report_progress(percent, message)
            except ValidationError as exc:
                type(self).refused.append(str(exc))
        await report_progress(60, message="x\x00y" + "é" * 5000)


@pytest.fixture(autouse=True)
def _gate() -> Iterator[None]:
    Gate.reset()
    BadCalls.refused = []
    yield
    Gate.release.set()


@pytest.fixture
def clock(backend: Backend) -> Iterator[FakeClock]:
    if not backend.capabilities.follows_test_clock:
        pytest.skip(f"{type(backend).__name__} does not follow the test clock")
    with FakeClock() as installed:
        yield installed


def count_writes(backend: Backend) -> list[JobProgress]:
    """Wrap the instance's ``record_progress`` to list what reaches the backend (the real
    method still stores it)."""
    writes: list[JobProgress] = []
    original = backend.record_progress

    async def counting(job_id: int, lease: Lease, progress: JobProgress) -> bool:
        stored = await original(job_id, lease, progress)
        writes.append(progress)  # once stored, so that a read after it sees it
        return stored

    backend.record_progress = counting  # type: ignore[method-assign]
    return writes


@pytest.fixture
async def node(backend: Backend, clock: FakeClock) -> AsyncIterator[Rexecutor]:
    rex = Rexecutor(backend, poll_interval=0.05).with_executor(TightLoop)
    rex.with_executor(Blocking).with_executor(BadCalls).with_executor(InAChild)
    async with rex:
        try:
            yield rex
        finally:
            Gate.release.set()  # a failed test must not leave a job holding the shutdown


async def _enqueue(backend: Backend, executor: str, data: Any) -> int:
    return int((await backend.enqueue(EnqueuableJob(executor, data))).job_id)


async def _progress(backend: Backend, job_id: int) -> JobProgress | None:
    return (await backend.get_job(job_id)).progress


async def test_a_tight_loop_writes_once_per_interval_and_the_latest_wins(
    backend: Backend, clock: FakeClock, node: Rexecutor
) -> None:
    writes = count_writes(backend)
    job_id = await _enqueue(backend, "tight_loop", 1000)
    await eventually(Gate.reached.is_set)
    # The first report is written at once; the 999 after it wait for the interval.
    await eventually(lambda: len(writes) == 1)
    first = await _progress(backend, job_id)
    assert first is not None and (first.percent, first.message) == (0.0, "step 0")
    assert first.updated_at == clock.now()
    await asyncio.sleep(0.05)
    assert len(writes) == 1
    clock.advance(PROGRESS_INTERVAL)
    await eventually(lambda: len(writes) == 2)
    latest = await _progress(backend, job_id)
    assert latest is not None and (latest.percent, latest.message) == (99.9, "step 999")
    assert (await backend.get_job(job_id)).status is JobStatus.EXECUTING
    # The report after the gate is pending when the job returns: written before the outcome.
    Gate.release.set()
    done = await wait_for_status(backend, job_id, JobStatus.COMPLETE)
    assert done.progress is not None and (done.progress.percent, done.progress.message) == (
        100.0,
        "done",
    )
    assert len(writes) == 3


async def test_a_blocking_job_reports_from_its_thread(
    backend: Backend, clock: FakeClock, node: Rexecutor
) -> None:
    writes = count_writes(backend)
    job_id = await _enqueue(backend, "blocking_progress", 50)
    await eventually(Gate.reached.is_set)
    await eventually(lambda: len(writes) == 1)
    # Which report the first write took depends on the thread's pace; the latest is
    # written by the end of the interval at the latest.
    clock.advance(PROGRESS_INTERVAL)

    async def latest_stored() -> bool:
        running = await _progress(backend, job_id)
        return running is not None and (running.percent, running.message) == (49.0, "in a thread")

    await eventually(latest_stored)
    assert len(writes) <= 2
    Gate.release.set()
    done = await wait_for_status(backend, job_id, JobStatus.COMPLETE)
    assert done.progress is not None and done.progress.message == "thread done"


async def test_a_job_in_a_child_process_reports_through_its_node(
    backend: Backend, clock: FakeClock, node: Rexecutor, tmp_path: Path
) -> None:
    writes = count_writes(backend)
    gate = tmp_path / "gate"
    job_id = await _enqueue(backend, "progress_in_process", str(gate))

    async def waiting_shown() -> bool:
        shown = await _progress(backend, job_id)
        return shown is not None and (shown.percent, shown.message) == (50, "waiting in a child")

    await eventually(waiting_shown)
    assert (await backend.get_job(job_id)).status is JobStatus.EXECUTING
    gate.touch()
    done = await wait_for_status(backend, job_id, JobStatus.COMPLETE)
    assert done.progress is not None
    assert (done.progress.percent, done.progress.message) == (100, "child done")
    # One write at once, at most one more within the interval (the clock stood still), and
    # the last report, written as the attempt ended.
    assert 2 <= len(writes) <= 3


async def test_bad_calls_raise_in_the_job_and_change_nothing(
    backend: Backend, clock: FakeClock, node: Rexecutor
) -> None:
    job_id = await _enqueue(backend, "bad_calls", None)
    done = await wait_for_status(backend, job_id, JobStatus.COMPLETE)
    assert len(BadCalls.refused) == 9
    assert all("report_progress" in text for text in BadCalls.refused)
    progress = done.progress
    assert progress is not None and progress.percent == 60.0
    assert progress.message is not None and progress.message.startswith("x\\x00y")
    assert len(progress.message.encode()) <= MAX_MESSAGE_BYTES
    assert "truncated" in progress.message


async def test_a_new_attempt_is_told_apart_until_it_reports(
    backend: Backend, clock: FakeClock, node: Rexecutor
) -> None:
    job_id = await _enqueue(backend, "tight_loop", 1)
    await eventually(Gate.reached.is_set)
    await eventually(lambda: _has_progress(backend, job_id))
    assert not is_from_earlier_attempt(await backend.get_job(job_id))
    Gate.release.set()
    done = await wait_for_status(backend, job_id, JobStatus.COMPLETE)
    # Read as a later attempt would: started after the report.
    done.attempted_at = clock.advance(seconds=1)
    assert is_from_earlier_attempt(done)


async def _has_progress(backend: Backend, job_id: int) -> bool:
    return await _progress(backend, job_id) is not None


async def test_outside_a_job_it_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="report_progress"):
        await report_progress(50)
    with pytest.raises(ConfigurationError, match="report_progress"):
        report_progress(50)
    with pytest.raises(ValidationError, match="report_progress"):
        report_progress(float("nan"))  # a bad value is named first, wherever it is called


async def test_perform_runs_a_reporting_job() -> None:
    Gate.release.set()
    result = await perform(TightLoop, 10)
    assert result.outcome == "complete"


async def test_a_stale_lease_stops_the_reporter_and_a_stopped_attempt_drops_its_report(
    backend: Backend, clock: FakeClock
) -> None:
    writes = count_writes(backend)
    job_id = await _enqueue(backend, "tight_loop", 1)
    [job] = await backend.claim_ready_jobs("tight_loop", 1, "node-a")
    # Another node's lease (the job was rescued and claimed elsewhere, say): nothing stored,
    # and the reporter gives up rather than keep trying.
    stale = ProgressReporter(backend, job_id, Lease("node-b", job.attempt))
    stale.offer(10, "stale")
    await eventually(lambda: len(writes) == 1)
    stale.offer(20, "ignored")
    clock.advance(PROGRESS_INTERVAL)
    await stale.finish()
    assert len(writes) == 1 and await _progress(backend, job_id) is None
    # The holder's reporter: the first report is stored, the next waits; a stopped attempt
    # drops the one waiting.
    held = ProgressReporter(backend, job_id, Lease("node-a", job.attempt))
    held.offer(30, "kept")
    await eventually(lambda: len(writes) == 2)
    held.offer(40, "dropped")
    dropped = held.abandon()
    assert dropped is not None and dropped.message == "dropped"
    clock.advance(PROGRESS_INTERVAL)
    await asyncio.sleep(0.05)
    held.offer(50, "after the end")
    await held.finish()
    assert len(writes) == 2
    shown = await _progress(backend, job_id)
    assert shown is not None and shown.message == "kept"


async def test_a_report_is_never_older_than_its_attempts_claim(
    backend: Backend, clock: FakeClock
) -> None:
    job_id = await _enqueue(backend, "tight_loop", 1)
    [job] = await backend.claim_ready_jobs("tight_loop", 1, "node-a")
    assert job.attempted_at is not None
    # As if the backend's clock (PostgreSQL's) ran a minute ahead of this node's.
    ahead = job.attempted_at + timedelta(minutes=1)
    reporter = ProgressReporter(backend, job_id, Lease("node-a", job.attempt), started_at=ahead)
    reporter.offer(5, None)
    await reporter.finish()
    stored = await backend.get_job(job_id)
    assert stored.progress is not None and stored.progress.updated_at == ahead
    stored.attempted_at = ahead
    assert not is_from_earlier_attempt(stored)
