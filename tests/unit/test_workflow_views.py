"""The shape of a workflow as the command line and the dashboard show it: depths (longest path
from a root), roots, the tree with its repeats, "waiting on N", and graphs that are deep."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rexecutor._workflow_views import WAITING, WorkflowGraph, could_exist
from rexecutor.cli.output import tree_guide
from rexecutor.job import Job, JobId, JobStatus

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def job(job_id: int, status: JobStatus = JobStatus.SCHEDULED, blocked: bool = False) -> Any:
    return Job(
        JobId(job_id),
        status,
        "ex",
        {},
        None,
        0,
        3,
        0,
        [],
        [],
        NOW,
        NOW,
        workflow_id="wf",
        workflow_step=f"s{job_id}",
        blocked=blocked,
    )


def graph(statuses: dict[int, JobStatus], depends_on: dict[int, list[int]]) -> WorkflowGraph:
    blocked = {
        j for j, deps in depends_on.items() if any(not statuses[d].is_terminal for d in deps)
    }
    jobs = {j: job(j, s, j in blocked) for j, s in statuses.items()}
    return WorkflowGraph("wf", jobs, depends_on)


def drawn(g: WorkflowGraph) -> list[str]:
    return [
        tree_guide(line.indent, line.last, line.open_levels)
        + str(int(line.job.id))
        + (" (see above)" if line.repeat else "")
        for line in g.tree()
    ]


def test_depth_is_the_longest_path_from_a_root() -> None:
    # 1 → 2 → 3, and 1 → 3 directly: 3 is at depth 2, not 1.
    g = graph(dict.fromkeys((1, 2, 3, 4), JobStatus.SCHEDULED), {2: [1], 3: [1, 2]})
    assert g.depth == {1: 0, 2: 1, 3: 2, 4: 0}
    assert g.roots == [1, 4]
    assert g.edges == [(1, 2), (1, 3), (2, 3)]


def test_the_tree_lists_a_job_under_each_dependency_expanding_it_once() -> None:
    s = JobStatus.SCHEDULED
    g = graph(dict.fromkeys(range(1, 7), s), {2: [1], 3: [1], 4: [2, 3], 5: [4], 6: [3]})
    assert drawn(g) == [
        "1",
        "├── 2",
        "│   └── 4",
        "│       └── 5",
        "└── 3",
        "    ├── 4 (see above)",
        "    └── 6",
    ]


def test_waiting_on_counts_unfinished_dependencies_of_blocked_jobs() -> None:
    c, sch = JobStatus.COMPLETE, JobStatus.SCHEDULED
    g = graph({1: c, 2: sch, 3: sch}, {3: [1, 2]})
    assert g.waiting_on(3) == [2]
    assert g.state(3) == "scheduled, waiting on 1"
    assert g.state(2) == "scheduled"
    assert g.blocked == 1 and g.counts()["complete"] == 1
    # Blocked while the sweep has not yet released it: still said to wait.
    jobs = {1: job(1, c), 2: job(2, sch, blocked=True)}
    assert WorkflowGraph("wf", jobs, {2: [1]}).state(2) == f"scheduled, {WAITING}"


def test_a_chain_of_thousands_of_steps_is_walked_without_recursion() -> None:
    n = 5000
    g = graph(
        dict.fromkeys(range(1, n + 1), JobStatus.SCHEDULED), {j: [j - 1] for j in range(2, n + 1)}
    )
    assert g.depth[n] == n - 1
    lines = list(g.tree())
    assert len(lines) == n and lines[-1].indent == n - 1


def test_ids_no_backend_can_store_are_not_looked_up() -> None:
    assert could_exist("nightly-0123456789abcdef")
    assert not could_exist("") and not could_exist("a\x00b") and not could_exist("\ud800")
    assert not could_exist("x" * 218)


def test_jobs_out_of_reach_of_a_root_are_still_shown() -> None:
    # No Workflow stores a cycle; a hand-written graph with one is drawn whole anyway.
    g = graph(dict.fromkeys((1, 2, 3), JobStatus.SCHEDULED), {2: [3], 3: [2]})
    assert drawn(g) == ["1", "2", "└── 3", "    └── 2 (see above)"]
