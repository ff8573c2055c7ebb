"""The dashboard against hostile requests and hostile stored values (issue 11).

DNS rebinding (Host check), request bodies capped while they are read, responses bounded in
bytes, every bad parameter a 4xx with a message, safe "go back" links, strict JSON and escaped
HTML for stored values no encoder likes (NaN, lone surrogates, huge texts).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rexecutor._views import LIST_VALUE_CHARS
from rexecutor.backend import Backend, EnqueuableJob
from rexecutor.backends import InMemoryBackend, SqliteBackend
from rexecutor.errors import ConfigurationError
from rexecutor.web import dashboard_app
from rexecutor.web.app import MAX_FORM_BYTES, MAX_RESPONSE_BYTES

LOCAL = "http://127.0.0.1:8000"


def client(app: Any, base: str = LOCAL) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses NaN and the infinities, as strict parsers do."""

    def refuse(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


@pytest.fixture
async def memory() -> AsyncIterator[InMemoryBackend]:
    backend = InMemoryBackend()
    async with backend:
        yield backend


# -- DNS rebinding -----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "localhost"])
async def test_without_a_token_loopback_host_names_are_answered(
    memory: InMemoryBackend, host: str
) -> None:
    async with client(dashboard_app(memory)) as web:
        assert (await web.get("/", headers={"Host": host})).status_code == 200
        assert (await web.get("/api/jobs", headers={"Host": host})).status_code == 200


async def test_without_a_token_a_rebound_host_name_gets_nothing(memory: InMemoryBackend) -> None:
    job_id = int((await memory.enqueue(EnqueuableJob("email", {"to": "a@example.com"}))).job_id)
    evil = "rebind.evil.example:8000"
    async with client(dashboard_app(memory), base=f"http://{evil}") as web:
        page = await web.get("/jobs")
        assert page.status_code == 400
        assert "rebind.evil.example" in page.text and "--allowed-host" in page.text
        assert 'name="csrf"' not in page.text  # no CSRF token is handed out
        api = await web.get(f"/api/jobs/{job_id}")
        assert api.status_code == 400 and "does not answer for the host name" in api.json()["error"]
        assert "a@example.com" not in api.text
        posted = await web.post(
            f"/jobs/{job_id}/rerun",
            data={"csrf": "x", "confirmed": "1"},
            headers={"Origin": f"http://{evil}"},
        )
        assert posted.status_code == 400
        assert (await web.get("/static/app.js")).status_code == 400


async def test_allowed_hosts_add_names_and_a_token_lifts_the_host_check(
    memory: InMemoryBackend,
) -> None:
    app = dashboard_app(memory, allowed_hosts=["Jobs.Example.com"])
    async with client(app, base="http://jobs.example.com:8080") as web:
        assert (await web.get("/")).status_code == 200
        assert (await web.get("/", headers={"Host": "other.example.com"})).status_code == 400
        assert (await web.get("/", headers={"Host": "localhost:1"})).status_code == 200
    with_token = dashboard_app(memory, token="s3cret")
    async with client(with_token, base="http://anything.example.com") as web:
        answer = await web.get("/", headers={"Authorization": "Bearer s3cret"})
        assert answer.status_code == 200
    with pytest.raises(ConfigurationError, match="must not be empty"):
        dashboard_app(memory, token="")
    with pytest.raises(ConfigurationError, match="list of names"):
        dashboard_app(memory, allowed_hosts="jobs.example.com")
    with pytest.raises(ConfigurationError, match="not a host name"):
        dashboard_app(memory, allowed_hosts=["https://jobs.example.com/"])


async def test_posts_from_another_origin_are_still_refused(memory: InMemoryBackend) -> None:
    job_id = int((await memory.enqueue(EnqueuableJob("email", {}))).job_id)
    async with client(dashboard_app(memory)) as web:
        csrf = csrf_of((await web.get(f"/jobs/{job_id}")).text)
        refused = await web.post(
            f"/jobs/{job_id}/cancel",
            data={"csrf": csrf, "confirmed": "1"},
            headers={"Origin": "https://evil.example"},
        )
        assert refused.status_code == 403 and "another site" in refused.text
        assert (await memory.get_job(job_id)).status.value == "scheduled"


# -- bounded memory --------------------------------------------------------------------------


async def test_a_huge_body_is_refused_before_it_is_read(memory: InMemoryBackend) -> None:
    job_id = int((await memory.enqueue(EnqueuableJob("email", {}))).job_id)
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(150):  # 150 MiB, if anyone read it all
            sent += 1
            yield b"a" * (1024 * 1024)

    async with client(dashboard_app(memory)) as web:
        await web.get("/")  # the CSRF cookie
        answer = await web.post(
            f"/jobs/{job_id}/cancel",
            content=body(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code == 413 and f"{MAX_FORM_BYTES} bytes" in answer.text
        assert sent <= 2, f"{sent} MiB were read before the refusal"
        declared = await web.post(
            f"/jobs/{job_id}/cancel",
            content=b"csrf=x",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Content-Length": str(150 * 1024 * 1024),
            },
        )
        assert declared.status_code == 413
    assert (await memory.get_job(job_id)).status.value == "scheduled"


async def test_list_responses_are_bounded_and_point_at_the_full_job(backend: Backend) -> None:
    big = "x" * 200_000
    ids = [
        int(
            (
                await backend.enqueue(
                    EnqueuableJob("report", {"blob": big, "n": i}, metadata={"m": big})
                )
            ).job_id
        )
        for i in range(12)
    ]
    async with client(dashboard_app(backend)) as web:
        answer = await web.get("/api/jobs", params={"limit": 500})
        assert answer.status_code == 200
        assert len(answer.content) < 12 * 3 * LIST_VALUE_CHARS  # not 12 x 400 KB
        listing = strict_json(answer.text)
        assert [job["id"] for job in listing["jobs"]] == sorted(ids, reverse=True)
        first = listing["jobs"][0]
        assert first["truncated"] == ["data", "metadata"]
        assert first["full"] == f"/api/jobs/{first['id']}"
        assert isinstance(first["data"], str) and '"blob": "xxx' in first["data"]
        assert "more characters" in first["data"]
        assert listing["truncated"] is False and listing["next_offset"] is None
        full = strict_json((await web.get(first["full"])).text)
        assert full["data"]["blob"] == big and "truncated" not in full
        page = await web.get("/jobs", params={"limit": 500})
        assert page.status_code == 200 and len(page.content) < 200_000


async def test_a_list_that_would_outgrow_the_byte_budget_ends_early(
    memory: InMemoryBackend,
) -> None:
    # Each summary holds two previews of LIST_VALUE_CHARS: enough jobs to pass the budget.
    count = MAX_RESPONSE_BYTES // (2 * LIST_VALUE_CHARS) + 20
    filler = "y" * (LIST_VALUE_CHARS * 2)
    await memory.enqueue_many(
        [EnqueuableJob("report", {"f": filler}, metadata={"f": filler}) for _ in range(count)]
    )
    async with client(dashboard_app(memory)) as web:
        answer = await web.get("/api/jobs", params={"limit": 500})
        listing = strict_json(answer.text)
        assert len(answer.content) <= MAX_RESPONSE_BYTES
        assert listing["truncated"] is True and 0 < len(listing["jobs"]) < count
        assert listing["next_offset"] == len(listing["jobs"])
        params = {"limit": 500, "offset": listing["next_offset"]}
        rest = strict_json((await web.get("/api/jobs", params=params)).text)
        assert rest["jobs"][0]["id"] == listing["jobs"][-1]["id"] - 1


# -- bad parameters ----------------------------------------------------------------------------


async def test_odd_tokens_are_refused_with_401_not_500(memory: InMemoryBackend) -> None:
    async with client(dashboard_app(memory, token="s3cret")) as web:
        for path in ("/?token=%C3%A9t%C3%A9", "/api/jobs?token=%ED%A0%80", "/?token="):
            assert (await web.get(path)).status_code == 401, path
        cookie = await web.get("/", headers={"Cookie": "rexecutor_token=été".encode()})
        assert cookie.status_code == 401
        bearer = await web.get("/api/jobs", headers={"Authorization": "Bearer é".encode()})
        assert bearer.status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/jobs/99999999999999999999999",
        "/api/jobs/99999999999999999999999",
        "/jobs/9223372036854775808",
        "/jobs/0",
    ],
)
async def test_job_ids_no_backend_can_hold_are_not_found(backend: Backend, path: str) -> None:
    async with client(dashboard_app(backend)) as web:
        answer = await web.get(path)
        assert answer.status_code == 404 and "not found" in answer.text


async def test_actions_on_a_huge_job_id_are_not_found(memory: InMemoryBackend) -> None:
    job_id = int((await memory.enqueue(EnqueuableJob("email", {}))).job_id)
    async with client(dashboard_app(memory)) as web:
        csrf = csrf_of((await web.get(f"/jobs/{job_id}")).text)
        for action in ("cancel", "rerun"):
            answer = await web.post(
                f"/jobs/99999999999999999999999/{action}", data={"csrf": csrf, "confirmed": "1"}
            )
            assert answer.status_code == 404 and "not found" in answer.text


@pytest.mark.parametrize(
    "query",
    [
        "executor=%00",
        "tag=%00",
        "executor=%ED%A0%80",
        "tag=%FF%FE",
        "status=finished",
        "limit=lots&offset=-5",
        "limit=99999999999999999999999&offset=99999999999999999999999",
        "tag=" + ",".join(f"t{i}" for i in range(50)),
    ],
)
async def test_bad_list_parameters_are_4xx_with_a_message_never_500(
    backend: Backend, query: str
) -> None:
    async with client(dashboard_app(backend)) as web:
        for path in ("/jobs", "/api/jobs"):
            answer = await web.get(f"{path}?{query}")
            assert answer.status_code in (200, 400), (path, answer.status_code, answer.text[:300])
            if answer.status_code == 400:
                assert "Bad request" in answer.text or answer.json()["error"]


@pytest.mark.parametrize(
    "hostile",
    [
        "javascript:alert(1)",
        "//evil.example/x",
        "https://evil.example/",
        "/\t/evil.example",
        "\\\\evil.example",
        " /jobs",
        "/jobs\\..\\x",
    ],
)
async def test_the_go_back_link_only_takes_paths_inside_the_app(
    memory: InMemoryBackend, hostile: str
) -> None:
    job_id = int((await memory.enqueue(EnqueuableJob("email", {}))).job_id)
    async with client(dashboard_app(memory)) as web:
        csrf = csrf_of((await web.get(f"/jobs/{job_id}")).text)
        page = await web.post(f"/jobs/{job_id}/cancel", data={"csrf": csrf, "next": hostile})
        assert page.status_code == 200 and "Please confirm" in page.text
        assert re.search(r'<a href="([^"]*)">No, go back</a>', page.text)[1] == "/"  # type: ignore[index]
        done = await web.post(
            f"/jobs/{job_id}/rerun", data={"csrf": csrf, "next": hostile, "confirmed": "1"}
        )
        assert done.status_code == 303 and done.headers["location"].startswith("/?flash=")
        kept = await web.post(
            f"/jobs/{job_id}/cancel", data={"csrf": csrf, "next": "/jobs?status=scheduled"}
        )
        link = re.search(r'<a href="([^"]*)">No, go back</a>', kept.text)
        assert link and link[1] == "/jobs?status=scheduled"


# -- hostile stored values ---------------------------------------------------------------------


def _poison_sqlite(path: Path, job_id: int) -> None:
    """Write into a stored row what old versions could store: NaN, a lone surrogate, a huge
    text, odd unicode, markup."""
    huge = "z" * 3_000_000
    conn = sqlite3.connect(path)
    try:
        conn.execute(
            "UPDATE jobs SET data = ?, metadata = ?, errors = ? WHERE id = ?",
            (
                '{"x": NaN, "y": Infinity, "s": "\\ud800", "h": "<script>alert(1)</script>"}',
                json.dumps({"huge": huge, "rtl": "\u202e\u0000end"}),
                json.dumps(
                    [
                        {
                            "attempt": 1,
                            "type": "exception",
                            "name": "Boom<b>",
                            "details": "\ud800 <img src=x onerror=alert(1)> " + huge,
                            "at": "2026-01-01T00:00:00+00:00",
                            "traceback": huge,
                        }
                    ]
                ),
                job_id,
            ),
        )
        conn.commit()
    finally:
        conn.close()


async def test_pages_and_api_render_hostile_stored_values(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path) as backend:
        job_id = int(
            (await backend.enqueue(EnqueuableJob("email", {"to": "a@example.com"}))).job_id
        )
    _poison_sqlite(path, job_id)
    async with SqliteBackend(path) as backend, client(dashboard_app(backend)) as web:
        for url in ("/", "/jobs", f"/jobs/{job_id}"):
            page = await web.get(url)
            assert page.status_code == 200, (url, page.text[:500])
            assert "<script>alert" not in page.text and "<img src=x" not in page.text
            assert len(page.content) < 1_000_000, url
        listing = strict_json((await web.get("/api/jobs")).text)
        [summary] = listing["jobs"]
        assert summary["id"] == job_id and "metadata" in summary["truncated"]
        full = strict_json((await web.get(f"/api/jobs/{job_id}")).text)
        # Not JSON (NaN is not a JSON value), so the backend hands the stored text over as it is.
        assert full["data"].startswith('{"x": NaN, "y": Infinity, "s": "\\ud800"')
        assert full["data"].endswith('"h": "<script>alert(1)</script>"}')


async def test_a_job_page_shows_only_the_last_errors(tmp_path: Path) -> None:
    from rexecutor.web.pages import PAGE_ERRORS

    path = tmp_path / "jobs.db"
    async with SqliteBackend(path) as backend:
        job_id = int((await backend.enqueue(EnqueuableJob("email", {}))).job_id)
    errors = [
        {
            "attempt": n,
            "type": "exception",
            "details": f"failure number {n}",
            "name": "Boom",
            "at": "2026-01-01T00:00:00+00:00",
            "traceback": None,
        }
        for n in range(1, 31)
    ]
    conn = sqlite3.connect(path)
    conn.execute("UPDATE jobs SET errors = ? WHERE id = ?", (json.dumps(errors), job_id))
    conn.commit()
    conn.close()
    async with SqliteBackend(path) as backend, client(dashboard_app(backend)) as web:
        page = (await web.get(f"/jobs/{job_id}")).text
        assert page.count('<li class="error">') == PAGE_ERRORS
        assert f"{30 - PAGE_ERRORS} earlier errors are not shown" in page
        assert "<code>failure number 30</code>" in page
        assert "<code>failure number 1</code>" not in page
        full = strict_json((await web.get(f"/api/jobs/{job_id}")).text)
        assert len(full["errors"]) == 30
        [summary] = strict_json((await web.get("/api/jobs")).text)["jobs"]
        assert [e["attempt"] for e in summary["errors"]] == [28, 29, 30]
        assert "errors" in summary["truncated"]
