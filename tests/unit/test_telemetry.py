"""Telemetry events for job start, stop, exception and claims."""

from __future__ import annotations

import pytest

from rexecutor import Executor, Job, JobStatus, Rexecutor, telemetry
from rexecutor.backends import InMemoryBackend
from tests.support.waiting import wait_for_status


class Maybe(Executor[bool, None]):
    name = "maybe"
    max_attempts = 2

    async def execute(self, job: Job[bool, None]) -> None:
        if not job.data:
            raise RuntimeError("nope")


async def test_job_events_carry_outcome_duration_and_context() -> None:
    seen: list[telemetry.Event] = []
    telemetry.attach("test", ["job.start", "job.stop", "job.exception", "claim"], seen.append)
    try:
        backend = InMemoryBackend()
        async with Rexecutor(backend).with_executor(Maybe) as rex:
            good = await Maybe.builder().with_data(True).enqueue_to_backend(backend)
            bad = await Maybe.builder().with_data(False).enqueue_to_backend(backend)
            await wait_for_status(backend, good, JobStatus.COMPLETE)
            await wait_for_status(backend, bad, JobStatus.RETRYABLE)
    finally:
        telemetry.detach("test")
    names = [e.name for e in seen]
    assert names.count("job.start") == 2 and "claim" in names
    [stop] = [e for e in seen if e.name == "job.stop"]
    [exc] = [e for e in seen if e.name == "job.exception"]
    assert stop.metadata["outcome"] == "complete" and stop.metadata["job_id"] == good
    assert exc.metadata["outcome"] == "retryable" and exc.metadata["error"] == "nope"
    assert exc.metadata["node_id"] == rex.node_id and exc.metadata["attempt"] == 1
    assert stop.measurements["duration"] >= 0


def test_unknown_events_and_failing_handlers() -> None:
    with pytest.raises(ValueError, match="unknown telemetry events"):
        telemetry.attach("x", ["job.finished"], print)

    def broken(event: telemetry.Event) -> None:
        raise RuntimeError("handler bug")

    telemetry.attach("broken", ["prune"], broken)
    try:
        telemetry.emit("prune", {"count": 1}, {})  # logged, not raised
    finally:
        telemetry.detach("broken")
