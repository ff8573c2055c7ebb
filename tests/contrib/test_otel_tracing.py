"""OpenTelemetry spans for enqueue and execution, with the real SDK and an in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from rexecutor import Executor, Job, JobStatus, Rexecutor, telemetry
from rexecutor.backends import InMemoryBackend
from rexecutor.contrib.otel import (
    JobTracing,
    enqueue_with_trace,
    extract_context,
    job_context,
    trace_tags,
    with_trace,
)
from tests.support.waiting import eventually, wait_for_status

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
app_tracer = provider.get_tracer("app")
seen_trace_ids: list[int] = []


class Ship(Executor[bool, None]):
    name = "otel_ship"
    max_attempts = 1

    async def execute(self, job: Job[bool, None]) -> None:
        seen_trace_ids.append(trace.get_current_span(job_context(job)).get_span_context().trace_id)
        with app_tracer.start_as_current_span("pack parcel"):
            if not job.data:
                raise RuntimeError("no parcel")


@pytest.fixture
def tracing() -> Iterator[JobTracing]:
    exporter.clear()
    seen_trace_ids.clear()
    tracing = JobTracing(provider).attach()
    try:
        yield tracing
    finally:
        tracing.detach()


def spans(name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


async def test_context_travels_from_enqueue_to_the_running_job(tracing: JobTracing) -> None:
    backend = InMemoryBackend()
    async with Rexecutor(backend).with_executor(Ship):
        with app_tracer.start_as_current_span("http request") as request:
            builder = Ship.builder().with_data(True).with_tags(["priority"])
            job_id = await enqueue_with_trace(builder, backend, tracer_provider=provider)
        await wait_for_status(backend, job_id, JobStatus.COMPLETE)
        await eventually(lambda: len(spans("process otel_ship")) == 1)
    trace_id = request.get_span_context().trace_id
    [send] = spans("send otel_ship")
    assert send.kind is SpanKind.PRODUCER and send.parent is not None
    assert send.parent.span_id == request.get_span_context().span_id
    assert (send.attributes or {})["messaging.message.id"] == str(int(job_id))
    stored = await backend.get_job(job_id)
    assert stored.tags[0] == "priority" and stored.tags[1].startswith("traceparent=00-")
    assert seen_trace_ids == [trace_id]  # the job sees the context it was enqueued in
    [process] = spans("process otel_ship")
    assert process.kind is SpanKind.CONSUMER
    attributes = process.attributes or {}
    assert attributes["rexecutor.job.outcome"] == "complete"
    assert attributes["rexecutor.job.attempt"] == 1
    assert attributes["messaging.message.id"] == str(int(job_id))
    assert attributes["rexecutor.job.duration"] >= 0
    # Spans the job's code opens are children of the attempt's span.
    [work] = spans("pack parcel")
    assert work.parent is not None and work.parent.span_id == process.context.span_id


async def test_a_failing_attempt_is_an_error_span(tracing: JobTracing) -> None:
    backend = InMemoryBackend()
    async with Rexecutor(backend).with_executor(Ship):
        job_id = await enqueue_with_trace(
            Ship.builder().with_data(False), backend, tracer_provider=provider
        )
        await wait_for_status(backend, job_id, JobStatus.DISCARDED)
        await eventually(lambda: len(spans("process otel_ship")) == 1)
    [process] = spans("process otel_ship")
    assert process.status.status_code is StatusCode.ERROR
    assert process.status.description == "no parcel"
    assert (process.attributes or {})["rexecutor.job.outcome"] == "discarded"
    assert [event.name for event in process.events] == ["exception"]


def test_the_attempt_span_is_parented_by_tags_in_the_event(tracing: JobTracing) -> None:
    with app_tracer.start_as_current_span("send by hand") as send:
        tags = ["other", *trace_tags()]
    meta = {"job_id": 7, "executor": "x", "attempt": 1, "node_id": "n", "tags": tags}
    telemetry.emit("job.start", {"queue_latency": 0.5}, meta)
    telemetry.emit("job.stop", {"duration": 0.1}, {**meta, "outcome": "complete"})
    [process] = spans("process x")
    assert process.parent is not None and process.parent.span_id == send.get_span_context().span_id
    assert process.context.trace_id == send.get_span_context().trace_id
    assert (process.attributes or {})["rexecutor.job.queue_latency"] == 0.5


def test_trace_tags_helpers() -> None:
    assert trace_tags() == []  # no span: nothing to carry
    assert not trace.get_current_span(extract_context(["plain"])).get_span_context().is_valid
    with app_tracer.start_as_current_span("first"):
        builder = with_trace(Ship.builder().with_data(True).with_tags(["keep"]))
    with app_tracer.start_as_current_span("second") as second:
        again = with_trace(builder)
    tags = again.build().tags
    assert tags[0] == "keep" and len(tags) == 2
    context = extract_context(tags)
    assert trace.get_current_span(context).get_span_context().span_id == (
        second.get_span_context().span_id
    )
