"""The dashboard's workflow page and /api/workflows/ID, on every backend: the DAG drawn as an
inline SVG (a node per job, coloured by status, an edge per dependency), its legend and table,
the links from and to job pages, "waiting on dependencies", and unknown workflows."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest

from rexecutor.backend import Backend
from rexecutor.web import dashboard_app, workflows
from tests.support.workflow_seed import SeededWorkflow, seed_workflow
from tests.web.test_dashboard import FRAGMENT, client

# A name with a slash and markup: the id travels quoted in links and escaped in pages.
NAME = "nightly/<eu>"


@pytest.fixture
async def wf(backend: Backend) -> SeededWorkflow:
    return await seed_workflow(backend, NAME)


@pytest.fixture
async def web(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    async with client(dashboard_app(backend, refresh_seconds=1)) as c:
        yield c


def path_of(wf: SeededWorkflow) -> str:
    return "/workflows/" + quote(wf.workflow_id, safe="")


def svg_of(html: str) -> str:
    match = re.search(r'<svg class="dag".*?</svg>', html, re.S)
    assert match, "no DAG drawn"
    return match.group(0)


async def test_the_page_draws_one_node_per_job_and_one_edge_per_dependency(
    web: httpx.AsyncClient, wf: SeededWorkflow
) -> None:
    page = await web.get(path_of(wf))
    assert page.status_code == 200
    html = page.text
    assert "<script>" not in html and "script-src 'self'" in page.headers["content-security-policy"]
    assert "nightly/&lt;eu&gt;" in html and "<eu>" not in html
    svg = svg_of(html)
    nodes = re.findall(r'<a href="/jobs/(\d+)" class="node st-(\w+)( blocked)?"', svg)
    assert sorted(int(n) for n, _, _ in nodes) == wf.ids
    status = {int(n): (s, bool(b)) for n, s, b in nodes}
    assert status[wf.fetch] == status[wf.left] == ("complete", False)
    assert status[wf.right] == ("scheduled", False) and status[wf.merge] == ("scheduled", True)
    edges = {(int(a), int(b)) for a, b in re.findall(r'data-from="(\d+)" data-to="(\d+)"', svg)}
    assert edges == {
        (wf.fetch, wf.left),
        (wf.fetch, wf.right),
        (wf.left, wf.merge),
        (wf.right, wf.merge),
    }
    assert svg.count('marker-end="url(#dag-arrow)"') == 4
    assert "merge (job" in svg and "scheduled, waiting on 1" in svg
    # Columns by depth: fetch and audit first, merge last.
    x = {int(n): int(v) for n, v in re.findall(r'data-job-id="(\d+)"[^>]*>.*?<rect x="(\d+)"', svg)}
    assert x[wf.fetch] == x[wf.audit] < x[wf.left] == x[wf.right] < x[wf.merge]
    # The legend names every status and the dashed "waiting" look; the table lists the steps.
    legend = re.search(r'<ul class="legend".*?</ul>', html, re.S)
    assert legend and all(s in legend.group(0) for s in ("complete", "discarded", "waiting"))
    rows = re.findall(r'<tr data-job-id="(\d+)">', html)
    assert [int(r) for r in rows] == wf.ids
    assert f'<a href="/jobs/{wf.left}">{wf.left}</a>, <a href="/jobs/{wf.right}">' in html
    # The live part alone, for the page's refresh.
    fragment = (await web.get(path_of(wf), headers=FRAGMENT)).text
    assert "<html" not in fragment and svg_of(fragment)


async def test_job_pages_link_to_their_workflow_and_say_they_wait(
    web: httpx.AsyncClient, wf: SeededWorkflow
) -> None:
    merge = (await web.get(f"/jobs/{wf.merge}")).text
    assert f'<a class="workflow" href="{path_of(wf)}">' in merge
    assert "<dt>step</dt><dd>merge</dd>" in merge
    assert '<span class="waiting">waiting on dependencies</span>' in merge
    fetch = (await web.get(f"/jobs/{wf.fetch}")).text
    assert f'href="{path_of(wf)}"' in fetch and "waiting on dependencies" not in fetch
    listing = (await web.get("/jobs")).text
    row = re.search(rf'<tr data-job-id="{wf.merge}".*?</tr>', listing, re.S)
    assert row and "waiting on dependencies" in row.group(0)
    row = re.search(rf'<tr data-job-id="{wf.right}".*?</tr>', listing, re.S)
    assert row and "waiting" not in row.group(0)
    job = (await web.get(f"/api/jobs/{wf.merge}")).json()
    assert job["blocked"] is True and job["workflow_id"] == wf.workflow_id


async def test_the_json_api_gives_the_graph(web: httpx.AsyncClient, wf: SeededWorkflow) -> None:
    value = (await web.get("/api" + path_of(wf))).json()
    assert value["id"] == wf.workflow_id and value["roots"] == [wf.fetch, wf.audit]
    assert [job["id"] for job in value["jobs"]] == wf.ids
    assert len(value["edges"]) == 4 and value["blocked"] == 1
    merge = next(job for job in value["jobs"] if job["id"] == wf.merge)
    assert merge["waiting_on"] == [wf.right] and merge["depth"] == 2


@pytest.mark.parametrize("unknown", ["nightly-0000", "a/b", "%00", "x" * 300])
async def test_an_unknown_workflow_is_a_404(
    web: httpx.AsyncClient, wf: SeededWorkflow, unknown: str
) -> None:
    page = await web.get("/workflows/" + unknown)
    assert page.status_code == 404 and "no stored job has this workflow id" in page.text
    api = await web.get("/api/workflows/" + unknown)
    assert api.status_code == 404 and "no stored job" in api.json()["error"]
    assert (await web.get("/workflows/")).status_code == 404


async def test_a_workflow_too_large_to_draw_is_listed(
    web: httpx.AsyncClient, wf: SeededWorkflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workflows, "MAX_DRAWN_JOBS", 4)
    monkeypatch.setattr(workflows, "MAX_TABLE_ROWS", 3)
    html = (await web.get(path_of(wf))).text
    assert '<svg class="dag"' not in html and "5 jobs are too many to draw" in html
    assert len(re.findall(r'<tr data-job-id="(\d+)">', html)) == 3
    assert "2 more jobs are not listed" in html and f'href="/api{path_of(wf)}"' in html
