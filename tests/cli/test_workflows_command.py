"""``rexecutor workflows show`` and workflow jobs in ``jobs list|show``, in-process, on a real
SQLite file holding a workflow enqueued with ``Workflow`` (its executor is a test class, see
``tests.support.workflow_seed``), some of its jobs completed."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rexecutor.backends import SqliteBackend
from rexecutor.cli import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, main
from tests.support.workflow_seed import SeededWorkflow, Task, seed_workflow


@dataclass
class Stored(SeededWorkflow):
    url: str = ""


async def _store(path: Path) -> Stored:
    async with SqliteBackend(path) as backend:
        seeded = await seed_workflow(backend)
    return Stored(**vars(seeded), url=f"sqlite:///{path}")


@pytest.fixture
def stored(tmp_path: Path) -> Stored:
    return asyncio.run(_store(tmp_path / "jobs.db"))


def run(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--backend", url, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_show_prints_the_dag_as_a_tree_roots_first_repeats_marked(
    stored: Stored, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(stored.url, capsys, "workflows", "show", stored.workflow_id)
    assert code == EXIT_OK, err
    s = stored
    assert out.splitlines() == [
        f"workflow {s.workflow_id}",
        "5 jobs: 3 scheduled, 2 complete (1 waiting on dependencies)",
        f"{s.fetch} fetch · wf-task · complete",
        f"├── {s.left} left · wf-task · complete",
        f"│   └── {s.merge} merge · wf-task · scheduled, waiting on 1",
        f"└── {s.right} right · wf-task · scheduled",
        f"    └── {s.merge} merge · wf-task · scheduled, waiting on 1 (see above)",
        f"{s.audit} · wf-task · scheduled",
    ]


def test_show_json_has_the_jobs_and_edges(
    stored: Stored, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(stored.url, capsys, "workflows", "show", stored.workflow_id, "--json")
    assert code == EXIT_OK, err
    value = json.loads(out)
    s = stored
    assert value["id"] == s.workflow_id
    assert value["roots"] == [s.fetch, s.audit]
    assert value["counts"]["complete"] == 2 and value["blocked"] == 1
    edges = {(e["from"], e["to"]) for e in value["edges"]}
    assert edges == {(s.fetch, s.left), (s.fetch, s.right), (s.left, s.merge), (s.right, s.merge)}
    jobs = {job["id"]: job for job in value["jobs"]}
    assert list(jobs) == [s.fetch, s.left, s.right, s.merge, s.audit]
    merge = jobs[s.merge]
    assert merge["step"] == "merge" and merge["blocked"] is True and merge["depth"] == 2
    assert merge["depends_on"] == [s.left, s.right] and merge["waiting_on"] == [s.right]
    assert jobs[s.right]["blocked"] is False and jobs[s.right]["waiting_on"] == []
    assert jobs[s.audit]["step"] is None and jobs[s.audit]["depth"] == 0


@pytest.mark.parametrize("unknown", ["nightly-0000", "", "x" * 300, "a\x00b"])
def test_an_unknown_workflow_is_not_found(
    stored: Stored, capsys: pytest.CaptureFixture[str], unknown: str
) -> None:
    code, out, err = run(stored.url, capsys, "workflows", "show", unknown)
    assert code == EXIT_NOT_FOUND and out == ""
    assert "no workflow" in err and "no stored job has this workflow id" in err
    code, out, err = run(stored.url, capsys, "workflows", "show", unknown, "--json")
    assert code == EXIT_NOT_FOUND and out == ""


def test_show_needs_an_id(stored: Stored, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(stored.url, capsys, "workflows", "show")
    assert code == EXIT_USAGE and "id" in err
    code, _, err = run(stored.url, capsys, "workflows")
    assert code == EXIT_USAGE


def test_jobs_list_and_show_say_a_blocked_job_waits_and_name_its_workflow(
    stored: Stored, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(stored.url, capsys, "jobs", "list")
    assert code == EXIT_OK
    assert "WORKFLOW" in out
    merge = next(line for line in out.splitlines() if line.strip().startswith(str(stored.merge)))
    assert "waiting on dependencies" in merge and stored.workflow_id in merge
    right = next(line for line in out.splitlines() if line.strip().startswith(str(stored.right)))
    assert "waiting" not in right and "due" in right

    code, out, _ = run(stored.url, capsys, "jobs", "show", str(stored.merge))
    assert code == EXIT_OK
    assert re.search(rf"^workflow +{stored.workflow_id} *$", out, re.M)
    assert re.search(r"^step +merge *$", out, re.M)
    assert f"waiting on dependencies: rexecutor workflows show {stored.workflow_id}" in out
    code, out, _ = run(stored.url, capsys, "jobs", "show", str(stored.fetch))
    assert "waiting" not in out and re.search(r"^step +fetch *$", out, re.M)

    listed: list[dict[str, Any]] = json.loads(run(stored.url, capsys, "jobs", "list", "--json")[1])
    by_id = {job["id"]: job for job in listed}
    assert by_id[stored.merge]["blocked"] is True
    assert by_id[stored.merge]["workflow_id"] == stored.workflow_id
    assert by_id[stored.merge]["workflow_step"] == "merge"
    assert by_id[stored.audit]["workflow_step"] is None and not by_id[stored.audit]["blocked"]
    shown = json.loads(run(stored.url, capsys, "jobs", "show", str(stored.merge), "--json")[1])
    assert shown["blocked"] is True and shown["workflow_id"] == stored.workflow_id


def test_jobs_list_has_no_workflow_column_without_workflows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def one() -> None:
        async with SqliteBackend(tmp_path / "plain.db") as backend:
            await Task.builder().with_data("x").enqueue_to_backend(backend)

    asyncio.run(one())
    code, out, _ = run(f"sqlite:///{tmp_path / 'plain.db'}", capsys, "jobs", "list")
    assert code == EXIT_OK and "WORKFLOW" not in out and "wf-task" in out
