"""Views of one stored workflow, shared by the command line and the dashboard.

A workflow is read once (:func:`read_workflow`: its jobs and the dependencies between them)
into a :class:`WorkflowGraph`, which both ``rexecutor workflows show`` and the dashboard's
workflow page draw from: the same roots, the same depths, the same "waiting on N", the same
JSON. Nothing here decides anything about dependencies (that is
:mod:`rexecutor.dependencies`); it only shows what the backend stored.

Every walk here is iterative: a chain of a thousand steps is as deep as a graph gets, and
Python's recursion limit is about that.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rexecutor import _views
from rexecutor.backend import Backend
from rexecutor.job import Job, JobStatus

__all__ = [
    "WAITING",
    "TreeLine",
    "WorkflowGraph",
    "could_exist",
    "read_workflow",
]

#: What a blocked job (scheduled, held back until its dependencies finish) is shown as.
WAITING = "waiting on dependencies"
#: No stored workflow id is longer (a name of at most 200 characters, a dash, 16 hex digits);
#: a longer one, or one holding NUL, cannot exist and is not looked up.
MAX_WORKFLOW_ID_CHARS = 200 + 1 + 16


@dataclass(frozen=True, slots=True)
class TreeLine:
    """One line of a workflow drawn as a tree: the job, how deep it is indented, and whether
    it was already shown above (a job with several dependencies appears under each; only its
    first appearance lists its dependents). ``last`` says whether the line is the last child
    of its parent, and ``open_levels`` at which shallower levels a sibling still follows (the
    guides to draw)."""

    job: Job[Any, Any]
    indent: int
    repeat: bool
    last: bool
    open_levels: tuple[bool, ...]


@dataclass(slots=True)
class WorkflowGraph:
    """A workflow as stored: its jobs by id, and the edges between them.

    ``depends_on[j]`` lists the jobs of the workflow ``j`` depends on, ``dependents[j]`` the
    jobs that depend on ``j``; a dependency that is no longer stored (pruned once nothing
    waited on it) is left out of both. ``depth[j]`` is the longest path from a root (a job
    with no stored dependency) to ``j``.
    """

    workflow_id: str
    jobs: dict[int, Job[Any, Any]]
    depends_on: dict[int, list[int]]
    dependents: dict[int, list[int]] = field(default_factory=dict)
    depth: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dependents = {job_id: [] for job_id in self.jobs}
        for job_id, deps in self.depends_on.items():
            for dep in deps:
                self.dependents[dep].append(job_id)
        for children in self.dependents.values():
            children.sort()
        self.depth = self._depths()

    def _depths(self) -> dict[int, int]:
        # Kahn's order: a job's depth is final once every dependency has been placed.
        missing = {job_id: len(self.depends_on.get(job_id, ())) for job_id in self.jobs}
        depth = dict.fromkeys(self.jobs, 0)
        ready = [job_id for job_id, n in sorted(missing.items()) if n == 0]
        while ready:
            job_id = ready.pop()
            for child in self.dependents[job_id]:
                depth[child] = max(depth[child], depth[job_id] + 1)
                missing[child] -= 1
                if missing[child] == 0:
                    ready.append(child)
        return depth

    @property
    def roots(self) -> list[int]:
        """The jobs with no stored dependency, by id."""
        return [job_id for job_id in self.jobs if not self.depends_on.get(job_id)]

    @property
    def edges(self) -> list[tuple[int, int]]:
        """Every (dependency, dependent) pair, by dependency then dependent."""
        return [(dep, job_id) for dep, children in self.dependents.items() for job_id in children]

    def waiting_on(self, job_id: int) -> list[int]:
        """The dependencies of ``job_id`` that have not finished yet."""
        return [
            dep for dep in self.depends_on.get(job_id, ()) if not self.jobs[dep].status.is_terminal
        ]

    def waiting(self, job_id: int) -> str | None:
        """``waiting on 2`` while the job is blocked (None: it is not)."""
        if not self.jobs[job_id].blocked:
            return None
        # Blocked with every dependency finished: the release is on its way (or a sweep).
        count = len(self.waiting_on(job_id))
        return f"waiting on {count}" if count else WAITING

    def state(self, job_id: int) -> str:
        """The job's status as people read it: ``scheduled, waiting on 2`` while blocked."""
        waiting = self.waiting(job_id)
        status = self.jobs[job_id].status.value
        return status if waiting is None else f"{status}, {waiting}"

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status (every status listed)."""
        counts = {status.value: 0 for status in JobStatus.ALL}
        for job in self.jobs.values():
            counts[job.status.value] += 1
        return counts

    @property
    def blocked(self) -> int:
        """How many jobs wait on their dependencies."""
        return sum(1 for job in self.jobs.values() if job.blocked)

    def tree(self) -> Iterator[TreeLine]:
        """The workflow as a tree: each root, then its dependents under it, depth first.

        A job reached a second time (it has several dependencies) is a ``repeat`` line and
        its dependents are not listed again, so the tree has one line per root and per edge.
        """
        shown: set[int] = set()
        roots = self.roots
        yield from self._tree_from(roots, shown)
        # Nothing a Workflow stores is left over; a graph written by hand with a cycle would
        # be, and is still shown whole.
        while len(shown) < len(self.jobs):
            yield from self._tree_from([min(set(self.jobs) - shown)], shown)

    def _tree_from(self, roots: list[int], shown: set[int]) -> Iterator[TreeLine]:
        # The stack holds what to print next: (job, indent, last child?, guides above it).
        stack: list[tuple[int, int, bool, tuple[bool, ...]]] = [
            (job_id, 0, i == len(roots) - 1, ()) for i, job_id in enumerate(roots)
        ]
        stack.reverse()
        while stack:
            job_id, indent, last, guides = stack.pop()
            repeat = job_id in shown
            shown.add(job_id)
            yield TreeLine(self.jobs[job_id], indent, repeat, last, guides)
            if repeat:
                continue
            children = self.dependents[job_id]
            below: tuple[bool, ...] = (*guides, not last) if indent else ()
            for i in range(len(children) - 1, -1, -1):
                stack.append((children[i], indent + 1, i == len(children) - 1, below))

    def job_to_json(self, job_id: int) -> dict[str, Any]:
        """One job of the workflow as a JSON object: what the graph needs of it."""
        job = self.jobs[job_id]
        last = job.errors[-1] if job.errors else None
        return {
            "id": job_id,
            "step": job.workflow_step,
            "executor": job.executor,
            "status": job.status.value,
            "blocked": job.blocked,
            "depth": self.depth[job_id],
            "depends_on": list(self.depends_on.get(job_id, ())),
            "waiting_on": self.waiting_on(job_id) if job.blocked else [],
            "attempt": job.attempt,
            "max_attempts": job.max_attempts,
            "finished_at": _views.iso(job.finished_at),
            "last_error": None if last is None else (last.name or last.error_type.value),
        }

    def to_json(self) -> dict[str, Any]:
        """The workflow as a JSON object: what ``workflows show --json`` prints and
        ``/api/workflows/ID`` returns."""
        return {
            "id": self.workflow_id,
            "counts": self.counts(),
            "blocked": self.blocked,
            "roots": self.roots,
            "jobs": [self.job_to_json(job_id) for job_id in self.jobs],
            "edges": [{"from": dep, "to": job_id} for dep, job_id in self.edges],
        }


def could_exist(workflow_id: str) -> bool:
    """Whether a stored workflow could have this id (else it is simply not found)."""
    if not 0 < len(workflow_id) <= MAX_WORKFLOW_ID_CHARS or "\x00" in workflow_id:
        return False
    try:
        workflow_id.encode("utf-8")  # a lone surrogate: no backend stores it
    except UnicodeEncodeError:
        return False
    return True


async def read_workflow(backend: Backend, workflow_id: str) -> WorkflowGraph | None:
    """The workflow ``workflow_id`` as stored, or None when no job of it is stored."""
    if not could_exist(workflow_id):
        return None
    jobs = {int(job.id): job for job in await backend.workflow_jobs(workflow_id)}
    if not jobs:
        return None
    stored = await backend.dependencies(list(jobs))
    depends_on = {
        job_id: sorted(dep for dep in deps if dep in jobs)
        for job_id, deps in stored.items()
        if job_id in jobs
    }
    return WorkflowGraph(workflow_id, jobs, depends_on)
