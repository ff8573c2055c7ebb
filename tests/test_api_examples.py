"""Every example of the API contract (shared/docs/API.md), run as written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rexecutor import (
    ExecutionResult,
    Executor,
    Job,
    JobStatus,
    Pruner,
    PrunerConfig,
    Replace,
    Rexecutor,
    UniquenessCriteria,
)
from rexecutor.backends import InMemoryBackend
from rexecutor.testing import assert_enqueued, reset_global_backend


class EmailJob(Executor[str, str]):  # Executor[Data, Metadata]
    name = "email_job"  # required, unique per backend
    max_attempts = 2  # default 5
    # max_concurrency: int | None = None     # None: no limit
    # blocking: bool = False                 # True: run off the event loop
    # uniqueness_criteria: UniquenessCriteria | None = None

    async def execute(self, job: Job[str, str]) -> ExecutionResult | None:
        print(f"{self.name} running, with args: {job.data}")
        return ExecutionResult.Done()


class DailyReport(Executor[str, None]):
    name = "daily_report"

    async def execute(self, job: Job[str, None]) -> None:
        return None


class UniqueJob(Executor[None, None]):
    name = "unique_job"
    max_attempts = 1
    uniqueness_criteria = (
        UniquenessCriteria.by_executor()
        .and_within(timedelta(seconds=300))
        .on_conflict(Replace.priority().for_statuses(JobStatus.ALL))
    )

    async def execute(self, job: Job[None, None]) -> None:
        print(f"{self.name} running, with args: {job.data}")


@pytest.fixture
def backend() -> Any:
    yield InMemoryBackend()
    reset_global_backend()


async def test_enqueuing_example(backend: InMemoryBackend) -> None:
    Rexecutor(backend).set_global_backend()
    job_id = await (
        EmailJob.builder()
        .with_data("bob@example.com")
        .with_metadata("signup")
        .with_max_attempts(3)
        .with_tags(["initial_job", "delayed"])  # .add_tag("x") adds one
        .with_priority(1)  # lower runs first, as in Oban
        .schedule_in(timedelta(hours=3))  # or .schedule_at(datetime)
        .unique(UniquenessCriteria.by_key("bob"))
        .enqueue()  # or .enqueue_to_backend(backend)
    )
    [job] = await assert_enqueued(
        with_data="bob@example.com",
        scheduled_after=datetime.now(UTC) + timedelta(minutes=170),
        scheduled_before=datetime.now(UTC) + timedelta(minutes=190),
        for_executor=EmailJob,
    )
    assert job.id == job_id
    assert (job.metadata, job.max_attempts, job.tags, job.priority) == (
        "signup",
        3,
        ["initial_job", "delayed"],
        1,
    )


async def test_seed_unique_job_example(backend: InMemoryBackend) -> None:
    Rexecutor(backend).set_global_backend()
    await UniqueJob.builder().enqueue()
    await UniqueJob.builder().enqueue()
    # Only one of the jobs was enqueued (count=1 means exactly one).
    await assert_enqueued(count=1, scheduled_before=datetime.now(UTC), for_executor=UniqueJob)


async def test_running_example(
    backend: InMemoryBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    rex = (
        Rexecutor(backend)
        .with_executor(EmailJob)  # a class, or an instance carrying dependencies
        .with_cron_executor(DailyReport, "0 0 * * *", data="important data")
        .with_cron_executor(DailyReport, "0 9 * * 1-5", data="x", timezone="Europe/London")
        .with_job_pruner(
            PrunerConfig("0 * * * *")
            .with_max_concurrency(2)
            .with_pruner(Pruner.max_age(timedelta(days=31), JobStatus.COMPLETE).only(EmailJob))
            .with_pruner(Pruner.max_length(200, JobStatus.DISCARDED).except_(EmailJob))
        )
        .set_global_backend()
    )
    async with rex:  # the drop guard: on exit, a graceful shutdown
        job_id = await EmailJob.builder().with_data("bob@example.com").enqueue()
        from tests.support.waiting import wait_for_status

        await wait_for_status(backend, job_id, JobStatus.COMPLETE)
    await rex.graceful_shutdown()  # running jobs finish; no new ones start
    assert "email_job running, with args: bob@example.com" in capsys.readouterr().out


async def test_job_is_a_mutable_dataclass(backend: InMemoryBackend) -> None:
    Rexecutor(backend).set_global_backend()
    job_id = await EmailJob.builder().with_data("x").enqueue()
    [job] = await EmailJob.query_jobs()
    job.max_attempts = 5
    await EmailJob.update_job(job)
    assert (await EmailJob.get_job(job_id)).max_attempts == 5


def test_results_are_dataclasses_usable_in_match() -> None:
    def describe(result: ExecutionResult) -> str:
        match result:
            case ExecutionResult.Done():
                return "done"
            case ExecutionResult.Error(error):
                return f"error {error}"
            case ExecutionResult.Snooze(delay):
                return f"snooze {delay}"
            case ExecutionResult.Cancel(reason):
                return f"cancel {reason}"
        return "?"

    assert [
        describe(ExecutionResult.Done()),
        describe(ExecutionResult.Error("e")),
        describe(ExecutionResult.Snooze(timedelta(seconds=1))),
        describe(ExecutionResult.Cancel("r")),
    ] == ["done", "error e", "snooze 0:00:01", "cancel r"]


def test_every_api_name_imports_from_the_package() -> None:
    import rexecutor
    import rexecutor.backends
    import rexecutor.testing

    names = [
        "Executor",
        "Job",
        "JobId",
        "JobStatus",
        "JobError",
        "ExecutionResult",
        "JobBuilder",
        "UniquenessCriteria",
        "Replace",
        "Where",
        "Rexecutor",
        "PrunerConfig",
        "Pruner",
        "RexecutorError",
        "GlobalBackendNotSet",
    ]
    for name in names:
        assert hasattr(rexecutor, name), name
    assert rexecutor.__all__ == sorted(rexecutor.__all__)
    assert len(JobStatus.ALL) == 6
    for name in ("InMemoryBackend", "SqliteBackend", "PostgresBackend"):
        assert getattr(rexecutor.backends, name)
    assert rexecutor.testing.assert_enqueued
