"""A FastAPI app that enqueues jobs and runs them in the same process.

Run it from this folder (the jobs live in ./app.db unless REXECUTOR_BACKEND says otherwise):

    REXECUTOR_BACKEND=sqlite:///app.db uvicorn main:app
    curl -X POST localhost:8000/signups -H 'content-type: application/json' \\
         -d '{"email": "ann@example.com", "name": "Ann"}'
    curl localhost:8000/jobs/1

``rexecutor_lifespan`` starts the node with the app and stops it gracefully with it. Async
endpoints await the async API; plain ``def`` endpoints (run by FastAPI in a thread) use
``rexecutor.sync``. Tested by ``tests/contrib_fastapi/test_example_app.py``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from rexecutor import Backend, ExecutionResult, Executor, Job, JobNotFound, Rexecutor, sync
from rexecutor.backends import backend_from_url
from rexecutor.contrib.fastapi import RexecutorDep, rexecutor_lifespan

#: Where the example "sends" its emails and reports; a real app would call a mail service.
OUTBOX: list[str] = []


class Signup(BaseModel):
    email: str
    name: str


class WelcomeEmail(Executor[Signup, None]):
    name = "welcome_email"
    max_attempts = 3

    async def execute(self, job: Job[Signup, None]) -> ExecutionResult | None:
        OUTBOX.append(f"welcome {job.data.name} <{job.data.email}>")
        return None


class MonthlyReport(Executor[str, None]):
    name = "monthly_report"

    # A plain ``def``: the node runs it in a worker thread, off the event loop.
    def execute(self, job: Job[str, None]) -> None:  # type: ignore[override]
        OUTBOX.append(f"report for {job.data}")


def make_node(backend: Backend | None = None) -> Rexecutor:
    """The node, made at startup; its backend comes from $REXECUTOR_BACKEND unless given
    (``rexecutor worker main:make_node`` passes the one named by ``--backend``)."""
    return (
        Rexecutor(backend or backend_from_url(), poll_interval=0.5)
        .with_executor(WelcomeEmail)
        .with_executor(MonthlyReport)
    )


app = FastAPI(title="rexecutor example", lifespan=rexecutor_lifespan(make_node))


@app.post("/signups", status_code=202)
async def signup(body: Signup) -> dict[str, int]:
    """Enqueue the welcome email (async endpoint: the async API)."""
    job_id = await WelcomeEmail.builder().with_data(body).enqueue()
    return {"job_id": job_id}


@app.post("/reports", status_code=202)
def request_report(month: str, delay_minutes: int = 0) -> dict[str, int]:
    """Enqueue a report (plain endpoint, run in a thread: the sync facade)."""
    builder = MonthlyReport.builder().with_data(month)
    if delay_minutes:
        builder = builder.schedule_in(timedelta(minutes=delay_minutes))
    return {"job_id": sync.enqueue(builder)}


@app.delete("/reports/{job_id}")
def cancel_report(job_id: int) -> dict[str, bool]:
    """Cancel a report that has not run yet."""
    try:
        return {"cancelled": sync.cancel_job(job_id, "cancelled from the API")}
    except JobNotFound:
        raise HTTPException(404, f"no job {job_id}") from None


@app.get("/jobs/{job_id}")
async def job_status(job_id: int, rex: RexecutorDep) -> dict[str, Any]:
    """A job's status, through the node that the lifespan started."""
    try:
        job = await rex.backend.get_job(job_id)
    except JobNotFound:
        raise HTTPException(404, f"no job {job_id}") from None
    return {"id": job.id, "executor": job.executor, "status": job.status, "attempt": job.attempt}
