"""``rexecutor workflows show ID``: one workflow's jobs as a tree of their dependencies.

The graph is read and shaped by :mod:`rexecutor._workflow_views`, which the dashboard's
workflow page draws from too; here it is printed.
"""

from __future__ import annotations

import argparse

from rexecutor._workflow_views import WAITING, WorkflowGraph, read_workflow
from rexecutor.backend import Backend
from rexecutor.cli.errors import EXIT_OK, NothingDone
from rexecutor.cli.output import STATUS_STYLES, Cell, Output, clip, tree_guide

__all__ = ["workflows_show"]

#: Step and executor names are cut to this many characters in the tree.
NAME_CHARS = 60


async def workflows_show(backend: Backend, args: argparse.Namespace, out: Output) -> int:
    """``workflows show ID``: the workflow's jobs as a tree, roots first; a job with several
    dependencies is listed under each, marked ``(see above)`` after the first."""
    graph = await read_workflow(backend, args.id)
    if graph is None:
        raise NothingDone(f"no workflow {args.id!r}: no stored job has this workflow id")
    if out.json:
        out.dump(graph.to_json())
        return EXIT_OK
    out.line(f"workflow {graph.workflow_id}", "bold")
    out.note(_summary(graph))
    for line in graph.tree():
        job = line.job
        job_id = int(job.id)
        cells: list[Cell] = [
            (tree_guide(line.indent, line.last, line.open_levels), "dim"),
            (str(job_id), "bold"),
        ]
        if job.workflow_step:
            cells.append(f" {clip(job.workflow_step, NAME_CHARS)}")
        cells += [
            (f" · {clip(job.executor, NAME_CHARS)} · ", "dim"),
            (graph.state(job_id), STATUS_STYLES.get(job.status, "")),
        ]
        if line.repeat:
            cells.append((" (see above)", "dim"))
        out.parts(cells)
    return EXIT_OK


def _summary(graph: WorkflowGraph) -> str:
    parts = [f"{n} {status}" for status, n in graph.counts().items() if n]
    text = f"{len(graph.jobs)} jobs: {', '.join(parts)}"
    if graph.blocked:
        text += f" ({graph.blocked} {WAITING})"
    return text
