"""rexecutor_lifespan and run_rexecutor: the node's life follows the app's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.applications import Starlette

from rexecutor import ConfigurationError, Executor, Job, JobStatus, Rexecutor, _global
from rexecutor.backends import InMemoryBackend
from rexecutor.contrib.fastapi import RexecutorDep, rexecutor_lifespan, run_rexecutor
from tests.support.waiting import wait_for_status


class Slow(Executor[float, None]):
    name = "slow"

    async def execute(self, job: Job[float, None]) -> None:
        await asyncio.sleep(job.data)


class ClosingBackend(InMemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


def test_the_node_starts_and_stops_with_the_app() -> None:
    backend = ClosingBackend()
    rex = Rexecutor(backend).with_executor(Slow)
    app = FastAPI(lifespan=rexecutor_lifespan(rex, shutdown_timeout=5))

    @app.post("/slow")
    async def slow(node: RexecutorDep) -> dict[str, Any]:
        job_id = await Slow.builder().with_data(0.3).enqueue()
        return {"job_id": job_id, "same": node is rex, "running": node.running_jobs}

    with TestClient(app) as client:
        assert _global._backend is backend
        body = client.post("/slow").json()
        assert body["same"] is True
    # Shutdown waited for the running job.
    assert backend._jobs[body["job_id"]].status is JobStatus.COMPLETE
    assert _global._backend is None and backend.closed == 1


def test_without_running_jobs_the_app_only_enqueues() -> None:
    backend = InMemoryBackend()
    calls: list[int] = []

    def factory() -> Rexecutor:
        calls.append(1)
        return Rexecutor(backend).with_executor(Slow)

    app = Starlette(lifespan=rexecutor_lifespan(factory, run_jobs=False, close_backend=False))
    with TestClient(app):
        assert calls == [1]
        assert _global._backend is backend
    assert _global._backend is None


async def test_run_rexecutor_inside_an_apps_own_lifespan() -> None:
    backend = InMemoryBackend()
    async with run_rexecutor(
        Rexecutor(backend).with_executor(Slow), set_global_backend=False
    ) as rex:
        assert _global._backend is None
        job_id = await Slow.builder().with_data(0).enqueue_to_backend(backend)
        await wait_for_status(backend, job_id, JobStatus.COMPLETE)
        assert rex.running_jobs == 0


def test_a_factory_must_return_a_node_and_the_dependency_needs_the_lifespan() -> None:
    app = FastAPI(lifespan=rexecutor_lifespan(lambda: "nope"))  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigurationError, match="expected a Rexecutor"), TestClient(app):
        pass
    plain = FastAPI()

    @plain.get("/")
    async def root(node: RexecutorDep) -> None:
        return None

    with pytest.raises(ConfigurationError, match="lifespan=rexecutor_lifespan"):
        TestClient(plain).get("/")
