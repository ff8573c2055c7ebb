"""rexecutor.admin on every backend: cancel, rerun, retry by filter, stats and nodes."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

import pytest

from rexecutor import admin
from rexecutor.backend import Backend, NodeInfo, PruneSpec
from rexecutor.errors import ConfigurationError, InvalidTransition, JobNotFound
from rexecutor.job import ErrorType, JobStatus
from tests.backends._helpers import claim_one, enqueue, executing, finished


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


# -- one job -----------------------------------------------------------------------------------


async def test_cancel_records_the_reason_and_leaves_finished_jobs_alone(backend: Backend) -> None:
    waiting = await enqueue(backend)
    assert await admin.cancel(backend, waiting, "no longer needed") is True
    job = await backend.get_job(waiting)
    assert job.status is JobStatus.CANCELLED and job.cancelled_at is not None
    assert job.errors[-1].error_type is ErrorType.CANCELLED
    assert job.errors[-1].details == "no longer needed"
    done = await finished(backend, JobStatus.COMPLETE, "other")
    assert await admin.cancel(backend, done, "too late") is False
    assert (await backend.get_job(done)).status is JobStatus.COMPLETE


async def test_cancel_stops_an_executing_job_and_records_any_reason(backend: Backend) -> None:
    job, _ = await executing(backend)
    assert await admin.cancel(backend, job.id, _Unprintable()) is True
    stored = await backend.get_job(job.id)
    assert stored.status is JobStatus.CANCELLED
    assert "_Unprintable" in stored.errors[-1].details


async def test_cancel_and_report_tells_the_status_of_a_finished_job(backend: Backend) -> None:
    waiting = await enqueue(backend)
    assert await admin.cancel_and_report(backend, waiting, "why") == admin.CancelResult(
        int(waiting), True, JobStatus.CANCELLED
    )
    gone = await finished(backend, JobStatus.DISCARDED, "other")
    assert await admin.cancel_and_report(backend, gone, "why") == admin.CancelResult(
        int(gone), False, JobStatus.DISCARDED
    )


async def test_unknown_jobs_are_not_found(backend: Backend) -> None:
    with pytest.raises(JobNotFound):
        await admin.cancel(backend, 424242, "why")
    with pytest.raises(JobNotFound):
        await admin.rerun(backend, 424242)
    for impossible in (0, -1, admin.MAX_JOB_ID + 1):
        with pytest.raises(JobNotFound):
            admin.check_job_id(impossible)
    assert admin.check_job_id(admin.MAX_JOB_ID) == admin.MAX_JOB_ID


async def test_rerun_runs_a_finished_job_again_but_not_an_executing_one(backend: Backend) -> None:
    gone = await finished(backend, JobStatus.DISCARDED)
    job = await admin.rerun_and_read(backend, gone)
    assert job.id == gone and job.status in JobStatus.READY
    busy, _ = await executing(backend, "busy")
    with pytest.raises(InvalidTransition):
        await admin.rerun(backend, busy.id)
    assert (await backend.get_job(busy.id)).status is JobStatus.EXECUTING


# -- many jobs ---------------------------------------------------------------------------------


async def test_retry_reruns_what_the_filters_select_oldest_first(backend: Backend) -> None:
    first = await finished(backend, JobStatus.DISCARDED, "mail", tags=("eu", "vip"))
    second = await finished(backend, JobStatus.DISCARDED, "mail", tags=("eu",))
    other = await finished(backend, JobStatus.DISCARDED, "report", tags=("eu", "vip"))
    cancelled = await finished(backend, JobStatus.CANCELLED, "mail", tags=("eu", "vip"))
    discarded = admin.Filters(statuses=(JobStatus.DISCARDED,))
    assert await admin.retry_candidates(backend, discarded) == [first, second, other]
    assert await admin.retry_candidates(backend, discarded, limit=2, page=1) == [first, second]
    vip_mail = admin.Filters(("mail",), (JobStatus.DISCARDED,), ("vip",))
    report = await admin.retry(backend, vip_mail)
    assert report.rerun == [first] and report.skipped == []
    assert report.to_json() == {"rerun": [first], "skipped": []}
    assert (await backend.get_job(first)).status in JobStatus.READY
    for untouched in (second, other):
        assert (await backend.get_job(untouched)).status is JobStatus.DISCARDED
    assert (await backend.get_job(cancelled)).status is JobStatus.CANCELLED


async def test_retry_refuses_executing_jobs_and_skips_them_without_a_status(
    backend: Backend,
) -> None:
    with pytest.raises(ConfigurationError, match="executing jobs cannot be retried"):
        await admin.retry(backend, admin.Filters(statuses=(JobStatus.EXECUTING,)))
    mixed = admin.Filters(statuses=(JobStatus.DISCARDED, JobStatus.EXECUTING))
    assert not admin.can_retry(mixed) and admin.can_retry(admin.Filters())
    with pytest.raises(ConfigurationError, match="executing jobs cannot be retried"):
        admin.check_retry(mixed)
    busy, _ = await executing(backend, "busy")
    gone = await finished(backend, JobStatus.CANCELLED, "done")
    report = await admin.retry(backend, admin.Filters())
    assert report.rerun == [gone] and report.skipped == []
    assert (await backend.get_job(busy.id)).status is JobStatus.EXECUTING


class _Meanwhile:
    """A backend that runs ``change`` right after the retry has collected its ids."""

    def __init__(self, backend: Backend, change: Callable[[], Coroutine[Any, Any, object]]) -> None:
        self._backend, self._change = backend, change

    async def query(self, *args: Any, **kwargs: Any) -> Any:
        found = await self._backend.query(*args, **kwargs)
        await self._change()
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


async def test_retry_reports_jobs_that_changed_meanwhile(backend: Backend) -> None:
    due = await enqueue(backend, "claimed")
    done = await finished(backend, JobStatus.COMPLETE, "pruned")

    async def change() -> None:
        await claim_one(backend, "claimed")
        await backend.prune_jobs(PruneSpec(JobStatus.COMPLETE, max_length=0))

    racing: Any = _Meanwhile(backend, change)
    filters = admin.Filters(statuses=(JobStatus.SCHEDULED, JobStatus.COMPLETE))
    report = await admin.retry(racing, filters)
    assert report.rerun == []
    assert sorted(report.skipped) == sorted([(due, "executing"), (done, "deleted meanwhile")])


def test_filters_read_status_names() -> None:
    assert admin.Filters.parse_statuses([" Discarded", "complete"]) == (
        JobStatus.DISCARDED,
        JobStatus.COMPLETE,
    )
    with pytest.raises(ConfigurationError, match="unknown status 'finished'"):
        admin.Filters.parse_statuses(["finished"])


# -- statistics and nodes ----------------------------------------------------------------------


async def test_stats_count_per_executor_and_status_and_throughput(backend: Backend) -> None:
    await finished(backend, JobStatus.COMPLETE, "mail")
    await finished(backend, JobStatus.COMPLETE, "report")
    await finished(backend, JobStatus.DISCARDED, "report")
    await enqueue(backend, "mail")
    overview = await admin.stats(backend, 5)
    assert overview.executors == ["mail", "report"]
    assert overview.row("mail")[JobStatus.SCHEDULED] == 1
    assert overview.row("mail")[JobStatus.COMPLETE] == 1
    assert overview.by_status()[JobStatus.COMPLETE] == 2
    assert overview.by_status()[JobStatus.EXECUTING] == 0
    assert len(overview.series) == 5
    assert overview.finished() == 3
    assert overview.finished(admin.FAILED_STATUSES) == 1
    assert overview.per_minute() == pytest.approx(2 / 5)
    encoded = overview.to_json()
    assert encoded["by_status"]["complete"] == 2 and len(encoded["throughput"]) == 5
    with pytest.raises(ConfigurationError, match="at least one minute"):
        await admin.stats(backend, 0)


async def test_nodes_tell_which_heartbeats_are_recent(backend: Backend) -> None:
    assert await admin.nodes(backend) == []
    await backend.record_heartbeat(NodeInfo("node-a"))
    [row] = await admin.nodes(backend, timedelta(hours=1))
    assert row.node.node_id == "node-a" and row.alive
    assert row.to_json()["alive"] is True and row.to_json()["heartbeat_at"] is not None
    [silent] = await admin.nodes(backend, timedelta(seconds=-5))
    assert not silent.alive
