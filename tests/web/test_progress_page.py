"""The dashboard's job page shows a running job's progress in its live part (which the page
refreshes), and the JSON API includes it; on every backend."""

from __future__ import annotations

import httpx

from rexecutor.backend import Backend, EnqueuableJob, Lease
from rexecutor.job import JobProgress
from rexecutor.testing import FakeClock
from rexecutor.web import dashboard_app

FRAGMENT = {"X-Rexecutor-Fragment": "1"}


async def test_job_page_and_api_show_progress_live(backend: Backend) -> None:
    job_id = int((await backend.enqueue(EnqueuableJob("import", {}))).job_id)
    [job] = await backend.claim_ready_jobs("import", 1, "node-a")
    lease = Lease("node-a", job.attempt)
    app = dashboard_app(backend, refresh_seconds=1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as web:
        before = (await web.get(f"/jobs/{job_id}")).text
        assert 'class="progress"' not in before
        now = FakeClock().now()
        assert await backend.record_progress(job_id, lease, JobProgress(25, "<b>a</b>", now))
        page = (await web.get(f"/jobs/{job_id}")).text
        assert '<progress max="100" value="25">' in page
        assert "&lt;b&gt;a&lt;/b&gt;" in page and "<b>a</b>" not in page
        assert await backend.record_progress(job_id, lease, JobProgress(80, "later", now))
        live = (await web.get(f"/jobs/{job_id}", headers=FRAGMENT)).text
        assert '<progress max="100" value="80">' in live and "80% · later" in live
        api = (await web.get(f"/api/jobs/{job_id}")).json()
        assert api["progress"]["percent"] == 80 and api["progress"]["message"] == "later"
