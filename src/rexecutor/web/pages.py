"""HTML for the dashboard's pages, built from plain strings.

Every value that comes from a job (data, tags, errors, names) goes through :func:`h`, which
escapes it; the functions here return HTML that is safe to send. Charts are inline SVG. The
part of each page that refreshes itself is rendered separately (``*_live`` functions), so the
browser can fetch just that part.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from rexecutor import _clock, _views, admin
from rexecutor._text import storable
from rexecutor._workflow_views import WAITING
from rexecutor.control import ExecutorControl
from rexecutor.job import Job, JobStatus

__all__ = [
    "PAGE_ERRORS",
    "PAGE_TEXT_CHARS",
    "Ctx",
    "h",
    "safe_next",
    "workflow_facts",
    "workflow_path",
]

#: On a job's page, data, metadata, the result, error details and tracebacks longer than this
#: are cut (the JSON API's /api/jobs/ID has them in full).
PAGE_TEXT_CHARS = 256 * 1024
#: In the job list, at most this many tags are shown per job, each cut to TAG_CHARS.
LIST_TAGS = 10
#: On a job's page, only the last errors are shown.
PAGE_ERRORS = 20
TAG_CHARS = 60


def h(value: object) -> str:
    """Escape a value for HTML text or a quoted attribute.

    NUL and lone surrogates (which a query string or an old row can carry) are made visible,
    as in stored error texts: no page ever holds a character a browser or parser refuses.
    """
    return escape(storable(str(value)), quote=True)


@dataclass(frozen=True, slots=True)
class Ctx:
    """What every page needs: where the app is mounted, the CSRF token, the settings.

    ``path`` is the route inside the app; ``here`` adds the query string (the page to come
    back to after an action).
    """

    root: str
    csrf: str
    read_only: bool
    title: str
    refresh_seconds: float
    path: str
    here: str = "/"
    flash: str = ""

    def url(self, path: str, **params: Any) -> str:
        """A URL inside the app, with query parameters (None and empty values dropped)."""
        query = [
            (key, item)
            for key, value in params.items()
            for item in (value if isinstance(value, (list, tuple)) else [value])
            if item not in (None, "")
        ]
        return self.root + path + ("?" + urlencode(query) if query else "")


def safe_next(target: str | None) -> str:
    """``target`` if it is a path inside this app (where to go back to), else ``"/"``.

    Only same-site relative paths pass: no scheme (``javascript:``, ``https:``), no
    ``//host``, no backslash or control character (browsers drop tabs and newlines, so
    ``/<TAB>/evil`` would become ``//evil``).
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(c) < 0x21 or ord(c) == 0x7F for c in target):
        return "/"
    return target


def _time(moment: datetime | None) -> str:
    if moment is None:
        return '<span class="muted">-</span>'
    utc = moment.astimezone(UTC)
    return (
        f'<time datetime="{h(utc.isoformat())}" title="{h(utc.isoformat())}">'
        f"{h(utc.strftime('%Y-%m-%d %H:%M:%S'))}</time> "
        f'<span class="muted">{h(_views.format_age(moment))}</span>'
    )


def _badge(status: JobStatus | str) -> str:
    value = JobStatus(status).value
    return f'<span class="badge st-{value}">{h(value)}</span>'


def _short(value: Any, limit: int = 60) -> str:
    return _clip(_views.dumps_json(value), limit)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def layout(ctx: Ctx, heading: str, live: str, before: str = "", after: str = "") -> str:
    """The whole page: header and navigation, then static parts and the live part."""
    nav = []
    for path, label in (
        ("/", "Overview"),
        ("/jobs", "Jobs"),
        ("/executors", "Executors"),
        ("/nodes", "Nodes"),
    ):
        current = ctx.path == path or (path != "/" and ctx.path.startswith(path))
        nav.append(
            f'<a href="{h(ctx.url(path))}"{" aria-current=page" if current else ""}>{label}</a>'
        )
    mode = '<span class="pill">read-only</span>' if ctx.read_only else ""
    flash = f'<p class="flash" role="status">{h(ctx.flash)}</p>' if ctx.flash else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{h(heading)} · {h(ctx.title)}</title>
<link rel="stylesheet" href="{h(ctx.url("/static/app.css"))}">
<script src="{h(ctx.url("/static/app.js"))}" defer></script>
</head>
<body data-refresh="{ctx.refresh_seconds:g}">
<header><a class="brand" href="{h(ctx.url("/"))}">{h(ctx.title)}</a><nav>{"".join(nav)}</nav>
{mode}<span class="updated" id="updated" aria-live="polite"></span></header>
<main><h1>{h(heading)}</h1>{flash}{before}
<div id="live">{live}</div>{after}</main>
</body></html>"""


def message_page(ctx: Ctx, heading: str, text: str) -> str:
    """A page that says one thing (errors, refusals)."""
    return layout(ctx, heading, f'<p class="message">{h(text)}</p>')


def _csrf_field(ctx: Ctx) -> str:
    return f'<input type="hidden" name="csrf" value="{h(ctx.csrf)}">'


def _action(ctx: Ctx, path: str, label: str, confirm: str, fields: str = "", cls: str = "") -> str:
    return (
        f'<form method="post" action="{h(ctx.url(path))}" data-confirm="{h(confirm)}" '
        f'class="action">{_csrf_field(ctx)}'
        f'<input type="hidden" name="next" value="{h(ctx.here)}">{fields}'
        f'<button type="submit" class="{h(cls)}">{h(label)}</button></form>'
    )


def confirm_page(ctx: Ctx, question: str, path: str, fields: dict[str, str]) -> str:
    """Ask before acting, for browsers without JavaScript (which confirm in a dialog)."""
    hidden = "".join(
        f'<input type="hidden" name="{h(k)}" value="{h(v)}">'
        for k, v in fields.items()
        if k not in ("csrf", "confirmed")
    )
    body = (
        f'<p class="message">{h(question)}</p>'
        f'<form method="post" action="{h(ctx.url(path))}">{_csrf_field(ctx)}{hidden}'
        '<input type="hidden" name="confirmed" value="1">'
        '<button type="submit" class="danger">Yes, do it</button> '
        f'<a href="{h(ctx.root + safe_next(fields.get("next")))}">No, go back</a></form>'
    )
    return layout(ctx, "Please confirm", body)


# -- overview -----------------------------------------------------------------------------


def overview_live(
    ctx: Ctx, overview: admin.Overview, nodes: list[admin.NodeRow], paused: list[str]
) -> str:
    """Counts by status and executor, throughput and failures over time, node count, and
    which executors are paused."""
    totals = overview.by_status()
    cards = "".join(
        f'<a class="card st-{s.value}" href="{h(ctx.url("/jobs", status=s.value))}">'
        f'<span class="count" data-status="{s.value}">{totals[s]}</span>'
        f'<span class="label">{s.value}</span></a>'
        for s in JobStatus.ALL
    )
    head = "".join(f'<th class="num">{s.value}</th>' for s in JobStatus.ALL)
    rows = []
    for executor in overview.executors:
        row = overview.row(executor)
        cells = "".join(
            f'<td class="num"><a href="{h(ctx.url("/jobs", executor=executor, status=s.value))}">'
            f"{row[s]}</a></td>"
            if row[s]
            else '<td class="num muted">0</td>'
            for s in JobStatus.ALL
        )
        mark = ' <span class="badge paused">paused</span>' if executor in paused else ""
        rows.append(
            f'<tr><th scope="row"><a href="{h(ctx.url("/jobs", executor=executor))}">'
            f"{h(executor)}</a>{mark}</th>{cells}<td class=num>{sum(row.values())}</td></tr>"
        )
    table = (
        f'<table class="grid"><thead><tr><th>executor</th>{head}<th class="num">total</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="muted">No jobs yet.</p>'
    )
    completed = [(m, per[JobStatus.COMPLETE]) for m, per in overview.series]
    failed = [(m, sum(per[s] for s in admin.FAILED_STATUSES)) for m, per in overview.series]
    alive = sum(1 for n in nodes if n.alive)
    notice = ""
    if paused:
        names = ", ".join(f"<strong>{h(name)}</strong>" for name in paused)
        notice = (
            f'<p class="paused-note" id="paused-executors">Paused: {names} '
            f'<a href="{h(ctx.url("/executors"))}">(executors)</a></p>'
        )
    return f"""{notice}<section class="cards" aria-label="jobs by status">{cards}</section>
<section class="charts">
<figure><figcaption>Completed per minute, last {overview.minutes} minutes
<span class="muted">({overview.per_minute():.1f}/min)</span></figcaption>
{bar_chart(completed, "ok", "completed")}</figure>
<figure><figcaption>Failures per minute (discarded and cancelled)</figcaption>
{bar_chart(failed, "bad", "failed")}</figure>
</section>
<section><h2>By executor</h2>{table}</section>
<section><h2>Nodes</h2><p><a href="{h(ctx.url("/nodes"))}">{alive} alive</a>
<span class="muted">of {len(nodes)} recorded</span></p></section>"""


def bar_chart(points: list[tuple[datetime, int]], tone: str, what: str) -> str:
    """A bar per minute, as inline SVG, with the time range and the peak labelled."""
    width, height, pad = 600, 140, 24
    top = max((v for _, v in points), default=0)
    n = max(len(points), 1)
    slot = (width - pad) / n
    bars = []
    for i, (minute, value) in enumerate(points):
        if value == 0:
            continue
        bar = (height - pad) * value / top
        x = pad + i * slot
        y = height - pad - bar
        label = f"{minute.astimezone(UTC).strftime('%H:%M')} UTC: {value} {what}"
        bars.append(
            f'<rect class="{tone}" x="{x:.1f}" y="{y:.1f}" width="{max(slot - 1, 1):.1f}" '
            f'height="{bar:.1f}"><title>{h(label)}</title></rect>'
        )
    first = points[0][0].astimezone(UTC).strftime("%H:%M") if points else ""
    last = points[-1][0].astimezone(UTC).strftime("%H:%M") if points else ""
    axis = height - pad
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{h(what)} per minute, peak {top}">'
        f'<line class="axis" x1="{pad}" y1="{axis}" x2="{width}" y2="{axis}"/>'
        f'<text x="0" y="12" class="tick">{top}</text>'
        f'<text x="0" y="{axis}" class="tick">0</text>'
        f'<text x="{pad}" y="{height - 6}" class="tick">{first}</text>'
        f'<text x="{width}" y="{height - 6}" class="tick" text-anchor="end">{last} UTC</text>'
        f"{''.join(bars)}</svg>"
    )


# -- jobs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListParams:
    """The job list's filters and page, as read from the query string."""

    executor: str = ""
    status: str = ""
    tag: str = ""
    limit: int = 50
    offset: int = 0

    def filters(self) -> admin.Filters:
        """As backend filters."""
        return admin.Filters(
            executors=(self.executor,) if self.executor else (),
            statuses=admin.Filters.parse_statuses([self.status]) if self.status else (),
            tags=tuple(t.strip() for t in self.tag.split(",") if t.strip()),
        )

    def query(self, **changes: Any) -> dict[str, Any]:
        """Query parameters for a link to this list (with ``changes``)."""
        values: dict[str, Any] = {
            "executor": self.executor,
            "status": self.status,
            "tag": self.tag,
            "limit": self.limit if self.limit != 50 else None,
            "offset": self.offset or None,
        }
        values.update(changes)
        return values


def jobs_filters(ctx: Ctx, params: ListParams, executors: list[str]) -> str:
    """The filter form (outside the live part, so typing is never interrupted)."""
    executor_options = "".join(
        f'<option value="{h(e)}"{" selected" if e == params.executor else ""}>{h(e)}</option>'
        for e in sorted(set(executors) | ({params.executor} if params.executor else set()))
    )
    status_options = "".join(
        f'<option value="{s.value}"{" selected" if s.value == params.status else ""}>'
        f"{s.value}</option>"
        for s in JobStatus.ALL
    )
    form = f"""<form class="filters" method="get" action="{h(ctx.url("/jobs"))}">
<label>Executor <select name="executor"><option value="">any</option>{executor_options}
</select></label>
<label>Status <select name="status"><option value="">any</option>{status_options}</select></label>
<label>Tag <input name="tag" value="{h(params.tag)}" placeholder="tag, another"></label>
<button type="submit">Filter</button>
<a href="{h(ctx.url("/jobs"))}">Clear</a></form>"""
    retry = ""
    filters = params.filters()
    if not ctx.read_only and filters.statuses and admin.can_retry(filters):
        fields = "".join(
            f'<input type="hidden" name="{k}" value="{h(v)}">'
            for k, v in (
                ("executor", params.executor),
                ("status", params.status),
                ("tag", params.tag),
            )
            if v
        )
        scope = f"every {params.status} job" + (f" of {params.executor}" if params.executor else "")
        if params.tag:
            scope += f" tagged {params.tag}"
        retry = _action(
            ctx,
            "/jobs/retry",
            f"Retry all matching ({params.status})",
            f"Run {scope} again now?",
            fields,
            "bulk",
        )
    return form + retry


def job_row(ctx: Ctx, job: Job[Any, Any]) -> str:
    """One row of the job table (every value cut short, so a row stays small)."""
    last = job.errors[-1] if job.errors else None
    error = ""
    if last is not None:
        summary = _clip(f"{last.name or last.error_type.value}: {last.details[:200]}", 70)
        error = f'<span class="err">{h(summary)}</span>'
    when = job.finished_at or (
        job.attempted_at if job.status is JobStatus.EXECUTING else job.scheduled_at
    )
    tags = " ".join(
        f'<span class="tag">{h(_clip(t, TAG_CHARS))}</span>' for t in job.tags[:LIST_TAGS]
    )
    if len(job.tags) > LIST_TAGS:
        tags += f' <span class="muted">+{len(job.tags) - LIST_TAGS}</span>'
    return (
        f'<tr data-job-id="{int(job.id)}" data-status="{job.status.value}">'
        f'<td class="num"><a href="{h(ctx.url(f"/jobs/{int(job.id)}"))}">{int(job.id)}</a></td>'
        f"<td>{h(job.executor)}</td><td>{_badge(job.status)}{_waiting(job)}</td>"
        f'<td class="num">{job.attempt}/{job.max_attempts}</td><td>{tags}</td>'
        f'<td class="when">{_time(when)}</td><td><code>{h(_short(job.data, 50))}</code></td>'
        f"<td>{error}</td></tr>"
    )


def _waiting(job: Job[Any, Any]) -> str:
    # A blocked job is scheduled, but no node takes it before its dependencies finish.
    return f' <span class="waiting">{WAITING}</span>' if job.blocked else ""


def jobs_live(ctx: Ctx, params: ListParams, rows: list[str]) -> str:
    """The job table (rows from :func:`job_row`) and the pager."""
    if not rows:
        return '<p class="muted">No jobs match.</p>' + _pager(ctx, params, 0)
    return (
        '<table class="grid jobs"><thead><tr><th class="num">id</th><th>executor</th>'
        '<th>status</th><th class="num">attempt</th><th>tags</th><th>when</th><th>data</th>'
        f"<th>last error</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + _pager(ctx, params, len(rows))
    )


def _pager(ctx: Ctx, params: ListParams, count: int) -> str:
    parts = []
    if params.offset > 0:
        previous = max(params.offset - params.limit, 0)
        parts.append(
            f'<a href="{h(ctx.url("/jobs", **params.query(offset=previous or None)))}">← newer</a>'
        )
    if count:
        parts.append(f"<span>jobs {params.offset + 1}–{params.offset + count}</span>")
    if count == params.limit:
        parts.append(
            f'<a href="{h(ctx.url("/jobs", **params.query(offset=params.offset + params.limit)))}">'
            "older →</a>"
        )
    return f'<nav class="pager">{" ".join(parts)}</nav>'


def job_live(ctx: Ctx, job: Job[Any, Any]) -> str:
    """One job: fields, actions, data, metadata, state history, errors with tracebacks."""
    job_id = int(job.id)
    actions = []
    if not ctx.read_only:
        if not job.status.is_terminal:
            reason = (
                '<input type="text" name="reason" placeholder="reason (optional)" '
                'aria-label="reason">'
            )
            actions.append(
                _action(
                    ctx,
                    f"/jobs/{job_id}/cancel",
                    "Cancel job",
                    f"Cancel job {job_id}?",
                    reason,
                    "danger",
                )
            )
        if job.status is not JobStatus.EXECUTING:
            actions.append(
                _action(
                    ctx, f"/jobs/{job_id}/rerun", "Run again now", f"Run job {job_id} again now?"
                )
            )
    fields = [
        ("status", _badge(job.status)),
        ("executor", h(job.executor)),
        ("attempt", f"{job.attempt} of {job.max_attempts}"),
        ("priority", str(job.priority)),
        ("tags", " ".join(f'<span class="tag">{h(t)}</span>' for t in job.tags) or "-"),
        ("inserted", _time(job.inserted_at)),
        ("scheduled", _time(job.scheduled_at)),
        ("attempted", _time(job.attempted_at)),
    ]
    if job.attempted_by:
        fields.append(("attempted by", h(job.attempted_by)))
    if job.progress is not None:
        fields.append(("progress", _progress(job)))
    fields += workflow_facts(ctx, job)
    for label, moment in (
        ("completed", job.completed_at),
        ("cancelled", job.cancelled_at),
        ("discarded", job.discarded_at),
    ):
        if moment is not None:
            fields.append((label, _time(moment)))
    facts = "".join(f"<dt>{h(k)}</dt><dd>{v}</dd>" for k, v in fields)
    history = "".join(
        f'<li class="ev-{h(entry.status or entry.event.replace(" ", "-"))}">{_time(entry.at)} '
        f"<strong>{h(entry.event)}</strong> {h(_clip(entry.detail, 300))}</li>"
        for entry in _views.job_history(job)
    )
    errors = []
    shown = job.errors[-PAGE_ERRORS:]
    earlier = len(job.errors) - len(shown)
    for index, error in enumerate(shown, start=earlier):
        trace = (
            f'<details id="tb-{index}"><summary>traceback</summary>'
            f"<pre>{h(_cut(error.traceback, job_id))}</pre>"
            "</details>"
            if error.traceback
            else ""
        )
        name = f" · {h(_clip(error.name, 200))}" if error.name else ""
        errors.append(
            f'<li class="error"><p><strong>attempt {error.attempt}</strong> · '
            f"{h(error.error_type.value)}{name} · "
            f"{_time(error.recorded_at)}</p><p><code>{h(_cut(error.details, job_id))}</code></p>"
            f"{trace}</li>"
        )
    error_list = (
        f'<ol class="errors" start="{earlier + 1}">{"".join(errors)}</ol>'
        if errors
        else '<p class="muted">None.</p>'
    )
    if earlier:
        error_list = (
            f'<p class="muted">{earlier} earlier errors are not shown: see '
            f'<a href="{h(ctx.url(f"/api/jobs/{job_id}"))}">/api/jobs/{job_id}</a>.</p>'
            + error_list
        )
    result = (
        ""
        if job.result is None
        else f'<section><h2>Result</h2><pre class="json">'
        f"{h(_cut(_pretty(job.result), job_id))}</pre></section>\n"
    )
    return f"""<div class="actions">{"".join(actions)}</div>
<dl class="facts" data-status="{job.status.value}">{facts}</dl>
<section class="two"><div><h2>Data</h2>
<pre class="json">{h(_cut(_pretty(job.data), job_id))}</pre></div>
<div><h2>Metadata</h2><pre class="json">{h(_cut(_pretty(job.metadata), job_id))}</pre></div>
</section>
{result}<section><h2>History</h2><ol class="history">{history}</ol></section>
<section><h2>Errors ({len(job.errors)})</h2>{error_list}</section>"""


def _progress(job: Job[Any, Any]) -> str:
    """A progress bar with the report's percent, message and age (the live part refreshes
    it while the job runs)."""
    progress = job.progress
    assert progress is not None
    percent = f"{progress.percent:.3g}"
    text = h(_views.progress_text(job) or "")
    return (
        f'<span class="progress" data-percent="{percent}">'
        f'<progress max="100" value="{percent}">{percent}%</progress> {text}</span>'
    )


def _pretty(value: Any) -> str:
    return _views.dumps_json(value, indent=2)


def _cut(text: str, job_id: int) -> str:
    if len(text) <= PAGE_TEXT_CHARS:
        return text
    return (
        text[:PAGE_TEXT_CHARS]
        + f"\n… [{len(text) - PAGE_TEXT_CHARS} more characters: see /api/jobs/{job_id}]"
    )


# -- workflows (the workflow page itself is rexecutor.web.workflows) ----------------------


def workflow_path(workflow_id: str) -> str:
    """The workflow page's path inside the app (the id may hold any character)."""
    return "/workflows/" + quote(workflow_id, safe="", errors="replace")


def workflow_facts(ctx: Ctx, job: Job[Any, Any]) -> list[tuple[str, str]]:
    """The job page's lines about its workflow (a link to it, its step) and, while it is
    blocked, that it waits on its dependencies."""
    facts: list[tuple[str, str]] = []
    if job.workflow_id is not None:
        link = h(ctx.url(workflow_path(job.workflow_id)))
        facts.append(("workflow", f'<a class="workflow" href="{link}">{h(job.workflow_id)}</a>'))
        if job.workflow_step:
            facts.append(("step", h(job.workflow_step)))
    if job.blocked:
        facts.append(("dependencies", _waiting(job).strip()))
    return facts


# -- nodes --------------------------------------------------------------------------------


def nodes_live(ctx: Ctx, rows: list[admin.NodeRow]) -> str:
    """The nodes that recorded heartbeats, most recent first."""
    if not rows:
        return '<p class="muted">No node has recorded a heartbeat.</p>'
    now = _clock.now()
    body = "".join(
        f"<tr><td><code>{h(r.node.node_id)}</code></td><td>{h(r.node.host)}</td>"
        f'<td class="num">{r.node.pid}</td><td>{_time(r.node.started_at)}</td>'
        f"<td>{h(_views.format_age(r.node.heartbeat_at, now))}</td>"
        f"<td>{'<span class=alive>alive</span>' if r.alive else '<span class=dead>silent</span>'}"
        "</td></tr>"
        for r in rows
    )
    return (
        '<table class="grid"><thead><tr><th>node</th><th>host</th><th class="num">pid</th>'
        f"<th>started</th><th>heartbeat</th><th>state</th></tr></thead><tbody>{body}</tbody>"
        "</table>"
    )


# -- executors ----------------------------------------------------------------------------


def _limit(value: int | None) -> str:
    return '<span class="muted">-</span>' if value is None else str(value)


def _executor_actions(ctx: Ctx, state: ExecutorControl) -> str:
    name = f'<input type="hidden" name="name" value="{h(state.name)}">'
    if state.paused:
        toggle = _action(
            ctx, "/executors/resume", "Resume", f"Resume {state.name} on every node?", name
        )
    else:
        toggle = _action(
            ctx, "/executors/pause", "Pause", f"Pause {state.name} on every node?", name, "danger"
        )
    current = str(state.max_concurrency) if state.scaled else "default"
    field = (
        f'<input type="text" name="max_concurrency" value="{h(current)}" size="7" '
        f'inputmode="numeric" aria-label="per-node limit of {h(state.name)}" '
        'title="a whole number >= 1, or default">'
    )
    scale = _action(
        ctx,
        "/executors/scale",
        "Scale",
        f"Change the per-node limit of {state.name} on every node?",
        name + field,
    )
    return toggle + scale


def executors_live(ctx: Ctx, states: list[ExecutorControl]) -> str:
    """Every executor the backend knows: paused or not, its limits, its job counts, and (not
    read-only) Pause or Resume and a Scale form."""
    if not states:
        return '<p class="muted">No executor has jobs or stored state yet.</p>'
    rows = []
    for state in states:
        badge = (
            '<span class="badge paused">paused</span>'
            if state.paused
            else '<span class="badge running">running</span>'
        )
        per_node = (
            f'{state.max_concurrency} <span class="muted">scaled</span>'
            if state.scaled
            else '<span class="muted">class default</span>'
        )
        headroom = state.rate_headroom
        rate = (
            '<span class="muted">-</span>'
            if state.rate_limit is None
            else h(_views.format_rate(state.rate_limit))
        )
        actions = "" if ctx.read_only else f"<td>{_executor_actions(ctx, state)}</td>"
        jobs = ctx.url("/jobs", executor=state.name)
        rows.append(
            f'<tr data-executor="{h(state.name)}" data-paused="{str(state.paused).lower()}">'
            f'<th scope="row"><a href="{h(jobs)}">{h(state.name)}</a></th><td>{badge}</td>'
            f'<td class="num per-node">{per_node}</td>'
            f'<td class="num">{_limit(state.global_max_concurrency)}</td>'
            f'<td class="num">{_limit(state.partition_max_concurrency)}</td>'
            f"<td>{rate}</td>"
            f'<td class="num">{_limit(headroom)}</td>'
            f'<td class="num">{state.scheduled}</td><td class="num">{state.executing}</td>'
            f'<td class="num">{state.failed}</td>{actions}</tr>'
        )
    head = "" if ctx.read_only else "<th>actions</th>"
    return (
        '<table class="grid executors"><thead><tr><th>executor</th><th>state</th>'
        '<th class="num">per node</th><th class="num">global</th>'
        '<th class="num">per partition</th><th>rate limit</th><th class="num">headroom</th>'
        '<th class="num">scheduled</th><th class="num">executing</th>'
        f'<th class="num">failed</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        '<p class="muted">Limits are those the last node to start each executor declared; '
        "scheduled counts retryable jobs too, failed counts discarded ones. A pause or a scale "
        "holds on every node within one poll interval; running jobs finish.</p>"
    )
