"""Prometheus metrics from telemetry and count_jobs, read back from a real prometheus_client
registry."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from rexecutor import Executor, Job, JobStatus, Rexecutor, telemetry
from rexecutor.backends import InMemoryBackend
from rexecutor.contrib.prometheus import PrometheusMetrics
from tests.support.waiting import eventually, wait_for_status


class Charge(Executor[bool, None]):
    name = "prom_charge"
    max_attempts = 3

    async def execute(self, job: Job[bool, None]) -> None:
        if not job.data:
            raise RuntimeError("card declined")


@pytest.fixture
def metrics() -> Iterator[tuple[PrometheusMetrics, CollectorRegistry]]:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry).attach()
    try:
        yield metrics, registry
    finally:
        metrics.detach()


async def test_attempts_durations_latency_and_job_counts(
    metrics: tuple[PrometheusMetrics, CollectorRegistry],
) -> None:
    collector, registry = metrics

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    backend = InMemoryBackend()
    async with Rexecutor(backend).with_executor(Charge):
        ok = [await Charge.builder().with_data(True).enqueue_to_backend(backend) for _ in range(2)]
        bad = await Charge.builder().with_data(False).enqueue_to_backend(backend)
        for job_id in ok:
            await wait_for_status(backend, job_id, JobStatus.COMPLETE)
        await wait_for_status(backend, bad, JobStatus.RETRYABLE)
        await eventually(
            lambda: (
                value("rexecutor_job_attempts_total", executor="prom_charge", outcome="retryable")
                == 1
            )
        )
    assert value("rexecutor_job_attempts_total", executor="prom_charge", outcome="complete") == 2
    assert value("rexecutor_job_exceptions_total", executor="prom_charge") == 1
    assert (
        value("rexecutor_job_duration_seconds_count", executor="prom_charge", outcome="complete")
        == 2
    )
    assert value("rexecutor_job_queue_latency_seconds_count", executor="prom_charge") == 3
    assert (value("rexecutor_claimed_jobs_total", executor="prom_charge") or 0) >= 3

    await collector.refresh_job_counts(backend)
    assert value("rexecutor_jobs", executor="prom_charge", status="complete") == 2
    assert value("rexecutor_jobs", executor="prom_charge", status="retryable") == 1
    assert value("rexecutor_jobs", executor="prom_charge", status="discarded") == 0
    assert (value("rexecutor_job_counts_updated_timestamp_seconds") or 0) > 0
    text = generate_latest(registry).decode()
    assert "# TYPE rexecutor_jobs gauge" in text
    assert "# TYPE rexecutor_job_duration_seconds histogram" in text


async def test_rescue_and_prune_events_and_polling(
    metrics: tuple[PrometheusMetrics, CollectorRegistry],
) -> None:
    collector, registry = metrics
    telemetry.emit("rescue", {"count": 3}, {"job_ids": [1, 2, 3], "node_id": "n"})
    telemetry.emit("prune", {"count": 5}, {"status": "complete"})
    assert registry.get_sample_value("rexecutor_rescued_jobs_total") == 3
    assert registry.get_sample_value("rexecutor_pruned_jobs_total", {"status": "complete"}) == 5

    backend = InMemoryBackend()
    await Charge.builder().with_data(True).enqueue_to_backend(backend)
    poller = asyncio.create_task(collector.poll_job_counts(backend, interval=0.01))
    try:
        await eventually(
            lambda: (
                registry.get_sample_value(
                    "rexecutor_jobs", {"executor": "prom_charge", "status": "scheduled"}
                )
                == 1
            )
        )
    finally:
        poller.cancel()
    collector.detach()
    telemetry.emit("prune", {"count": 5}, {"status": "complete"})
    assert registry.get_sample_value("rexecutor_pruned_jobs_total", {"status": "complete"}) == 5
