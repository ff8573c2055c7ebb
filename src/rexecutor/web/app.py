"""The dashboard's ASGI application (Starlette): pages, a JSON API, actions and their guards.

Protection, in the order a request meets it:

0. The Host header: with neither an access token nor an ``auth`` hook, only loopback names
   (``localhost``, ``127.0.0.1``, ``[::1]``, any port) and the ``allowed_hosts`` are answered,
   so a web page cannot reach the dashboard by pointing its own name at 127.0.0.1 (DNS
   rebinding). Otherwise 400.
1. The access token, when one is set: ``Authorization: Bearer TOKEN``, or a cookie set after
   the dashboard was opened once with ``?token=TOKEN`` (the token is then removed from the
   address bar by a redirect). Otherwise 401.
2. The host application's ``auth`` hook, when given: a false answer is a 403.
3. Actions (cancel, rerun, retry a job; pause, resume, scale an executor) are POSTs only,
   refused in read-only mode, and must carry a CSRF token: an HMAC, under the app's secret, of
   a random per-browser cookie (HttpOnly, SameSite=Strict). A POST whose ``Origin`` names
   another host is refused too.
4. Responses carry a strict Content-Security-Policy (scripts and styles from the app only),
   ``X-Frame-Options: DENY`` and ``nosniff``.

Request bodies are read up to :data:`MAX_FORM_BYTES` and refused (413) beyond it, and list
responses stay within :data:`MAX_RESPONSE_BYTES`: long values are cut (the job's own address
has them in full) and a page that would be larger ends early with ``truncated`` set.

``rexecutor dashboard`` also refuses to listen on a non-loopback interface unless told to.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from rexecutor import _views, admin, control
from rexecutor._redact import mask_secrets
from rexecutor._workflow_views import WorkflowGraph, read_workflow
from rexecutor.backend import Backend
from rexecutor.errors import (
    BackendError,
    ConfigurationError,
    InvalidTransition,
    JobNotFound,
    RexecutorError,
)
from rexecutor.job import Job
from rexecutor.web import assets, ops, pages, workflows
from rexecutor.web.pages import Ctx, ListParams

__all__ = [
    "CSRF_COOKIE",
    "MAX_FORM_BYTES",
    "MAX_RESPONSE_BYTES",
    "TOKEN_COOKIE",
    "build_app",
]

CSRF_COOKIE = "rexecutor_csrf"
TOKEN_COOKIE = "rexecutor_token"
FRAGMENT_HEADER = "x-rexecutor-fragment"
#: The largest request body read; a larger one is refused with 413 before it is all read.
MAX_FORM_BYTES = 64 * 1024
#: Job lists are read from the backend this many jobs at a time.
LIST_BATCH = 20
#: A job list response (JSON) stops adding jobs once it reaches this size.
MAX_RESPONSE_BYTES = 1024 * 1024
#: What a job list's JSON holds besides its jobs (the brackets and the paging fields), at most.
_ENVELOPE_BYTES = 256

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

Endpoint = Callable[[Request], Awaitable[Response]]
PageHandler = Callable[[Request, Ctx], Awaitable[Response]]


class _Refused(Exception):
    """A request the dashboard will not serve: its status code and a sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def build_app(
    backend: Backend,
    *,
    read_only: bool,
    auth: Callable[[Request], Any] | None,
    token: str | None,
    refresh_seconds: float,
    secret: bytes | None,
    title: str,
    allowed_hosts: Iterable[str] | None = None,
    read_backend: Backend | None = None,
) -> Starlette:
    """The Starlette application behind :func:`rexecutor.web.dashboard_app`."""
    if token is not None and not token.strip():
        raise ConfigurationError(
            "the dashboard's access token must not be empty: pass a token, or None for none"
        )
    hosts = None if allowed_hosts is None else _allowed_hosts(allowed_hosts)
    if hosts is None and token is None and auth is None:
        hosts = frozenset()  # loopback names only
    if refresh_seconds < 0:
        raise ConfigurationError(f"refresh_seconds must be >= 0, got {refresh_seconds}")
    dashboard = _Dashboard(
        backend,
        read_only=read_only,
        auth=auth,
        token=token,
        refresh_seconds=refresh_seconds,
        secret=secret or secrets.token_bytes(32),
        title=mask_secrets(title),
        allowed_hosts=hosts,
        reads=read_backend or backend,
    )
    return Starlette(routes=dashboard.routes())


def _allowed_hosts(names: Iterable[str]) -> frozenset[str]:
    if isinstance(names, str):
        raise ConfigurationError(f"allowed_hosts must be a list of names, got the string {names!r}")
    hosts = set()
    for name in names:
        cleaned = ops.host_name(str(name))
        if not cleaned or any(c in str(name) for c in "/@ \t"):
            raise ConfigurationError(
                f"allowed host {name!r} is not a host name: give names such as "
                "jobs.example.com (no scheme, path or port), or '*' for any"
            )
        hosts.add(cleaned)
    return frozenset(hosts)


class _Dashboard:
    def __init__(
        self,
        backend: Backend,
        *,
        read_only: bool,
        auth: Callable[[Request], Any] | None,
        token: str | None,
        refresh_seconds: float,
        secret: bytes,
        title: str,
        allowed_hosts: frozenset[str] | None,
        reads: Backend,
    ) -> None:
        # Actions go to ``backend``; pages and the JSON API read ``reads`` (a replica's, or
        # the same backend).
        self.backend = backend
        self.reads = reads
        self.allowed_hosts = allowed_hosts
        self.read_only = read_only
        self.auth = auth
        self.token = token
        self.refresh_seconds = refresh_seconds
        self.secret = secret
        self.title = title
        self._connected = False
        self._connecting: asyncio.Lock | None = None

    def routes(self) -> list[Route]:
        page, api = self._page, self._api
        return [
            Route("/", page(self.overview_page)),
            Route("/jobs", page(self.jobs_page)),
            Route("/jobs/retry", page(self.retry_action, write=True), methods=["POST"]),
            Route("/jobs/{job_id:int}", page(self.job_page)),
            Route(
                "/jobs/{job_id:int}/cancel", page(self.cancel_action, write=True), methods=["POST"]
            ),
            Route(
                "/jobs/{job_id:int}/rerun", page(self.rerun_action, write=True), methods=["POST"]
            ),
            Route("/nodes", page(self.nodes_page)),
            Route("/executors", page(self.executors_page)),
            Route("/executors/pause", page(self.pause_action, write=True), methods=["POST"]),
            Route("/executors/resume", page(self.resume_action, write=True), methods=["POST"]),
            Route("/executors/scale", page(self.scale_action, write=True), methods=["POST"]),
            Route("/api/overview", api(self.overview_api)),
            Route("/api/jobs", api(self.jobs_api)),
            Route("/api/jobs/{job_id:int}", api(self.job_api)),
            Route("/api/nodes", api(self.nodes_api)),
            Route("/api/executors", api(self.executors_api)),
            # Workflows: the id may hold "/" (a workflow's name is any text), hence :path.
            Route("/workflows/{workflow_id:path}", page(self.workflow_page)),
            Route("/api/workflows/{workflow_id:path}", api(self.workflow_api)),
            Route("/static/app.css", self._static(assets.CSS, "text/css")),
            Route("/static/app.js", self._static(assets.JS, "text/javascript")),
            Route("/favicon.ico", _no_icon),
        ]

    # -- guards ----------------------------------------------------------------------------

    def _digest(self, purpose: str, value: str) -> str:
        message = f"{purpose}:{value}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def _check_host(self, request: Request) -> None:
        if self.allowed_hosts is None or "*" in self.allowed_hosts:
            return
        header = request.headers.get("host", "")
        name = ops.host_name(header)
        if ops.is_loopback(name) or name in self.allowed_hosts:
            return
        raise _Refused(
            400,
            f"This dashboard does not answer for the host name {header[:100]!r}: open it as "
            "localhost or 127.0.0.1, or start it with --allowed-host NAME (allowed_hosts= when "
            "mounted) for a name of your own.",
        )

    async def _check_access(self, request: Request) -> Response | None:
        """None when the request may go on; else the response that refuses it."""
        self._check_host(request)
        if self.token is not None:
            expected = self._digest("token", self.token)
            offered = request.query_params.get("token")
            if offered is not None and _same(offered, self.token):
                url = request.url.remove_query_params("token")
                target = url.path + (f"?{url.query}" if url.query else "")
                response: Response = RedirectResponse(target, status_code=303)
                response.set_cookie(
                    TOKEN_COOKIE,
                    expected,
                    httponly=True,
                    samesite="strict",
                    path=_cookie_path(request),
                )
                return response
            bearer = request.headers.get("authorization", "")
            cookie = request.cookies.get(TOKEN_COOKIE, "")
            ok = (
                bearer.lower().startswith("bearer ") and _same(bearer[7:].strip(), self.token)
            ) or (bool(cookie) and _same(cookie, expected))
            if not ok:
                raise _Refused(
                    401,
                    "This dashboard needs an access token: open it once with ?token=TOKEN, "
                    "or send the header Authorization: Bearer TOKEN.",
                )
        if self.auth is not None:
            verdict = self.auth(request)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if not verdict:
                raise _Refused(403, "You are not allowed to see this dashboard.")
        return None

    async def _connect(self) -> None:
        if self._connected:
            return
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if not self._connected:
                await self.backend.connect()
                if self.reads is not self.backend:
                    await self.reads.connect()
                self._connected = True

    def _ctx(self, request: Request, csrf_cookie: str) -> Ctx:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        path = request.url.path
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "flash"]
        here = path + ("?" + urlencode(query) if query else "")
        return Ctx(
            root=root,
            csrf=self._digest("csrf", csrf_cookie),
            read_only=self.read_only,
            title=self.title,
            refresh_seconds=self.refresh_seconds,
            path=path,
            here=here,
            flash=request.query_params.get("flash", "")[:300],
        )

    def _page(self, handler: PageHandler, *, write: bool = False) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            cookie = request.cookies.get(CSRF_COOKIE, "")
            fresh = None
            if len(cookie) < 32:
                cookie = fresh = secrets.token_urlsafe(32)
            ctx = self._ctx(request, cookie)
            try:
                early = await self._check_access(request)
                if early is not None:
                    return _secure(early)
                if write:
                    self._check_write(request, fresh is None)
                await self._connect()
                response = await handler(request, ctx)
            except (_Refused, RexecutorError) as exc:
                status, heading, text = _refusal(exc)
                response = _html(pages.message_page(ctx, heading, text), status)
            if fresh is not None:
                response.set_cookie(
                    CSRF_COOKIE, fresh, httponly=True, samesite="strict", path=_cookie_path(request)
                )
            return _secure(response)

        return endpoint

    def _api(self, handler: Callable[[Request], Awaitable[Any]]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            try:
                early = await self._check_access(request)
                if early is not None:
                    return _secure(early)
                await self._connect()
                result = await handler(request)
                response = result if isinstance(result, Response) else _json(result)
            except (_Refused, RexecutorError) as exc:
                status, _, text = _refusal(exc)
                response = _json({"error": text}, status)
            return _secure(response)

        return endpoint

    def _static(self, body: str, media_type: str) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            try:
                early = await self._check_access(request)
            except _Refused as exc:
                return _secure(Response(str(exc), exc.status, media_type="text/plain"))
            if early is not None:
                return _secure(early)
            return _secure(Response(body, media_type=media_type))

        return endpoint

    def _check_write(self, request: Request, has_cookie: bool) -> None:
        if self.read_only:
            raise _Refused(403, "This dashboard is read-only: actions are turned off.")
        origin = request.headers.get("origin")
        if origin and origin != "null":
            host = request.headers.get("host", "")
            if urlparse(origin).netloc.lower() != host.lower():
                raise _Refused(403, f"Refused a request sent from another site ({origin}).")
        if not has_cookie:
            raise _Refused(
                403, "The form has expired or your browser refused the cookie: reload the page."
            )

    async def _form(self, request: Request, ctx: Ctx) -> dict[str, str]:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/x-www-form-urlencoded":
            raise _Refused(415, "Actions take a form (application/x-www-form-urlencoded).")
        body = await _read_capped(request, MAX_FORM_BYTES)
        fields = {
            key: values[-1]
            for key, values in parse_qs(
                body.decode("utf-8", "replace"), keep_blank_values=True
            ).items()
        }
        if not hmac.compare_digest(fields.get("csrf", "").encode(), ctx.csrf.encode()):
            raise _Refused(403, "The form has expired (bad CSRF token): reload the page.")
        return fields

    # -- pages -----------------------------------------------------------------------------

    def _respond(
        self, request: Request, ctx: Ctx, heading: str, live: str, before: str = ""
    ) -> Response:
        if request.headers.get(FRAGMENT_HEADER) == "1":
            return _html(live)
        return _html(pages.layout(ctx, heading, live, before))

    async def overview_page(self, request: Request, ctx: Ctx) -> Response:
        overview = await admin.stats(self.reads, 60)
        nodes = await admin.nodes(self.reads)
        paused = await self._paused()
        live = pages.overview_live(ctx, overview, nodes, paused)
        return self._respond(request, ctx, "Overview", live)

    async def _paused(self) -> list[str]:
        """The names of the paused executors, sorted."""
        return sorted(s.name for s in await self.reads.executor_states(None) if s.paused)

    async def _list_jobs(self, params: ListParams) -> AsyncIterator[Job[Any, Any]]:
        """The jobs of a list page, read :data:`LIST_BATCH` at a time, so that at most that
        many whole jobs are in memory however large they are."""
        node = params.filters().node()
        seen: set[int] = set()
        offset, remaining = params.offset, params.limit
        while remaining > 0:
            size = min(LIST_BATCH, remaining)
            batch = await self.reads.query(node, limit=size, offset=offset, newest_first=True)
            for job in batch:
                if int(job.id) not in seen:  # a job inserted meanwhile shifts the pages by one
                    seen.add(int(job.id))
                    yield job
            if len(batch) < size:
                return
            offset += size
            remaining -= size

    async def jobs_page(self, request: Request, ctx: Ctx) -> Response:
        params = _list_params(request)
        rows = [pages.job_row(ctx, job) async for job in self._list_jobs(params)]
        live = pages.jobs_live(ctx, params, rows)
        if request.headers.get(FRAGMENT_HEADER) == "1":
            return _html(live)
        executors = sorted({executor for executor, _ in await self.reads.count_jobs()})
        return self._respond(request, ctx, "Jobs", live, pages.jobs_filters(ctx, params, executors))

    async def job_page(self, request: Request, ctx: Ctx) -> Response:
        job = await self.reads.get_job(_job_id(request))
        return self._respond(request, ctx, f"Job {int(job.id)}", pages.job_live(ctx, job))

    async def nodes_page(self, request: Request, ctx: Ctx) -> Response:
        rows = await admin.nodes(self.reads)
        return self._respond(request, ctx, "Nodes", pages.nodes_live(ctx, rows))

    async def executors_page(self, request: Request, ctx: Ctx) -> Response:
        states = await control.controls(self.reads)
        return self._respond(request, ctx, "Executors", pages.executors_live(ctx, states))

    # -- workflows -------------------------------------------------------------------------

    async def _workflow(self, request: Request) -> WorkflowGraph:
        workflow_id = str(request.path_params["workflow_id"])
        graph = await read_workflow(self.reads, workflow_id)
        if graph is None:
            raise _Refused(
                404, f"No workflow {workflow_id[:200]!r}: no stored job has this workflow id."
            )
        return graph

    async def workflow_page(self, request: Request, ctx: Ctx) -> Response:
        graph = await self._workflow(request)
        live = workflows.workflow_live(ctx, graph)
        return self._respond(request, ctx, f"Workflow {graph.workflow_id}", live)

    async def workflow_api(self, request: Request) -> Any:
        return (await self._workflow(request)).to_json()

    # -- actions ---------------------------------------------------------------------------

    def _done(self, ctx: Ctx, fields: dict[str, str], message: str) -> Response:
        target = pages.safe_next(fields.get("next"))
        joiner = "&" if "?" in target else "?"
        return RedirectResponse(
            ctx.root + target + joiner + urlencode({"flash": message}), status_code=303
        )

    async def cancel_action(self, request: Request, ctx: Ctx) -> Response:
        job_id = _job_id(request)
        fields = await self._form(request, ctx)
        if fields.get("confirmed") != "1":
            path = f"/jobs/{job_id}/cancel"
            return _html(pages.confirm_page(ctx, f"Cancel job {job_id}?", path, fields))
        reason = fields.get("reason", "").strip() or "cancelled from the dashboard"
        result = await admin.cancel_and_report(self.backend, job_id, reason[:1000])
        if result.cancelled:
            message = f"Job {job_id} cancelled."
        else:
            message = f"Job {job_id} was already {result.status}: nothing to cancel."
        return self._done(ctx, fields, message)

    async def rerun_action(self, request: Request, ctx: Ctx) -> Response:
        job_id = _job_id(request)
        fields = await self._form(request, ctx)
        if fields.get("confirmed") != "1":
            path = f"/jobs/{job_id}/rerun"
            return _html(pages.confirm_page(ctx, f"Run job {job_id} again now?", path, fields))
        try:
            job = await admin.rerun_and_read(self.backend, job_id)
        except InvalidTransition:
            return self._done(ctx, fields, f"Job {job_id} is executing: it cannot be rerun now.")
        return self._done(ctx, fields, f"Job {job_id} is {job.status} again.")

    async def retry_action(self, request: Request, ctx: Ctx) -> Response:
        fields = await self._form(request, ctx)
        params = ListParams(
            executor=fields.get("executor", ""),
            status=fields.get("status", ""),
            tag=fields.get("tag", ""),
        )
        filters = params.filters()
        if not filters.statuses:  # the form always names one; a bare POST retries nothing
            raise ConfigurationError("choose a status other than executing to retry many jobs")
        admin.check_retry(filters)
        if fields.get("confirmed") != "1":
            question = f"Run every matching {params.status} job again now?"
            return _html(pages.confirm_page(ctx, question, "/jobs/retry", fields))
        report = await admin.retry(self.backend, filters)
        message = f"{len(report.rerun)} jobs rerun."
        if report.skipped:
            message += f" {len(report.skipped)} skipped (changed meanwhile)."
        return self._done(ctx, fields, message)

    async def pause_action(self, request: Request, ctx: Ctx) -> Response:
        return await self._set_paused(request, ctx, True)

    async def resume_action(self, request: Request, ctx: Ctx) -> Response:
        return await self._set_paused(request, ctx, False)

    async def _set_paused(self, request: Request, ctx: Ctx, paused: bool) -> Response:
        fields = await self._form(request, ctx)
        name = control.check_name(fields.get("name", ""))
        verb = "pause" if paused else "resume"
        if fields.get("confirmed") != "1":
            question = f"{verb.capitalize()} {name} on every node?"
            return _html(pages.confirm_page(ctx, question, f"/executors/{verb}", fields))
        if paused:
            await control.pause(self.backend, name)
            return self._done(ctx, fields, f"{name} paused: no node starts its jobs until resumed.")
        await control.resume(self.backend, name)
        return self._done(ctx, fields, f"{name} resumed.")

    async def scale_action(self, request: Request, ctx: Ctx) -> Response:
        fields = await self._form(request, ctx)
        name = control.check_name(fields.get("name", ""))
        limit = _scale_value(fields.get("max_concurrency", ""))
        if fields.get("confirmed") != "1":
            question = f"Set the per-node limit of {name} to {_limit_text(limit)} on every node?"
            return _html(pages.confirm_page(ctx, question, "/executors/scale", fields))
        await control.scale(self.backend, name, limit)
        return self._done(ctx, fields, f"{name}: per-node limit set to {_limit_text(limit)}.")

    # -- JSON API ----------------------------------------------------------------------------

    async def overview_api(self, request: Request) -> Any:
        minutes = _int(request.query_params.get("minutes"), 60, 1, 24 * 60)
        overview = await admin.stats(self.reads, minutes)
        value = overview.to_json()
        value["nodes"] = [row.to_json() for row in await admin.nodes(self.reads)]
        value["paused_executors"] = await self._paused()
        return value

    async def jobs_api(self, request: Request) -> Any:
        params = _list_params(request)
        root = str(request.scope.get("root_path", "")).rstrip("/")
        # Each job is encoded once, and the page stops before it outgrows the budget (always
        # holding at least one job, which the summary keeps small).
        parts: list[str] = []
        # Counted in bytes (a preview's ellipsis is three), with room for the envelope.
        size = _ENVELOPE_BYTES
        truncated = False
        async for job in self._list_jobs(params):
            summary = f"{root}/api/jobs/{int(job.id)}"
            text = _views.dumps_json(_views.job_to_json(job, summary=summary))
            length = len(text.encode("utf-8", "backslashreplace"))  # as _json_text sends it
            if parts and size + length > MAX_RESPONSE_BYTES:
                truncated = True
                break
            parts.append(text)
            size += length + 2
        more = truncated or len(parts) == params.limit
        tail = {
            "limit": params.limit,
            "offset": params.offset,
            "truncated": truncated,
            "next_offset": params.offset + len(parts) if more else None,
        }
        return _json_text('{"jobs": [' + ", ".join(parts) + "], " + _views.dumps_json(tail)[1:])

    async def job_api(self, request: Request) -> Any:
        job = await self.reads.get_job(_job_id(request))
        return _views.job_to_json(job, history=True)

    async def nodes_api(self, request: Request) -> Any:
        return [row.to_json() for row in await admin.nodes(self.reads)]

    async def executors_api(self, request: Request) -> Any:
        return [_views.control_to_json(state) for state in await control.controls(self.reads)]


async def _no_icon(request: Request) -> Response:
    return Response(status_code=204)


def _job_id(request: Request) -> int:
    return admin.check_job_id(int(request.path_params["job_id"]))


def _scale_value(text: str) -> int | None:
    """The scale form's value: a whole number, or ``default`` (None: the class's own limit);
    whether the number is a valid limit is :func:`rexecutor.control.check_scale`'s rule."""
    value = text.strip()
    if value.lower() == "default":
        return None
    refusal = ConfigurationError(
        f"the per-node limit must be a whole number >= 1, or 'default' for the executor's own, "
        f"got {value[:40]!r}; to stop its jobs starting, pause it"
    )
    if not re.fullmatch(r"-?[0-9]{1,19}", value):
        raise refusal
    try:
        return control.check_scale(int(value))
    except ConfigurationError:
        raise refusal from None  # the same rule, said in the form's words (no None here)


def _limit_text(limit: int | None) -> str:
    return "the class default" if limit is None else str(limit)


def _same(offered: str, expected: str) -> bool:
    """Constant-time comparison that any offered text (non-ASCII, surrogates) can go through."""
    return hmac.compare_digest(
        offered.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


async def _read_capped(request: Request, limit: int) -> bytes:
    """The request body, read as it arrives and refused (413) as soon as it exceeds ``limit``."""
    too_large = _Refused(413, f"The form is too large (the limit is {limit} bytes).")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _refusal(exc: Exception) -> tuple[int, str, str]:
    """Status, heading and message for an error a handler raised (passwords masked)."""
    if isinstance(exc, _Refused):
        return exc.status, _reason(exc.status), mask_secrets(str(exc))
    text = mask_secrets(str(exc)) or type(exc).__name__
    if isinstance(exc, JobNotFound):
        return 404, "Not found", f"{text}."
    if isinstance(exc, InvalidTransition):
        return 409, "Conflict", text
    if isinstance(exc, BackendError):
        return 503, "Backend unavailable", f"The backend is unavailable: {text}"
    # ConfigurationError, ValidationError and the rest: the request asked for something wrong.
    return 400, "Bad request", text


def _int(text: str | None, default: int, low: int, high: int) -> int:
    try:
        value = int(text) if text else default
    except ValueError:
        return default
    return min(max(value, low), high)


def _list_params(request: Request) -> ListParams:
    query = request.query_params
    params = ListParams(
        executor=query.get("executor", "").strip(),
        status=query.get("status", "").strip().lower(),
        tag=query.get("tag", "").strip(),
        limit=_int(query.get("limit"), 50, 1, 500),
        offset=_int(query.get("offset"), 0, 0, 10**9),
    )
    params.filters()  # raises ConfigurationError for an unknown status
    return params


def _cookie_path(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/") or "/"


def _html(body: str, status: int = 200) -> Response:
    # A lone surrogate from a stored value cannot be UTF-8: it is shown as "?" instead.
    return HTMLResponse(body.encode("utf-8", "replace"), status)


def _json(value: Any, status: int = 200) -> Response:
    return _json_text(_views.dumps_json(value), status)


def _json_text(text: str, status: int = 200) -> Response:
    # backslashreplace writes a lone surrogate as a \\uXXXX escape: still valid JSON.
    return Response(text.encode("utf-8", "backslashreplace"), status, media_type="application/json")


def _secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _reason(status: int) -> str:
    return {
        401: "Access token needed",
        403: "Forbidden",
        404: "Not found",
        413: "Too large",
        415: "Unsupported form",
    }.get(status, "Refused")
