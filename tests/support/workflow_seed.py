"""A workflow in several states, for the command line, dashboard and browser tests.

``seed_workflow`` enqueues, with :class:`~rexecutor.Workflow`, a diamond (fetch → left and
right → merge) and a lone root (audit), then completes fetch and left through the backend:
right is ready, merge is blocked waiting on right, audit is ready.
"""

from __future__ import annotations

from dataclasses import dataclass

from rexecutor import Executor, Job, Workflow
from rexecutor.backend import Backend
from tests.backends._helpers import claim_one, mark_complete


class Task(Executor[str, None]):
    """Never run by a node here: its jobs are claimed and completed through the backend."""

    name = "wf-task"

    async def execute(self, job: Job[str, None]) -> None:
        return None


@dataclass
class SeededWorkflow:
    """The workflow's id and the ids of its jobs, by step."""

    workflow_id: str
    fetch: int
    left: int
    right: int
    merge: int
    audit: int

    @property
    def ids(self) -> list[int]:
        """Every job of the workflow, by id."""
        return [self.fetch, self.left, self.right, self.merge, self.audit]


async def seed_workflow(backend: Backend, name: str = "nightly") -> SeededWorkflow:
    """Store the workflow and complete its first two steps (see the module docstring)."""
    wf = Workflow(name)
    fetch = wf.add(Task.builder().with_data("fetch"), name="fetch")
    left = wf.add(Task.builder().with_data("left"), depends_on=[fetch], name="left")
    right = wf.add(Task.builder().with_data("right"), depends_on=[fetch], name="right")
    wf.add(Task.builder().with_data("merge"), depends_on=[left, right], name="merge")
    wf.add(Task.builder().with_data("audit"))
    ids = [int(i) for i in await wf.enqueue_to_backend(backend)]
    for expected in ids[:2]:  # fetch, then left (the lower id of the two fetch released)
        job, lease = await claim_one(backend, Task.name)
        assert int(job.id) == expected
        assert await mark_complete(backend, job.id, lease)
    return SeededWorkflow(wf.id, *ids)
