"""Checks of what the outside world sees of a job: the dashboard's pages and API, and the
command line's output, each held to a strict standard (no 5xx, well-formed HTML, standard
JSON). Shared by the hostile-input suite and the worker-process poison test."""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from rexecutor import Backend
from rexecutor.backends import ENV_VAR
from rexecutor.cli import main
from rexecutor.web import dashboard_app
from tests.hostile.values import bad_text

TOKEN = "hostile-suite-token"


def _no_constant(name: str) -> Any:
    raise AssertionError(f"non-standard JSON constant {name} in the output")


def strict_json(text: str) -> Any:
    """Parse ``text`` as standard JSON: no NaN/Infinity, no lone surrogates (RFC 8259 I-JSON)."""
    value = json.loads(text, parse_constant=_no_constant)
    assert not bad_text(_all_text(value)), "lone surrogate in the JSON output"
    return value


def _all_text(value: Any) -> str:
    parts: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            parts.extend(str(k) for k in item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            parts.append(item)
    # NUL is legal in JSON strings (as \u0000); only surrogates make a text unusable.
    return "".join(parts).replace("\x00", "")


_VOID = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
    "track", "wbr", "path", "rect", "circle", "line", "polyline", "polygon", "stop", "use",
}  # fmt: skip


class _Balance(HTMLParser):
    """Every element that is opened is closed, in order (the pages write all end tags)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        return None

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1:]!r}")
            if tag in self.open:
                del self.open[len(self.open) - 1 - self.open[::-1].index(tag) :]
            return
        self.open.pop()


def check_html(text: str, *, full: bool) -> None:
    """``text`` is a well-formed page (or, for a fragment, well-formed markup)."""
    assert not bad_text(text), "NUL or lone surrogate in the page"
    if full:
        assert re.match(r"\s*<!doctype html>", text, re.IGNORECASE), text[:200]
    parser = _Balance()
    parser.feed(text)
    parser.close()
    assert not parser.problems, parser.problems[:5]
    assert not parser.open, f"unclosed elements {parser.open[-5:]}"


def dashboard(backend: Backend) -> httpx.AsyncClient:
    """A client of the dashboard on ``backend``, on a loopback Host and with its token."""
    app = dashboard_app(backend, token=TOKEN, refresh_seconds=0)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://127.0.0.1:8787",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


async def check_page(web: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response:
    """GET a page: never a 5xx; HTML well formed, API output strict JSON."""
    response = await web.get(path, params=params or None)
    status = response.status_code
    assert status < 500, f"{path} {params}: {status} {response.text[:2000]}"
    assert status == 200 or 400 <= status < 500, (path, status)
    content_type = response.headers.get("content-type", "")
    body = response.content.decode("utf-8")  # strict: invalid UTF-8 would be a broken page
    if content_type.startswith("application/json"):
        strict_json(body)
    elif content_type.startswith("text/html"):
        check_html(body, full=True)
    else:
        raise AssertionError(f"{path}: unexpected content type {content_type!r}")
    return response


async def check_pages(web: httpx.AsyncClient, job_id: int) -> None:
    """Every page that shows this job (and the lists that hold it) renders."""
    job_id = int(job_id)  # a JobId formats as "JobId(7)"
    for path in ("/", "/jobs", f"/jobs/{job_id}"):
        response = await check_page(web, path)
        assert response.status_code == 200, f"{path}: {response.status_code}"
    for path in ("/api/jobs", f"/api/jobs/{job_id}"):
        # An API answer too large to send whole may be refused as such (responses are bounded
        # in bytes); the pages above must show the job either way.
        response = await check_page(web, path)
        assert response.status_code in (200, 413), f"{path}: {response.status_code}"


@dataclass
class CliResult:
    """What one ``rexecutor`` command did."""

    code: int
    out: str
    err: str


async def cli(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> CliResult:
    """Run ``rexecutor --backend URL ARGS`` in process (in a thread: it runs its own loop)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["--backend", url, *args])
    out, err = capsys.readouterr()
    assert ENV_VAR not in os.environ, "the command left $REXECUTOR_BACKEND set"
    return CliResult(code, out, err)


async def check_cli(url: str, capsys: pytest.CaptureFixture[str], job_id: int) -> None:
    """``jobs show`` (table and ``--json``) and ``jobs list --json`` work on this job."""
    job_id = int(job_id)
    shown = await cli(url, capsys, "jobs", "show", str(job_id), "--json")
    assert shown.code == 0, shown.err
    assert strict_json(shown.out)["id"] == job_id
    table = await cli(url, capsys, "jobs", "show", str(job_id))
    assert table.code == 0 and "Traceback" not in table.err, table.err
    listed = await cli(url, capsys, "jobs", "list", "--json")
    assert listed.code == 0, listed.err
    assert job_id in [job["id"] for job in strict_json(listed.out)]
    table = await cli(url, capsys, "jobs", "list")
    assert table.code == 0 and "Traceback" not in table.err, table.err
