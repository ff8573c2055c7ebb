"""Workflows: jobs that run only after other jobs complete, enqueued together.

Example:
    >>> wf = Workflow("nightly-report")
    >>> fetch = wf.add(Fetch.builder().with_data(day), name="fetch")
    >>> clean = wf.add(Clean.builder(), depends_on=[fetch], name="clean")
    >>> report = wf.add(Report.builder(), depends_on=[fetch, clean])
    >>> ids = await wf.enqueue_to_backend(backend)

A job with dependencies stays ``scheduled`` and is not claimed before every dependency is
``complete``; when a dependency is discarded or cancelled its dependents are cancelled, naming
it, unless added with ``on_failed_dependency="run"`` (see :mod:`rexecutor.dependencies`).
Inside a dependent, ``await Workflow.results_of(job)`` reads what its dependencies returned.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rexecutor import _global
from rexecutor.backend import Backend, EnqueuableJob
from rexecutor.builder import JobBuilder
from rexecutor.dependencies import OnFailedDependency, check_policy
from rexecutor.errors import ValidationError
from rexecutor.job import Job, JobId

__all__ = ["Step", "Workflow"]

#: The longest workflow or step name, in characters.
MAX_NAME_CHARS = 200


@dataclass(frozen=True, slots=True, eq=False)
class Step:
    """A job added to a :class:`Workflow`: pass it in ``depends_on`` of later steps."""

    workflow: Workflow
    position: int
    name: str | None

    def __repr__(self) -> str:
        return f"Step({self.name or self.position!r} of {self.workflow.name!r})"


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"a {what} name must be a non-empty str, got {value!r:.80}")
    if len(value) > MAX_NAME_CHARS or "\x00" in value:
        raise ValidationError(
            f"a {what} name must be at most {MAX_NAME_CHARS} characters, without NUL"
        )
    return value


class Workflow:
    """A graph of jobs, enqueued atomically (all or none), each run after its dependencies.

    ``name`` says what the workflow is (``"nightly-report"``); each ``Workflow`` gets its own
    id (``nightly-report-<hex>``), stored with its jobs as ``job.workflow_id``. Steps can only
    depend on steps added before them, so a workflow cannot hold a cycle.
    """

    def __init__(self, name: str) -> None:
        self.name = _check_name(name, "workflow")
        #: The id stored with every job of this workflow.
        self.id = f"{self.name}-{uuid.uuid4().hex[:16]}"
        self._jobs: list[EnqueuableJob] = []
        self._steps: list[Step] = []
        self._names: set[str] = set()

    @property
    def steps(self) -> tuple[Step, ...]:
        """The steps added so far, in order."""
        return tuple(self._steps)

    def add(
        self,
        builder: JobBuilder[Any, Any],
        *,
        depends_on: Iterable[Step] = (),
        name: str | None = None,
        on_failed_dependency: OnFailedDependency = "cancel",
    ) -> Step:
        """Add one job; it runs once every step in ``depends_on`` has completed.

        ``name`` names the step (unique in the workflow; the key of
        :meth:`results_of`). ``on_failed_dependency``: ``"cancel"`` (default) cancels this
        job when a dependency is discarded or cancelled; ``"run"`` runs it anyway.
        """
        if not isinstance(builder, JobBuilder):
            raise ValidationError(f"Workflow.add takes a JobBuilder, got {builder!r:.80}")
        policy = check_policy(on_failed_dependency)
        if name is not None:
            _check_name(name, "step")
            if name in self._names:
                raise ValidationError(f"workflow {self.name!r} already has a step named {name!r}")
        positions: list[int] = []
        for dependency in depends_on:
            if not isinstance(dependency, Step):
                raise ValidationError(
                    f"depends_on takes steps returned by Workflow.add, got {dependency!r:.80}"
                )
            if dependency.workflow is not self:
                raise ValidationError(
                    f"{dependency!r} belongs to another workflow; a step can only depend on "
                    "steps of its own workflow (enqueued together, on one backend)"
                )
            if dependency.position not in positions:
                positions.append(dependency.position)
        job = replace(
            builder.build(),
            workflow_id=self.id,
            workflow_step=name,
            depends_on=tuple(sorted(positions)),
            on_failed_dependency=policy,
        )
        step = Step(self, len(self._jobs), name)
        self._jobs.append(job)
        self._steps.append(step)
        if name is not None:
            self._names.add(name)
        return step

    def add_group(
        self,
        builders: Iterable[JobBuilder[Any, Any]],
        *,
        depends_on: Iterable[Step] = (),
        on_failed_dependency: OnFailedDependency = "cancel",
    ) -> list[Step]:
        """Add several jobs that run side by side (each after ``depends_on``); pass the
        returned list as ``depends_on`` of a step that waits for all of them."""
        after = list(depends_on)
        return [
            self.add(builder, depends_on=after, on_failed_dependency=on_failed_dependency)
            for builder in builders
        ]

    def add_chain(
        self, builders: Iterable[JobBuilder[Any, Any]], *, after: Sequence[Step] = ()
    ) -> list[Step]:
        """Add jobs that run one after another (the first after ``after``)."""
        steps: list[Step] = []
        previous = list(after)
        for builder in builders:
            step = self.add(builder, depends_on=previous)
            steps.append(step)
            previous = [step]
        return steps

    def jobs(self) -> list[EnqueuableJob]:
        """The jobs to store, in order (dependencies as positions in this list)."""
        if not self._jobs:
            raise ValidationError(f"workflow {self.name!r} has no steps: add one before enqueue")
        return list(self._jobs)

    async def enqueue(self) -> list[JobId]:
        """Store every job on the global backend; see :meth:`enqueue_to_backend`."""
        return await self.enqueue_to_backend(_global.get_global_backend())

    async def enqueue_to_backend(self, backend: Backend, *, connection: Any = None) -> list[JobId]:
        """Store every job of the workflow atomically (all or none); returns their ids in the
        order they were added. ``connection`` joins the caller's PostgreSQL transaction."""
        results = await backend.enqueue_many(self.jobs(), connection=connection)
        return [result.job_id for result in results]

    @staticmethod
    async def results_of(
        job: Job[Any, Any], backend: Backend | None = None
    ) -> dict[str | int, Any]:
        """What the dependencies of ``job`` returned: ``{step name (or job id): result}``.

        Example:
            >>> async def execute(self, job):
            ...     results = await Workflow.results_of(job)
            ...     rows = results["fetch"]
        """
        target = backend if backend is not None else _global.get_global_backend()
        ids = (await target.dependencies([int(job.id)])).get(int(job.id), [])
        found: dict[str | int, Any] = {}
        for dependency in ids:
            stored = await target.get_job(dependency)
            found[stored.workflow_step or int(stored.id)] = stored.result
        return found
