"""The dashboard in a real browser: headless Chromium (Debian's) driven by Playwright.

``rexecutor dashboard`` is started as a real process on localhost over a SQLite file holding
jobs that a real node ran. The test checks that the pages show those jobs, that the page
refreshes itself when jobs change, that cancelling through the page cancels the job, and that
Pause, Resume and Scale on the Executors page change the stored state. It saves screenshots
to ``docs/screenshots/``. ``scripts/test`` installs Chromium when it is missing; this test
fails (it is never skipped) when it is not there.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from rexecutor import ExecutorControl, JobStatus, RateLimit, _clock, control
from rexecutor.backend import FailureRecord
from rexecutor.backends import SqliteBackend
from rexecutor.job import ErrorType, Job
from rexecutor.limits import ClaimLimits
from tests.backends._helpers import claim_one, mark_cancelled, mark_complete
from tests.cli.seed import Seeded, run_real_jobs, seed
from tests.support.processes import ROOT
from tests.support.workflow_seed import SeededWorkflow, Task, seed_workflow

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("REXECUTOR_TEST_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ROOT / "docs" / "screenshots"
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Batches of real jobs: (minutes ago, greetings, invoices). Half the invoices fail for good.
BATCHES = [
    (52, 6, 2),
    (44, 10, 2),
    (37, 4, 4),
    (29, 8, 2),
    (21, 5, 6),
    (13, 9, 2),
    (6, 3, 4),
    (1, 7, 2),
]
COMPLETE = sum(g for _, g, _ in BATCHES) + sum(i for _, _, i in BATCHES) // 2 + 1  # +1 seeded
DISCARDED = sum(i for _, _, i in BATCHES) // 2 + 2  # +2 seeded


async def _prepare(db: Path) -> Seeded:
    """Run the batches on a real node, each on a clock set back (the library's test clock,
    which SqliteBackend reads), so that the charts have an hour of history; then seed."""
    async with SqliteBackend(db) as backend:
        try:
            for minutes_ago, greetings, invoices in BATCHES:
                shift = timedelta(minutes=minutes_ago)
                _clock.set_clock(lambda shift=shift: datetime.now(UTC) - shift)
                await run_real_jobs(backend, greetings=greetings, invoices=invoices)
        finally:
            _clock.set_clock(None)
        # Limits as an invoice node's code would declare them, and an operator's scale.
        limits = ClaimLimits(global_max=4, rate=RateLimit(60, timedelta(minutes=1)))
        await backend.declare_limits("invoice", limits)
        await control.scale(backend, "greet", 8)
        return await seed(backend)


def _elsewhere(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on a loop of its own in another thread (Playwright's sync API keeps a
    loop running in this one)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=60)


def _job(db: Path, job_id: int) -> Job[Any, Any]:
    async def fetch() -> Job[Any, Any]:
        async with SqliteBackend(db) as backend:
            return await backend.get_job(job_id)

    return _elsewhere(fetch())


def _control(db: Path, name: str) -> ExecutorControl:
    async def fetch() -> ExecutorControl:
        async with SqliteBackend(db) as backend:
            return await control.control(backend, name)

    return _elsewhere(fetch())


def _cancel_directly(db: Path, job_id: int) -> None:
    async def cancel() -> None:
        async with SqliteBackend(db) as backend:
            error = FailureRecord(ErrorType.CANCELLED, "from another process")
            assert await mark_cancelled(backend, job_id, None, error)

    _elsewhere(cancel())


@contextmanager
def _dashboard(db: Path, cwd: Path) -> Iterator[str]:
    """``rexecutor dashboard`` serving the SQLite file ``db`` in its own process: its address."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rexecutor",
            "--backend",
            f"sqlite:///{db}",
            "--log-level",
            "WARNING",
            "dashboard",
            "--port",
            str(port),
            "--refresh",
            "0.5",
        ],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/api/nodes", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"the dashboard did not start: {output}")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:  # else an unclosed-file ResourceWarning, an error under -W error
            process.stdout.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, Seeded]]:
    """The dashboard serving a SQLite file of real jobs, in its own process."""
    db = tmp_path / "jobs.db"
    ids = asyncio.run(_prepare(db))
    with _dashboard(db, tmp_path) as base:
        yield base, db, ids


def _need_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"the browser test needs Chromium at {CHROMIUM}: run scripts/test (it installs "
            "Debian's chromium package) or apt-get install chromium",
            pytrace=False,
        )


def _launch(playwright: Any, tmp_path: Path) -> Any:
    """Headless Chromium, with a profile of its own under ``tmp_path``."""
    return playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=CHROMIUM,
        headless=True,
        args=FLAGS,
        viewport={"width": 1280, "height": 860},
    )


def test_the_dashboard_in_headless_chromium(
    served: tuple[str, Path, Seeded], tmp_path: Path
) -> None:
    _need_chromium()
    from playwright.sync_api import expect, sync_playwright

    base, db, ids = served
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = _launch(playwright, tmp_path)
        try:
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on(
                "console",
                lambda msg: problems.append(msg.text) if msg.type == "error" else None,
            )

            # Overview: counts from the real run, charts, and a live refresh.
            page.goto(base + "/")
            expect(page.locator("h1")).to_have_text("Overview")
            complete = page.locator('.count[data-status="complete"]')
            expect(complete).to_have_text(str(COMPLETE))
            expect(page.locator('.count[data-status="discarded"]')).to_have_text(str(DISCARDED))
            expect(page.locator('.count[data-status="cancelled"]')).to_have_text("1")
            expect(page.locator("svg.chart rect.ok")).not_to_have_count(0)
            assert page.locator("svg.chart rect.ok").count() >= len(BATCHES)  # a bar a batch
            expect(page.locator("#updated")).to_contain_text("updated")
            page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)
            _cancel_directly(db, ids.report)  # another process changes the queue...
            expect(page.locator('.count[data-status="cancelled"]')).to_have_text("2")  # ...seen

            # Job list: the jobs, filtered, newest first.
            page.goto(base + "/jobs")
            rows = page.locator("tr[data-job-id]")
            expect(rows).to_have_count(50)
            page.select_option("select[name=status]", "discarded")
            page.click("form.filters button[type=submit]")
            expect(page).to_have_url(f"{base}/jobs?executor=&status=discarded&tag=")
            expect(rows).to_have_count(DISCARDED)
            expect(page.locator("tr[data-job-id] .err").first).to_contain_text("Error")
            page.screenshot(path=str(SHOTS / "jobs.png"), full_page=True)

            # A job page: errors with their tracebacks, the history.
            page.goto(f"{base}/jobs/{ids.discarded}")
            expect(page.locator("h1")).to_have_text(f"Job {ids.discarded}")
            page.locator("details summary").first.click()
            expect(page.locator("details pre").first).to_contain_text("ConnectionRefusedError")
            expect(page.locator("ol.history")).to_contain_text("discarded")
            page.screenshot(path=str(SHOTS / "job.png"), full_page=True)

            # Nodes.
            page.goto(base + "/nodes")
            expect(page.locator("table")).to_contain_text("node-a")
            page.screenshot(path=str(SHOTS / "nodes.png"), full_page=True)

            # Cancel a scheduled job through its page, confirming the dialog.
            page.goto(f"{base}/jobs/{ids.scheduled}")
            expect(page.locator("dl.facts")).to_have_attribute("data-status", "scheduled")
            questions: list[str] = []

            def accept(dialog: Any) -> None:
                questions.append(dialog.message)
                dialog.accept()

            page.on("dialog", accept)
            page.fill("input[name=reason]", "cancelled in the browser test")
            page.click("button:has-text('Cancel job')")
            expect(page.locator(".flash")).to_have_text(f"Job {ids.scheduled} cancelled.")
            expect(page.locator("dl.facts")).to_have_attribute("data-status", "cancelled")
            assert questions == [f"Cancel job {ids.scheduled}?"]
            job = _job(db, ids.scheduled)
            assert job.status is JobStatus.CANCELLED
            assert job.errors[-1].details == "cancelled in the browser test"

            # Executors: pause one from its row, see it on the overview, resume it, scale it.
            page.goto(base + "/executors")
            row = page.locator('tr[data-executor="email"]')
            expect(row).to_have_attribute("data-paused", "false")
            expect(page.locator('tr[data-executor="greet"] .per-node')).to_have_text("8 scaled")
            expect(page.locator('tr[data-executor="invoice"]')).to_contain_text("60 per 1m")
            questions.clear()
            row.locator("button:has-text('Pause')").click()
            expect(page.locator(".flash")).to_contain_text("email paused")
            expect(row).to_have_attribute("data-paused", "true")
            assert questions == ["Pause email on every node?"]
            assert _control(db, "email").paused
            page.screenshot(path=str(SHOTS / "executors.png"), full_page=True)
            page.goto(base + "/")
            expect(page.locator("#paused-executors")).to_contain_text("email")
            page.goto(base + "/executors")
            row.locator("button:has-text('Resume')").click()
            expect(page.locator(".flash")).to_have_text("email resumed.")
            expect(row).to_have_attribute("data-paused", "false")
            assert not _control(db, "email").paused
            row.locator("input[name=max_concurrency]").fill("6")
            row.locator("button:has-text('Scale')").click()
            expect(row.locator(".per-node")).to_have_text("6 scaled")
            assert questions[1:] == [
                "Resume email on every node?",
                "Change the per-node limit of email on every node?",
            ]
            scaled = _control(db, "email")
            assert scaled.max_concurrency == 6 and scaled.scaled and not scaled.paused
            page.goto(base + "/")
            expect(page.locator("h1")).to_have_text("Overview")
            expect(page.locator("#paused-executors")).to_have_count(0)
            assert not problems, problems
        finally:
            context.close()
    for name in ("overview", "jobs", "job", "nodes", "executors"):
        assert (SHOTS / f"{name}.png").stat().st_size > 10_000


# -- workflows ------------------------------------------------------------------------------


def _complete_next(db: Path, expected: int) -> None:
    """Claim and complete the next ready job of the workflow's executor, from this process."""

    async def complete() -> None:
        async with SqliteBackend(db) as backend:
            job, lease = await claim_one(backend, Task.name)
            assert int(job.id) == expected
            assert await mark_complete(backend, job.id, lease)

    _elsewhere(complete())


def test_a_workflow_page_in_headless_chromium(tmp_path: Path) -> None:
    _need_chromium()
    from playwright.sync_api import expect, sync_playwright

    db = tmp_path / "jobs.db"

    async def prepare() -> SeededWorkflow:
        async with SqliteBackend(db) as backend:
            return await seed_workflow(backend)

    wf = asyncio.run(prepare())
    SHOTS.mkdir(parents=True, exist_ok=True)
    with _dashboard(db, tmp_path) as base, sync_playwright() as playwright:
        context = _launch(playwright, tmp_path)
        try:
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on(
                "console",
                lambda msg: problems.append(msg.text) if msg.type == "error" else None,
            )

            # From a blocked job's page to its workflow.
            page.goto(f"{base}/jobs/{wf.merge}")
            expect(page.locator("dl.facts")).to_contain_text("waiting on dependencies")
            page.click("a.workflow")
            expect(page.locator("h1")).to_have_text(f"Workflow {wf.workflow_id}")

            # The drawing: a node per job, an edge per dependency, coloured by status.
            nodes = page.locator("svg.dag a.node")
            expect(nodes).to_have_count(len(wf.ids))
            expect(page.locator("svg.dag path.edge")).to_have_count(4)
            drawn = sorted(int(n.get_attribute("data-job-id") or 0) for n in nodes.all())
            assert drawn == wf.ids
            merge = page.locator(f'svg.dag a.node[data-job-id="{wf.merge}"]')
            expect(merge).to_have_class("node st-scheduled blocked")
            complete = page.locator("svg.dag a.node.st-complete rect").first
            assert complete.evaluate("r => getComputedStyle(r).fill") == "rgb(26, 127, 55)"
            box = merge.locator("rect").bounding_box()
            assert box is not None and box["width"] > 100  # drawn, not collapsed
            expect(page.locator("ul.legend")).to_contain_text("waiting on dependencies")
            page.screenshot(path=str(SHOTS / "workflow.png"), full_page=True)

            # Another process completes the step merge waits on: the live page follows.
            _complete_next(db, wf.right)
            right = page.locator(f'svg.dag a.node[data-job-id="{wf.right}"]')
            expect(right).to_have_attribute("data-status", "complete")
            expect(merge).to_have_class("node st-scheduled")

            # Each node links to its job.
            merge.click()
            expect(page.locator("h1")).to_have_text(f"Job {wf.merge}")
            assert not problems, problems
        finally:
            context.close()
    assert (SHOTS / "workflow.png").stat().st_size > 10_000
