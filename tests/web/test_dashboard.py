"""The dashboard over HTTP, on every backend: pages, JSON API, actions and their protection."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount

from rexecutor import JobStatus
from rexecutor.backend import Backend
from rexecutor.errors import ConfigurationError
from rexecutor.web import dashboard_app
from tests.cli.seed import RESULT, Seeded, seed
from tests.support.backends import WITH_PGBOUNCER, open_backend

FRAGMENT = {"X-Rexecutor-Fragment": "1"}


def client(app: Any, base: str = "http://127.0.0.1:8000") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)


@pytest.fixture(params=WITH_PGBOUNCER)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Every backend, PostgreSQL through PgBouncer included: the dashboard works through it."""
    async with open_backend(request, tmp_path) as b:
        yield b


@pytest.fixture
async def seeded(backend: Backend) -> Seeded:
    return await seed(backend)


@pytest.fixture
async def web(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    async with client(dashboard_app(backend, refresh_seconds=1)) as c:
        yield c


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


async def test_overview_shows_counts_by_status_and_executor_and_charts(
    web: httpx.AsyncClient, seeded: Seeded
) -> None:
    page = await web.get("/")
    assert page.status_code == 200
    html = page.text
    assert '<span class="count" data-status="discarded">2</span>' in html
    assert '<span class="count" data-status="scheduled">2</span>' in html
    assert 'href="/jobs?executor=email"' in html and ">report</a>" in html
    assert html.count('<svg class="chart"') == 2
    assert "1 alive" in html
    assert 'src="/static/app.js"' in html and "<script>" not in html  # no inline script
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    fragment = await web.get("/", headers=FRAGMENT)
    assert fragment.text.startswith('<section class="cards"') and "<html" not in fragment.text
    js = await web.get("/static/app.js")
    assert (
        js.headers["content-type"].startswith("text/javascript")
        and "X-Rexecutor-Fragment" in js.text
    )
    assert (await web.get("/static/app.css")).headers["content-type"].startswith("text/css")


async def test_job_list_filters_and_pages(web: httpx.AsyncClient, seeded: Seeded) -> None:
    html = (await web.get("/jobs")).text
    rows = re.findall(r'data-job-id="(\d+)"', html)
    assert [int(r) for r in rows] == sorted((int(r) for r in rows), reverse=True) and len(rows) == 8
    discarded = (await web.get("/jobs", params={"status": "discarded", "executor": "email"})).text
    assert sorted(int(r) for r in re.findall(r'data-job-id="(\d+)"', discarded)) == sorted(
        [seeded.discarded, seeded.discarded_other]
    )
    assert "Retry all matching (discarded)" in discarded
    tagged = (await web.get("/jobs", params={"tag": "signup, vip"}, headers=FRAGMENT)).text
    assert re.findall(r'data-job-id="(\d+)"', tagged) == [str(seeded.scheduled)]
    page = (await web.get("/jobs", params={"limit": 3, "offset": 3})).text
    assert len(re.findall(r'data-job-id="(\d+)"', page)) == 3
    assert "offset=6" in page and "← newer" in page
    bad = await web.get("/jobs", params={"status": "lost"})
    assert bad.status_code == 400 and "unknown status &#x27;lost&#x27;" in bad.text


async def test_job_page_shows_data_errors_tracebacks_and_history(
    web: httpx.AsyncClient, seeded: Seeded
) -> None:
    html = (await web.get(f"/jobs/{seeded.retryable}")).text
    assert "dee@example.com" in html and "&quot;campaign&quot;: 7" in html
    assert "ConnectionRefusedError" in html and "File &quot;app/mail.py&quot;, line 12" in html
    assert "<strong>inserted</strong>" in html and "<strong>retry due</strong>" in html
    assert "Cancel job" in html and "Run again now" in html
    executing = (await web.get(f"/jobs/{seeded.executing}")).text
    assert "Cancel job" in executing and "Run again now" not in executing
    # Job data is escaped, never markup.
    scheduled = (await web.get(f"/jobs/{seeded.scheduled}")).text
    assert "<b>hi</b>" not in scheduled and "&lt;b&gt;hi&lt;/b&gt;" in scheduled
    missing = await web.get("/jobs/99999")
    assert missing.status_code == 404 and "job 99999 not found" in missing.text


async def test_job_page_and_api_show_a_stored_result(
    web: httpx.AsyncClient, seeded: Seeded
) -> None:
    html = (await web.get(f"/jobs/{seeded.complete}")).text
    assert "<h2>Result</h2>" in html
    # Escaped like the data: never markup.
    assert "&quot;message_id&quot;: &quot;&lt;m-1@example.com&gt;&quot;" in html
    assert "<h2>Result</h2>" not in (await web.get(f"/jobs/{seeded.retryable}")).text
    job = (await web.get(f"/api/jobs/{seeded.complete}")).json()
    assert job["result"] == RESULT
    listed = (await web.get("/api/jobs", params={"status": "complete"})).json()
    assert [j["result"] for j in listed["jobs"]] == [RESULT]


async def test_nodes_page_and_json_api(web: httpx.AsyncClient, seeded: Seeded) -> None:
    nodes = (await web.get("/nodes")).text
    assert "node-a" in nodes and "worker-1" in nodes and "alive" in nodes
    overview = (await web.get("/api/overview", params={"minutes": 5})).json()
    assert overview["by_executor"]["email"]["discarded"] == 2 and len(overview["throughput"]) == 5
    assert overview["nodes"][0]["node_id"] == "node-a"
    listed = (await web.get("/api/jobs", params={"status": "retryable"})).json()
    assert [j["id"] for j in listed["jobs"]] == [seeded.retryable]
    job = (await web.get(f"/api/jobs/{seeded.discarded}")).json()
    assert job["errors"][0]["traceback"].startswith("Traceback") and job["history"]
    assert (await web.get("/api/jobs/99999")).status_code == 404
    assert (await web.get("/api/nodes")).json()[0]["alive"] is True


async def test_cancel_needs_post_csrf_and_confirmation(
    web: httpx.AsyncClient, backend: Backend, seeded: Seeded
) -> None:
    job_id = seeded.scheduled
    page = await web.get(f"/jobs/{job_id}")
    token = csrf_of(page.text)
    assert (await web.get(f"/jobs/{job_id}/cancel")).status_code == 405
    # No CSRF token, or a wrong one: refused, nothing changes.
    refused = await web.post(f"/jobs/{job_id}/cancel", data={"confirmed": "1"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    forged = await web.post(f"/jobs/{job_id}/cancel", data={"csrf": "0" * 64, "confirmed": "1"})
    assert forged.status_code == 403
    cross_site = await web.post(
        f"/jobs/{job_id}/cancel",
        data={"csrf": token, "confirmed": "1"},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403 and "another site" in cross_site.text
    # Without confirmation: a confirmation page, nothing changes.
    ask = await web.post(f"/jobs/{job_id}/cancel", data={"csrf": token, "next": f"/jobs/{job_id}"})
    assert ask.status_code == 200 and f"Cancel job {job_id}?" in ask.text
    assert 'name="confirmed" value="1"' in ask.text
    assert (await backend.get_job(job_id)).status is JobStatus.SCHEDULED
    done = await web.post(
        f"/jobs/{job_id}/cancel",
        data={"csrf": token, "confirmed": "1", "reason": "duplicate", "next": f"/jobs/{job_id}"},
        headers={"Origin": "http://127.0.0.1:8000"},
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith(f"/jobs/{job_id}?flash=Job+{job_id}+cancelled")
    job = await backend.get_job(job_id)
    assert job.status is JobStatus.CANCELLED and job.errors[-1].details == "duplicate"
    shown = await web.get(done.headers["location"])
    assert f"Job {job_id} cancelled." in shown.text
    again = await web.post(
        f"/jobs/{job_id}/cancel", data={"csrf": token, "confirmed": "1", "next": "//evil.example"}
    )
    assert again.headers["location"].startswith("/?flash=")  # off-site targets are dropped
    assert "already+cancelled" in again.headers["location"]


async def test_a_browser_without_the_cookie_gets_one_and_a_matching_token(
    backend: Backend, seeded: Seeded
) -> None:
    app = dashboard_app(backend)
    async with client(app) as first, client(app) as second:
        token = csrf_of((await first.get(f"/jobs/{seeded.scheduled}")).text)
        await second.get("/")  # its own cookie
        stolen = await second.post(
            f"/jobs/{seeded.scheduled}/cancel", data={"csrf": token, "confirmed": "1"}
        )
        assert stolen.status_code == 403
    async with client(app) as fresh:
        # A POST with no cookie at all is refused (the token cannot match).
        no_cookie = await fresh.post(
            f"/jobs/{seeded.scheduled}/cancel", data={"csrf": token, "confirmed": "1"}
        )
        assert no_cookie.status_code == 403
    assert (await backend.get_job(seeded.scheduled)).status is JobStatus.SCHEDULED


async def test_rerun_and_retry_many(
    web: httpx.AsyncClient, backend: Backend, seeded: Seeded
) -> None:
    token = csrf_of((await web.get(f"/jobs/{seeded.discarded}")).text)
    rerun = await web.post(
        f"/jobs/{seeded.discarded}/rerun", data={"csrf": token, "confirmed": "1"}
    )
    assert rerun.status_code == 303
    assert (await backend.get_job(seeded.discarded)).status in JobStatus.READY
    busy = await web.post(f"/jobs/{seeded.executing}/rerun", data={"csrf": token, "confirmed": "1"})
    assert "is+executing" in busy.headers["location"]
    listing = (await web.get("/jobs", params={"status": "cancelled"})).text
    assert "Retry all matching (cancelled)" in listing
    retried = await web.post(
        "/jobs/retry",
        data={
            "csrf": token,
            "confirmed": "1",
            "status": "discarded",
            "next": "/jobs?status=discarded",
        },
    )
    assert retried.status_code == 303 and "1+jobs+rerun" in retried.headers["location"]
    assert retried.headers["location"].startswith("/jobs?status=discarded&flash=")
    assert (await backend.get_job(seeded.discarded_other)).status in JobStatus.READY
    refused = await web.post(
        "/jobs/retry", data={"csrf": token, "confirmed": "1", "status": "executing"}
    )
    assert refused.status_code == 400


async def test_read_only_mode_hides_and_refuses_actions(backend: Backend, seeded: Seeded) -> None:
    async with client(dashboard_app(backend, read_only=True)) as web:
        page = await web.get(f"/jobs/{seeded.scheduled}")
        assert (
            "read-only" in page.text
            and "Cancel job" not in page.text
            and '<form method="post"' not in page.text
        )
        listing = (await web.get("/jobs", params={"status": "discarded"})).text
        assert "Retry all matching" not in listing
        refused = await web.post(
            f"/jobs/{seeded.scheduled}/cancel", data={"csrf": "x", "confirmed": "1"}
        )
        assert refused.status_code == 403 and "read-only" in refused.text
    assert (await backend.get_job(seeded.scheduled)).status is JobStatus.SCHEDULED


async def test_access_token(backend: Backend, seeded: Seeded) -> None:
    app = dashboard_app(backend, token="s3cret")
    async with client(app) as web:
        denied = await web.get("/")
        assert denied.status_code == 401 and "?token=TOKEN" in denied.text
        assert (await web.get("/api/jobs")).status_code == 401
        assert (await web.get("/static/app.js")).status_code == 401
        assert (await web.get("/?token=wrong")).status_code == 401
        login = await web.get("/jobs?status=discarded&token=s3cret")
        assert login.status_code == 303 and login.headers["location"] == "/jobs?status=discarded"
        assert "s3cret" not in login.headers["set-cookie"]
        assert (await web.get("/jobs")).status_code == 200  # the cookie carries on
    async with client(app) as api:
        bearer = await api.get("/api/jobs", headers={"Authorization": "Bearer s3cret"})
        assert bearer.status_code == 200
        wrong = await api.get("/api/jobs", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    with pytest.raises(ConfigurationError):
        dashboard_app(backend, token="")


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_auth_hook_of_the_host_application(
    backend: Backend, seeded: Seeded, kind: str
) -> None:
    def allowed(request: Request) -> bool:
        return request.headers.get("x-user") == "admin"

    async def allowed_async(request: Request) -> bool:
        return allowed(request)

    hook: Callable[[Request], Any] = allowed if kind == "sync" else allowed_async
    async with client(dashboard_app(backend, auth=hook)) as web:
        assert (await web.get("/")).status_code == 403
        assert (await web.get("/api/nodes")).status_code == 403
        assert (await web.get("/", headers={"x-user": "admin"})).status_code == 200


async def test_mounted_inside_a_host_application(backend: Backend, seeded: Seeded) -> None:
    host = Starlette(routes=[Mount("/ops/queue", app=dashboard_app(backend))])
    async with client(host) as web:
        page = await web.get(f"/ops/queue/jobs/{seeded.scheduled}")
        assert page.status_code == 200
        assert 'href="/ops/queue/static/app.css"' in page.text
        assert f'action="/ops/queue/jobs/{seeded.scheduled}/cancel"' in page.text
        assert "Path=/ops/queue" in page.headers["set-cookie"]
        done = await web.post(
            f"/ops/queue/jobs/{seeded.scheduled}/cancel",
            data={
                "csrf": csrf_of(page.text),
                "confirmed": "1",
                "next": f"/jobs/{seeded.scheduled}",
            },
        )
        assert done.status_code == 303
        assert done.headers["location"].startswith(f"/ops/queue/jobs/{seeded.scheduled}?flash=")
        overview = (await web.get("/ops/queue/")).text
        assert 'href="/ops/queue/jobs?status=cancelled"' in overview
    assert (await backend.get_job(seeded.scheduled)).status is JobStatus.CANCELLED
