"""Prometheus metrics for rexecutor, fed by its telemetry events (extra ``prometheus``).

Example:
    >>> from prometheus_client import CollectorRegistry
    >>> metrics = PrometheusMetrics(CollectorRegistry()).attach()
    >>> # in the node's event loop, keep the jobs-by-status gauge fresh:
    >>> # task = asyncio.create_task(metrics.poll_job_counts(backend, interval=15))
    >>> metrics.detach()

Metrics (``rexecutor`` is the default namespace):

| metric | type | labels | from |
|---|---|---|---|
| ``rexecutor_job_attempts_total`` | counter | executor, outcome | ``job.stop``/``exception`` |
| ``rexecutor_job_exceptions_total`` | counter | executor | ``job.exception`` |
| ``rexecutor_job_duration_seconds`` | histogram | executor, outcome | ``job.stop``/``exception`` |
| ``rexecutor_job_queue_latency_seconds`` | histogram | executor | ``job.start`` |
| ``rexecutor_claimed_jobs_total`` | counter | executor | ``claim`` |
| ``rexecutor_rescued_jobs_total`` | counter | | ``rescue`` |
| ``rexecutor_pruned_jobs_total`` | counter | status | ``prune`` |
| ``rexecutor_jobs`` | gauge | executor, status | ``Backend.count_jobs`` |

Expose them as usual with ``prometheus_client`` (``start_http_server``, ``make_asgi_app``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Self

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rexecutor import telemetry
from rexecutor.backend import Backend
from rexecutor.errors import RexecutorError
from rexecutor.job import JobStatus

__all__ = ["DURATION_BUCKETS", "LATENCY_BUCKETS", "JobCountsCollector", "PrometheusMetrics"]

log = logging.getLogger("rexecutor.prometheus")

#: Histogram buckets of attempt durations, in seconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
#: Histogram buckets of queue latency (due to started), in seconds.
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class JobCountsCollector(Collector):
    """The ``jobs`` gauge: stored jobs by executor and status, from the last refresh.

    Prometheus collects synchronously and the backend is asynchronous, so the numbers come
    from the last :meth:`update`; ``<namespace>_job_counts_updated_timestamp_seconds`` says
    when that was. An executor seen once keeps reporting zeros rather than vanishing.
    """

    def __init__(self, namespace: str = "rexecutor") -> None:
        self._namespace = namespace
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, JobStatus], int] = {}
        self._executors: set[str] = set()
        self._updated: float | None = None

    def update(self, counts: dict[tuple[str, JobStatus], int]) -> None:
        """Replace the snapshot with ``counts`` (as ``Backend.count_jobs`` returns them)."""
        with self._lock:
            self._counts = dict(counts)
            self._executors |= {executor for executor, _ in counts}
            self._updated = time.time()

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        jobs = GaugeMetricFamily(
            f"{self._namespace}_jobs",
            "Jobs stored, by executor and status (as of the last refresh)",
            labels=["executor", "status"],
        )
        updated = GaugeMetricFamily(
            f"{self._namespace}_job_counts_updated_timestamp_seconds",
            "When the jobs gauge was last refreshed from the backend (Unix time)",
        )
        return jobs, updated

    def describe(self) -> Iterable[Metric]:
        """The metric families, without samples (for registration)."""
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        """The last snapshot."""
        jobs, updated = self._families()
        with self._lock:
            for executor in sorted(self._executors):
                for status in JobStatus.ALL:
                    jobs.add_metric(
                        [executor, status.value], self._counts.get((executor, status), 0)
                    )
            stamp = self._updated
        if stamp is not None:
            updated.add_metric([], stamp)
        return [jobs, updated]


class PrometheusMetrics:
    """Counters and histograms fed by telemetry, and the jobs-by-status gauge.

    Create it once per registry (metric names must be unique in one), :meth:`attach` it to
    start counting, and run :meth:`poll_job_counts` (or call :meth:`refresh_job_counts`) to
    keep the gauge of stored jobs fresh.
    """

    def __init__(
        self,
        registry: CollectorRegistry = REGISTRY,
        *,
        namespace: str = "rexecutor",
        duration_buckets: Sequence[float] = DURATION_BUCKETS,
        latency_buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        self.registry = registry
        ns, reg = namespace, registry
        self.attempts = Counter(
            "job_attempts",
            "Job attempts that ended, by executor and outcome",
            ["executor", "outcome"],
            namespace=ns,
            registry=reg,
        )
        self.exceptions = Counter(
            "job_exceptions",
            "Job attempts that raised an exception or timed out",
            ["executor"],
            namespace=ns,
            registry=reg,
        )
        self.duration = Histogram(
            "job_duration_seconds",
            "How long job attempts ran, by executor and outcome",
            ["executor", "outcome"],
            buckets=tuple(duration_buckets),
            namespace=ns,
            registry=reg,
        )
        self.queue_latency = Histogram(
            "job_queue_latency_seconds",
            "Seconds from when a job was due to when its attempt started",
            ["executor"],
            buckets=tuple(latency_buckets),
            namespace=ns,
            registry=reg,
        )
        self.claimed = Counter(
            "claimed_jobs", "Jobs claimed by runners", ["executor"], namespace=ns, registry=reg
        )
        self.rescued = Counter(
            "rescued_jobs", "Jobs of dead nodes handed back", namespace=ns, registry=reg
        )
        self.pruned = Counter(
            "pruned_jobs",
            "Finished jobs deleted by pruners",
            ["status"],
            namespace=ns,
            registry=reg,
        )
        self.counts = JobCountsCollector(namespace)
        registry.register(self.counts)
        self._handler_id = f"rexecutor.contrib.prometheus:{id(self)}"

    def attach(self) -> Self:
        """Start counting telemetry events; returns self."""
        telemetry.attach(
            self._handler_id,
            ["job.start", "job.stop", "job.exception", "claim", "rescue", "prune"],
            self.handle,
        )
        return self

    def detach(self) -> None:
        """Stop counting (the metrics stay registered)."""
        telemetry.detach(self._handler_id)

    def handle(self, event: telemetry.Event) -> None:
        """Record one telemetry event."""
        meta, numbers = event.metadata, event.measurements
        executor = str(meta.get("executor", ""))
        if event.name == "job.start":
            self.queue_latency.labels(executor).observe(max(numbers.get("queue_latency", 0.0), 0.0))
        elif event.name in ("job.stop", "job.exception"):
            outcome = str(meta.get("outcome", "unknown"))
            self.attempts.labels(executor, outcome).inc()
            self.duration.labels(executor, outcome).observe(numbers.get("duration", 0.0))
            if event.name == "job.exception":
                self.exceptions.labels(executor).inc()
        elif event.name == "claim":
            self.claimed.labels(executor).inc(numbers.get("count", 0))
        elif event.name == "rescue":
            self.rescued.inc(numbers.get("count", 0))
        elif event.name == "prune":
            self.pruned.labels(str(meta.get("status", ""))).inc(numbers.get("count", 0))

    async def refresh_job_counts(self, backend: Backend) -> None:
        """Read ``count_jobs`` from ``backend`` into the jobs gauge."""
        self.counts.update(await backend.count_jobs())

    async def poll_job_counts(self, backend: Backend, interval: float = 15.0) -> None:
        """Refresh the jobs gauge every ``interval`` seconds until cancelled.

        A failing backend is logged and tried again at the next interval.
        """
        while True:
            try:
                await self.refresh_job_counts(backend)
            except RexecutorError as exc:
                log.warning("refreshing the jobs gauge failed: %s", exc)
            await asyncio.sleep(interval)
