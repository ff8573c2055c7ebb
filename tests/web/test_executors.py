"""The dashboard's Executors page on every backend: the facts, Pause / Resume / Scale and their
protection (CSRF, Origin, confirmation, read-only), and the paused state on the overview."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from rexecutor import RateLimit, control
from rexecutor.backend import Backend
from rexecutor.limits import ClaimLimits
from rexecutor.web import dashboard_app
from tests.cli.seed import Seeded, seed
from tests.web.test_dashboard import FRAGMENT, client, csrf_of

LIMITS = ClaimLimits(
    global_max=8, partition_max=2, rate=RateLimit(allowed=100, period=timedelta(minutes=1))
)


@pytest.fixture
async def seeded(backend: Backend) -> Seeded:
    ids = await seed(backend)
    await backend.declare_limits("email", LIMITS)  # as a starting node's code would
    return ids


@pytest.fixture
async def web(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    async with client(dashboard_app(backend, refresh_seconds=1)) as c:
        yield c


def row_of(html: str, name: str) -> str:
    match = re.search(rf'<tr data-executor="{re.escape(name)}".*?</tr>', html, re.S)
    assert match, f"no row for {name}"
    return match.group(0)


def cells(row: str) -> list[str]:
    """The text of each cell of a row, tags removed."""
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
    ]


async def token_of(web: httpx.AsyncClient) -> str:
    return csrf_of((await web.get("/executors")).text)


async def test_the_page_shows_limits_counts_and_headroom(
    web: httpx.AsyncClient, backend: Backend, seeded: Seeded
) -> None:
    await control.scale(backend, "report", 3)
    page = await web.get("/executors")
    assert page.status_code == 200
    assert '<a href="/executors" aria-current=page>Executors</a>' in page.text
    # name, state, per node, global, per partition, rate limit, headroom,
    # scheduled (with retryable), executing, failed (discarded), then the actions
    email = cells(row_of(page.text, "email"))
    assert email[:10] == [
        "email",
        "running",
        "class default",
        "8",
        "2",
        "100 per 1m",
        "100",
        "2",
        "1",
        "2",
    ]
    report = cells(row_of(page.text, "report"))
    assert report[:10] == ["report", "running", "3 scaled", "-", "-", "-", "-", "1", "0", "0"]
    assert 'value="3"' in row_of(page.text, "report")  # the scale field holds the current limit
    assert 'value="default"' in row_of(page.text, "email")
    fragment = await web.get("/executors", headers=FRAGMENT)
    assert fragment.text.startswith('<table class="grid executors"')
    api = (await web.get("/api/executors")).json()
    assert [e["name"] for e in api] == ["email", "report"]
    assert api[0] == {
        "name": "email",
        "paused": False,
        "max_concurrency": None,
        "scaled": False,
        "global_max_concurrency": 8,
        "partition_max_concurrency": 2,
        "rate_limit": {"allowed": 100, "period_seconds": 60.0, "per_partition": False},
        "started_in_window": 0,
        "rate_headroom": 100,
        "scheduled": 2,
        "executing": 1,
        "failed": 2,
    }
    assert api[1]["max_concurrency"] == 3 and api[1]["scaled"] is True


async def test_pause_and_resume_need_confirmation_and_are_stored(
    web: httpx.AsyncClient, backend: Backend, seeded: Seeded
) -> None:
    token = await token_of(web)
    ask = await web.post(
        "/executors/pause", data={"csrf": token, "name": "email", "next": "/executors"}
    )
    assert ask.status_code == 200 and "Pause email on every node?" in ask.text
    assert 'name="confirmed" value="1"' in ask.text and 'name="name" value="email"' in ask.text
    assert not (await control.control(backend, "email")).paused
    done = await web.post(
        "/executors/pause",
        data={"csrf": token, "name": "email", "next": "/executors", "confirmed": "1"},
        headers={"Origin": "http://127.0.0.1:8000"},
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/executors?flash=")
    assert (await control.control(backend, "email")).paused
    shown = (await web.get(done.headers["location"])).text
    assert "email paused" in shown
    row = row_of(shown, "email")
    assert 'data-paused="true"' in row and ">Resume</button>" in row and ">Pause<" not in row
    # The overview says so, in its live part, and the JSON API too.
    overview = (await web.get("/", headers=FRAGMENT)).text
    assert 'id="paused-executors"' in overview and "<strong>email</strong>" in overview
    assert '</a> <span class="badge paused">paused</span></th>' in overview
    assert (await web.get("/api/overview")).json()["paused_executors"] == ["email"]
    assert (await web.get("/api/executors")).json()[0]["paused"] is True

    resumed = await web.post(
        "/executors/resume",
        data={"csrf": token, "name": "email", "next": "/executors", "confirmed": "1"},
    )
    assert resumed.status_code == 303 and "email+resumed" in resumed.headers["location"]
    assert not (await control.control(backend, "email")).paused
    assert "paused-executors" not in (await web.get("/")).text
    assert (await web.get("/api/overview")).json()["paused_executors"] == []


async def test_a_name_no_node_knows_can_be_paused(
    web: httpx.AsyncClient, backend: Backend, seeded: Seeded
) -> None:
    token = await token_of(web)
    done = await web.post(
        "/executors/pause", data={"csrf": token, "name": "later", "confirmed": "1"}
    )
    assert done.status_code == 303
    assert (await control.control(backend, "later")).paused
    assert 'data-paused="true"' in row_of((await web.get("/executors")).text, "later")
    for bad in ("", "a\x00b", "x" * 1001):
        refused = await web.post(
            "/executors/pause", data={"csrf": token, "name": bad, "confirmed": "1"}
        )
        assert refused.status_code == 400 and "executor name" in refused.text
    assert [s.name for s in await backend.executor_states(None)] == ["email", "later"]


async def test_scale_to_a_number_and_back_to_the_default(
    web: httpx.AsyncClient, backend: Backend, seeded: Seeded
) -> None:
    token = await token_of(web)
    ask = await web.post(
        "/executors/scale", data={"csrf": token, "name": "email", "max_concurrency": " 5 "}
    )
    assert ask.status_code == 200
    assert "Set the per-node limit of email to 5 on every node?" in ask.text
    assert (await control.control(backend, "email")).max_concurrency is None
    done = await web.post(
        "/executors/scale",
        data={"csrf": token, "name": "email", "max_concurrency": "5", "confirmed": "1"},
    )
    assert done.status_code == 303 and "limit+set+to+5" in done.headers["location"]
    state = await control.control(backend, "email")
    assert state.max_concurrency == 5 and state.scaled
    assert "5 scaled" in cells(row_of((await web.get("/executors")).text, "email"))
    back = await web.post(
        "/executors/scale",
        data={"csrf": token, "name": "email", "max_concurrency": "Default", "confirmed": "1"},
    )
    assert back.status_code == 303 and "the+class+default" in back.headers["location"]
    state = await control.control(backend, "email")
    assert state.max_concurrency is None and not state.scaled


@pytest.mark.parametrize(
    "value", ["0", "-3", "1.5", "five", "", "  ", "5 6", "١٢", "0x10", "1" * 30]
)
async def test_a_bad_scale_value_is_a_clear_400_and_changes_nothing(
    web: httpx.AsyncClient, backend: Backend, seeded: Seeded, value: str
) -> None:
    await control.scale(backend, "email", 4)
    token = await token_of(web)
    for confirmed in ("", "1"):  # refused before the confirmation is even asked for
        refused = await web.post(
            "/executors/scale",
            data={"csrf": token, "name": "email", "max_concurrency": value, "confirmed": confirmed},
        )
        assert refused.status_code == 400, refused.text
        assert "Bad request" in refused.text
        assert "must be a whole number &gt;= 1, or &#x27;default&#x27;" in refused.text
    assert (await control.control(backend, "email")).max_concurrency == 4


@pytest.mark.parametrize("action", ["pause", "resume", "scale"])
async def test_actions_refuse_missing_or_forged_csrf_and_other_sites(
    web: httpx.AsyncClient, backend: Backend, seeded: Seeded, action: str
) -> None:
    await control.pause(backend, "report")  # so a resume would change something
    token = await token_of(web)
    form = {"name": "report", "max_concurrency": "7", "confirmed": "1"}
    assert (await web.get(f"/executors/{action}")).status_code == 405
    missing = await web.post(f"/executors/{action}", data=form)
    assert missing.status_code == 403 and "CSRF" in missing.text
    forged = await web.post(f"/executors/{action}", data={**form, "csrf": "0" * 64})
    assert forged.status_code == 403
    cross_site = await web.post(
        f"/executors/{action}",
        data={**form, "csrf": token},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403 and "another site" in cross_site.text
    async with client(dashboard_app(backend)) as stranger:  # a token from another browser
        await stranger.get("/executors")
        stolen = await stranger.post(f"/executors/{action}", data={**form, "csrf": token})
        assert stolen.status_code == 403
    state = await control.control(backend, "report")
    assert state.paused and state.max_concurrency is None


async def test_read_only_mode_hides_and_refuses_the_controls(
    backend: Backend, seeded: Seeded
) -> None:
    async with client(dashboard_app(backend, read_only=True)) as web:
        page = await web.get("/executors")
        assert page.status_code == 200 and "read-only" in page.text
        assert '<form method="post"' not in page.text and "<th>actions</th>" not in page.text
        assert cells(row_of(page.text, "email"))[1] == "running"
        for action in ("pause", "resume", "scale"):
            refused = await web.post(
                f"/executors/{action}",
                data={"csrf": "x", "name": "email", "max_concurrency": "2", "confirmed": "1"},
            )
            assert refused.status_code == 403 and "read-only" in refused.text
    state = await control.control(backend, "email")
    assert not state.paused and not state.scaled


async def test_the_page_with_no_executors(web: httpx.AsyncClient) -> None:
    page = await web.get("/executors")
    assert page.status_code == 200 and "No executor has jobs or stored state yet." in page.text
    assert (await web.get("/api/executors")).json() == []
    assert (await web.get("/api/overview")).json()["paused_executors"] == []


async def test_hostile_names_are_escaped_everywhere(
    web: httpx.AsyncClient, backend: Backend, seeded: Seeded
) -> None:
    name = '<script>alert(1)</script>" onmouseover="x'
    await control.pause(backend, name)
    for url in ("/", "/executors"):
        page = await web.get(url)
        assert page.status_code == 200
        assert "<script>alert" not in page.text and '" onmouseover="x' not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot; onmouseover=&quot;x" in page.text
    token = await token_of(web)
    ask = await web.post("/executors/resume", data={"csrf": token, "name": name})
    assert ask.status_code == 200 and "<script>alert" not in ask.text
    done = await web.post("/executors/resume", data={"csrf": token, "name": name, "confirmed": "1"})
    assert done.status_code == 303 and not (await control.control(backend, name)).paused
    assert name in [e["name"] for e in (await web.get("/api/executors")).json()]


async def test_actions_take_only_a_form(web: httpx.AsyncClient, seeded: Seeded) -> None:
    await token_of(web)  # the CSRF cookie
    sent = await web.post("/executors/pause", json={"name": "email", "confirmed": "1"})
    assert sent.status_code == 415


async def test_mounted_inside_a_host_application(backend: Backend, seeded: Seeded) -> None:
    host = Starlette(routes=[Mount("/ops/queue", app=dashboard_app(backend))])
    async with client(host) as web:
        page = await web.get("/ops/queue/executors")
        assert 'action="/ops/queue/executors/pause"' in page.text
        assert 'href="/ops/queue/executors" aria-current=page' in page.text
        done = await web.post(
            "/ops/queue/executors/pause",
            data={
                "csrf": csrf_of(page.text),
                "name": "email",
                "confirmed": "1",
                "next": "/executors",
            },
        )
        assert done.headers["location"].startswith("/ops/queue/executors?flash=")
        overview = (await web.get("/ops/queue/")).text
        assert 'href="/ops/queue/executors">(executors)</a>' in overview
    assert (await control.control(backend, "email")).paused
