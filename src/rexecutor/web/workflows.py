"""HTML for the dashboard's workflow page: the graph drawn as inline SVG, a legend, the steps.

The graph is :mod:`rexecutor._workflow_views`'s (the command line prints the same one as a
tree). It is drawn here, on the server, in layers: a job's column is its depth (the longest
path from a root), so every edge points right; within a column, jobs are ordered by where
their dependencies are, which keeps most edges short. Every value from a job goes through
:func:`~rexecutor.web.pages.h`.
"""

from __future__ import annotations

from rexecutor._workflow_views import WAITING, WorkflowGraph
from rexecutor.job import JobStatus
from rexecutor.web.pages import Ctx, _badge, _time, h, workflow_path

__all__ = ["MAX_DRAWN_JOBS", "MAX_TABLE_ROWS", "dag_svg", "workflow_live"]

#: A workflow with more jobs than this is not drawn (the table and the JSON API list them).
MAX_DRAWN_JOBS = 400
#: The table of steps lists at most this many jobs (the JSON API has them all).
MAX_TABLE_ROWS = 1000
# Node boxes and the gaps between them, in SVG units (pixels at 100%).
NODE_W, NODE_H, COLUMN_GAP, ROW_GAP, PAD = 190, 46, 70, 16, 12
LABEL_CHARS = 24


def _positions(graph: WorkflowGraph) -> dict[int, tuple[int, int]]:
    """(column, row) of every job: columns by depth; in a column, by the mean row of the
    job's dependencies, then by id."""
    columns: dict[int, list[int]] = {}
    for job_id in graph.jobs:
        columns.setdefault(graph.depth[job_id], []).append(job_id)
    row: dict[int, int] = {}
    for depth in sorted(columns):

        def where(job_id: int) -> tuple[float, int]:
            deps = graph.depends_on.get(job_id, ())
            mean = sum(row[d] for d in deps) / len(deps) if deps else -1.0
            return mean, job_id

        for index, job_id in enumerate(sorted(columns[depth], key=where)):
            row[job_id] = index
    return {job_id: (graph.depth[job_id], row[job_id]) for job_id in graph.jobs}


def _label(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def dag_svg(ctx: Ctx, graph: WorkflowGraph) -> str:
    """The workflow as an SVG: a box per job (coloured by status, dashed while it waits on
    its dependencies, linking to the job's page) and an arrow per dependency."""
    places = _positions(graph)
    columns = max(c for c, _ in places.values()) + 1
    rows = max(r for _, r in places.values()) + 1
    width = PAD * 2 + columns * NODE_W + (columns - 1) * COLUMN_GAP
    height = PAD * 2 + rows * NODE_H + (rows - 1) * ROW_GAP

    def corner(job_id: int) -> tuple[int, int]:
        column, row = places[job_id]
        return PAD + column * (NODE_W + COLUMN_GAP), PAD + row * (NODE_H + ROW_GAP)

    edges = []
    for dep, job_id in graph.edges:
        x1, y1 = corner(dep)
        x2, y2 = corner(job_id)
        x1, y1, y2 = x1 + NODE_W, y1 + NODE_H // 2, y2 + NODE_H // 2
        bend = (x2 - x1) / 2
        edges.append(
            f'<path class="edge" data-from="{dep}" data-to="{job_id}" '
            f'd="M{x1} {y1} C{x1 + bend:.0f} {y1} {x2 - bend:.0f} {y2} {x2 - 2} {y2}" '
            'marker-end="url(#dag-arrow)"/>'
        )
    nodes = []
    for job_id, job in graph.jobs.items():
        x, y = corner(job_id)
        state = graph.state(job_id)
        name = job.workflow_step or f"job {job_id}"
        classes = f"node st-{job.status.value}" + (" blocked" if job.blocked else "")
        nodes.append(
            f'<a href="{h(ctx.url(f"/jobs/{job_id}"))}" class="{classes}" '
            f'data-job-id="{job_id}" data-status="{job.status.value}">'
            f"<title>{h(f'{name} (job {job_id}, {job.executor}): {state}')}</title>"
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
            f'<text x="{x + 10}" y="{y + 19}" class="name">{h(_label(name))}</text>'
            f'<text x="{x + 10}" y="{y + 36}" class="sub">'
            f"{h(_label(f'{job_id} · {graph.waiting(job_id) or job.status.value}'))}</text></a>"
        )
    return (
        f'<svg class="dag" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{len(graph.jobs)} jobs, {len(edges)} dependencies">'
        '<defs><marker id="dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path class="arrow" d="M0 0 L10 5 L0 10 z"/></marker>'
        f'</defs><g class="edges">{"".join(edges)}</g><g class="nodes">{"".join(nodes)}</g>'
        "</svg>"
    )


def _legend() -> str:
    items = "".join(
        f'<li><span class="swatch st-{s.value}"></span>{s.value}</li>' for s in JobStatus.ALL
    )
    return (
        f'<ul class="legend" aria-label="legend">{items}'
        f'<li><span class="swatch blocked"></span>{WAITING} (dashed)</li></ul>'
    )


def _table(ctx: Ctx, graph: WorkflowGraph) -> str:
    rows = []
    for job_id in list(graph.jobs)[:MAX_TABLE_ROWS]:
        job = graph.jobs[job_id]
        waiting = graph.waiting(job_id)
        waits = f' <span class="waiting">{h(waiting)}</span>' if waiting else ""
        deps = ", ".join(
            f'<a href="{h(ctx.url(f"/jobs/{dep}"))}">{dep}</a>'
            for dep in graph.depends_on.get(job_id, ())
        )
        last = job.errors[-1] if job.errors else None
        error = f'<span class="err">{h(last.name or last.error_type.value)}</span>' if last else ""
        rows.append(
            f'<tr data-job-id="{job_id}"><td class="num">'
            f'<a href="{h(ctx.url(f"/jobs/{job_id}"))}">{job_id}</a></td>'
            f"<td>{h(job.workflow_step or '')}</td><td>{h(job.executor)}</td>"
            f"<td>{_badge(job.status)}{waits}</td><td class=num>{graph.depth[job_id]}</td>"
            f"<td>{deps or '<span class=muted>-</span>'}</td>"
            f'<td class="num">{job.attempt}/{job.max_attempts}</td>'
            f'<td class="when">{_time(job.finished_at)}</td><td>{error}</td></tr>'
        )
    more = ""
    if len(graph.jobs) > MAX_TABLE_ROWS:
        api = ctx.url("/api" + workflow_path(graph.workflow_id))
        more = (
            f'<p class="muted">{len(graph.jobs) - MAX_TABLE_ROWS} more jobs are not listed: see '
            f'<a href="{h(api)}">the JSON API</a>.</p>'
        )
    return (
        '<table class="grid steps"><thead><tr><th class="num">id</th><th>step</th>'
        '<th>executor</th><th>status</th><th class="num">depth</th><th>depends on</th>'
        '<th class="num">attempt</th><th>finished</th><th>last error</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{more}"
    )


def workflow_live(ctx: Ctx, graph: WorkflowGraph) -> str:
    """The workflow page's live part: counts, the drawn graph and its legend, the steps."""
    summary = " ".join(f"{_badge(status)} {n}" for status, n in graph.counts().items() if n)
    if graph.blocked:
        summary += f' <span class="waiting">{graph.blocked} {WAITING}</span>'
    if len(graph.jobs) <= MAX_DRAWN_JOBS:
        drawing = f'<figure class="dag-box">{dag_svg(ctx, graph)}</figure>{_legend()}'
    else:
        drawing = (
            f'<p class="muted">{len(graph.jobs)} jobs are too many to draw (at most '
            f"{MAX_DRAWN_JOBS}): the steps are listed below.</p>"
        )
    return (
        f'<p class="summary" data-jobs="{len(graph.jobs)}">{len(graph.jobs)} jobs: {summary}</p>'
        f"<section><h2>Graph</h2>{drawing}</section>"
        f"<section><h2>Steps</h2>{_table(ctx, graph)}</section>"
    )
