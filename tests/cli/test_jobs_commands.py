"""The management commands, in-process, on SQLite and PostgreSQL: output, effects, exit codes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from rexecutor import JobStatus
from rexecutor.backends import backend_from_url
from rexecutor.cli import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, main
from rexecutor.job import ErrorType, Job
from tests.cli.conftest import SeededUrl
from tests.cli.seed import RESULT


def run(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--backend", url, *args])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = run(url, capsys, *args, "--json")
    assert code == EXIT_OK, err
    return json.loads(out)


def get_job(url: str, job_id: int) -> Job[Any, Any]:
    async def fetch() -> Job[Any, Any]:
        async with backend_from_url(url) as backend:
            return await backend.get_job(job_id)

    return asyncio.run(fetch())


# -- jobs list ------------------------------------------------------------------------------


def test_list_is_newest_first_with_paging(
    seeded: SeededUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = run_json(seeded.url, capsys, "jobs", "list")
    ids = [job["id"] for job in jobs]
    assert ids == sorted(ids, reverse=True) and len(ids) == 8
    page = run_json(seeded.url, capsys, "jobs", "list", "--limit", "3", "--offset", "2")
    assert [job["id"] for job in page] == ids[2:5]
    oldest = run_json(seeded.url, capsys, "jobs", "list", "--oldest-first", "--limit", "2")
    assert [job["id"] for job in oldest] == sorted(ids)[:2]


def test_list_filters_by_executor_status_and_tag(
    seeded: SeededUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = seeded.ids
    discarded = run_json(
        seeded.url, capsys, "jobs", "list", "--executor", "email", "--status", "discarded"
    )
    assert {job["id"] for job in discarded} == {ids.discarded, ids.discarded_other}
    tagged = run_json(seeded.url, capsys, "jobs", "list", "--tag", "signup")
    assert {job["id"] for job in tagged} == {ids.discarded, ids.scheduled}
    both_tags = run_json(seeded.url, capsys, "jobs", "list", "-t", "signup", "-t", "vip")
    assert [job["id"] for job in both_tags] == [ids.scheduled]
    two_statuses = run_json(seeded.url, capsys, "jobs", "list", "-s", "complete", "-s", "executing")
    assert {job["id"] for job in two_statuses} == {ids.complete, ids.executing}
    reports = run_json(seeded.url, capsys, "jobs", "list", "-e", "report")
    assert [job["id"] for job in reports] == [ids.report]


def test_list_table_shows_jobs_and_the_next_page(
    seeded: SeededUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(seeded.url, capsys, "jobs", "list", "--limit", "4")
    assert code == EXIT_OK
    assert "EXECUTOR" in out and "STATUS" in out
    assert "report" in out and "--offset 4" in out
    code, out, _ = run(seeded.url, capsys, "jobs", "list", "--status", "discarded")
    assert "ConnectionRefusedError: smtp.example.com refused" in out
    code, out, _ = run(seeded.url, capsys, "jobs", "list", "--executor", "nobody")
    assert code == EXIT_OK and "no jobs match" in out


# -- jobs show ------------------------------------------------------------------------------


def test_show_prints_data_metadata_errors_tracebacks_and_history(
    seeded: SeededUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(seeded.url, capsys, "jobs", "show", str(seeded.ids.retryable))
    assert code == EXIT_OK
    assert "dee@example.com" in out and '"campaign": 7' in out
    assert "ConnectionRefusedError" in out and 'File "app/mail.py", line 12' in out
    assert "history" in out and "inserted" in out and "retry due" in out
    job = run_json(seeded.url, capsys, "jobs", "show", str(seeded.ids.discarded))
    assert job["status"] == "discarded" and job["tags"] == ["signup"]
    [error] = job["errors"]
    assert error["type"] == "exception" and error["traceback"].startswith("Traceback")
    events = [entry["event"] for entry in job["history"]]
    assert events[0] == "inserted" and events[-1] == "discarded" and "failed" in events
    for key in ("inserted_at", "scheduled_at", "attempted_at", "discarded_at"):
        assert job[key] is not None


def test_show_prints_the_result_of_a_job_that_stored_one(
    seeded: SeededUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(seeded.url, capsys, "jobs", "show", str(seeded.ids.complete))
    assert code == EXIT_OK
    assert "result" in out and '"message_id": "<m-1@example.com>"' in out
    code, out, _ = run(seeded.url, capsys, "jobs", "show", str(seeded.ids.retryable))
    assert "\nresult\n" not in out
    job = run_json(seeded.url, capsys, "jobs", "show", str(seeded.ids.complete))
    assert job["result"] == RESULT


def test_show_of_a_missing_job_exits_1_with_a_sentence(
    seeded: SeededUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(seeded.url, capsys, "jobs", "show", "9999")
    assert code == EXIT_NOT_FOUND and out == ""
    assert err.strip() == "rexecutor: error: job 9999 not found"


# -- cancel, rerun, retry ---------------------------------------------------------------------


def test_cancel_records_the_reason_and_refuses_finished_jobs(
    seeded: SeededUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = seeded.ids
    code, out, _ = run(seeded.url, capsys, "jobs", "cancel", str(ids.scheduled), "--reason", "spam")
    assert code == EXIT_OK and f"job {ids.scheduled} cancelled" in out
    job = get_job(seeded.url, ids.scheduled)
    assert job.status is JobStatus.CANCELLED
    assert job.errors[-1].error_type is ErrorType.CANCELLED and job.errors[-1].details == "spam"
    # A running job is cancelled too (its node stops it).
    assert run_json(seeded.url, capsys, "jobs", "cancel", str(ids.executing)) == {
        "id": ids.executing,
        "cancelled": True,
        "status": "cancelled",
    }
    code, _, err = run(seeded.url, capsys, "jobs", "cancel", str(ids.complete))
    assert code == EXIT_NOT_FOUND
    assert f"job {ids.complete} is already complete: nothing to cancel" in err
    assert get_job(seeded.url, ids.complete).status is JobStatus.COMPLETE
    code, _, err = run(seeded.url, capsys, "jobs", "cancel", "424242")
    assert code == EXIT_NOT_FOUND and "job 424242 not found" in err


def test_rerun_runs_a_finished_job_again_but_not_an_executing_one(
    seeded: SeededUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = seeded.ids
    job = run_json(seeded.url, capsys, "jobs", "rerun", str(ids.discarded))
    assert job["status"] in ("scheduled", "retryable") and job["discarded_at"] is None
    assert job["max_attempts"] == 2  # one more attempt granted
    code, _, err = run(seeded.url, capsys, "jobs", "rerun", str(ids.executing))
    assert code == EXIT_NOT_FOUND and "is executing" in err
    code, _, err = run(seeded.url, capsys, "jobs", "rerun", "31337")
    assert code == EXIT_NOT_FOUND and "not found" in err


def test_bulk_retry_by_status_executor_and_tag(
    seeded: SeededUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = seeded.ids
    preview = run_json(seeded.url, capsys, "jobs", "retry", "--executor", "email", "--dry-run")
    assert sorted(preview["would_rerun"]) == sorted([ids.discarded, ids.discarded_other])
    assert get_job(seeded.url, ids.discarded).status is JobStatus.DISCARDED  # dry run
    report = run_json(
        seeded.url, capsys, "jobs", "retry", "--status", "discarded", "-e", "email", "-t", "bulk"
    )
    assert report == {"rerun": [ids.discarded_other], "skipped": []}
    code, out, _ = run(
        seeded.url, capsys, "jobs", "retry", "--status", "discarded", "--executor", "email"
    )
    assert code == EXIT_OK and "1 jobs rerun" in out
    assert get_job(seeded.url, ids.discarded).status in JobStatus.READY
    code, _, err = run(seeded.url, capsys, "jobs", "retry", "--executor", "email")
    assert code == EXIT_NOT_FOUND
    assert "no job matched (status discarded; executor email): nothing was retried" in err
    code, _, err = run(seeded.url, capsys, "jobs", "retry", "--status", "executing")
    assert code == EXIT_USAGE and "cannot be retried" in err
    cancelled = run_json(seeded.url, capsys, "jobs", "retry", "--status", "cancelled")
    assert cancelled["rerun"] == [ids.cancelled]


# -- stats, prune, nodes ------------------------------------------------------------------------


def test_stats_counts_per_executor_and_status_and_throughput(
    seeded: SeededUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    stats = run_json(seeded.url, capsys, "stats", "--minutes", "5")
    assert stats["by_executor"]["email"] == {
        "scheduled": 1,
        "executing": 1,
        "retryable": 1,
        "complete": 1,
        "cancelled": 1,
        "discarded": 2,
    }
    assert stats["by_executor"]["report"]["scheduled"] == 1
    assert stats["by_status"]["discarded"] == 2
    assert len(stats["throughput"]) == 5
    assert sum(m["complete"] for m in stats["throughput"]) == 1
    assert sum(m["discarded"] for m in stats["throughput"]) == 2
    code, out, _ = run(seeded.url, capsys, "stats")
    assert code == EXIT_OK
    assert "email" in out and "report" in out and "total" in out and "completed" in out


def test_prune_once_with_the_pruner_rules(
    seeded: SeededUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = seeded.ids
    kept = run_json(seeded.url, capsys, "prune", "--status", "discarded", "--max-age", "1h")
    assert kept == {"deleted": 0, "status": "discarded"}
    spared = run_json(
        seeded.url,
        capsys,
        "prune",
        "--status",
        "discarded",
        "--max-length",
        "0",
        "--except",
        "email",
    )
    assert spared["deleted"] == 0
    code, out, _ = run(seeded.url, capsys, "prune", "--status", "discarded", "--max-length", "1")
    assert code == EXIT_OK and "deleted 1 discarded jobs" in out
    left = run_json(seeded.url, capsys, "jobs", "list", "--status", "discarded")
    assert len(left) == 1
    gone = run_json(
        seeded.url, capsys, "prune", "--status", "complete", "--max-age", "0s", "--only", "email"
    )
    assert gone["deleted"] == 1
    code, _, err = run(seeded.url, capsys, "jobs", "show", str(ids.complete))
    assert code == EXIT_NOT_FOUND
    code, _, err = run(seeded.url, capsys, "prune", "--status", "scheduled", "--max-age", "1d")
    assert code == EXIT_USAGE and "only finished jobs can be pruned" in err
    code, _, err = run(seeded.url, capsys, "prune", "--status", "complete")
    assert code == EXIT_USAGE and "--max-age" in err


def test_nodes_lists_heartbeats(seeded: SeededUrl, capsys: pytest.CaptureFixture[str]) -> None:
    node = {n["node_id"]: n for n in run_json(seeded.url, capsys, "nodes")}["node-a"]
    assert node["node_id"] == "node-a" and node["host"] == "worker-1" and node["pid"] == 4242
    assert node["alive"] is True and node["heartbeat_at"] is not None
    code, out, _ = run(seeded.url, capsys, "nodes")
    assert code == EXIT_OK and "node-a" in out and "yes" in out
    stale = run_json(seeded.url, capsys, "nodes", "--stale-after", "0s")
    assert [n["alive"] for n in stale if n["node_id"] == "node-a"] == [False]
