"""The FastAPI example app (examples/fastapi_app/main.py), driven through its HTTP API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from examples.fastapi_app import main
from fastapi.testclient import TestClient

from rexecutor import _global


@pytest.fixture(params=["memory", "sqlite"])
def client(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("REXECUTOR_BACKEND", url)
    main.OUTBOX.clear()
    with TestClient(main.app) as test_client:  # runs the lifespan: the node starts
        yield test_client
    # The lifespan stopped the node and forgot the global backend.
    assert _global._backend is None


def wait_for(client: TestClient, job_id: int, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        body: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if body["status"] == status:
            return body
        assert time.monotonic() < deadline, f"job {job_id} is {body}, never became {status}"
        time.sleep(0.02)


def test_an_async_endpoint_enqueues_and_the_node_runs_the_job(client: TestClient) -> None:
    response = client.post("/signups", json={"email": "ann@example.com", "name": "Ann"})
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    body = wait_for(client, job_id, "complete")
    assert body["executor"] == "welcome_email" and body["attempt"] == 1
    assert main.OUTBOX == ["welcome Ann <ann@example.com>"]


def test_a_sync_endpoint_enqueues_through_the_sync_facade(client: TestClient) -> None:
    job_id = client.post("/reports", params={"month": "2030-01"}).json()["job_id"]
    wait_for(client, job_id, "complete")
    assert main.OUTBOX == ["report for 2030-01"]


def test_cancelling_a_scheduled_job(client: TestClient) -> None:
    job_id = client.post("/reports", params={"month": "2030-02", "delay_minutes": 60}).json()[
        "job_id"
    ]
    assert client.get(f"/jobs/{job_id}").json()["status"] == "scheduled"
    assert client.delete(f"/reports/{job_id}").json() == {"cancelled": True}
    assert client.get(f"/jobs/{job_id}").json()["status"] == "cancelled"
    assert client.delete("/reports/9999").status_code == 404
    assert client.get("/jobs/9999").status_code == 404


def test_bad_input_is_refused_before_anything_is_stored(client: TestClient) -> None:
    assert client.post("/signups", json={"email": "x"}).status_code == 422
    assert client.get("/jobs/1").status_code == 404
