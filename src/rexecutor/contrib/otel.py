"""OpenTelemetry tracing for rexecutor jobs (extra ``otel``).

Two halves, joined by the job's tags:

* Enqueue: :func:`enqueue_with_trace` opens a ``send`` span (kind PRODUCER) and stores the
  W3C trace context with the job as reserved tags, ``traceparent=...`` (and ``tracestate=...``
  when there is one). Tags, not metadata: metadata is typed by the executor, and tags every job
  has. :func:`with_trace` only adds the tags, to the current context.
* Execution: :class:`JobTracing` listens to the ``job.start``, ``job.stop`` and
  ``job.exception`` telemetry events and wraps every attempt in a ``process`` span (kind
  CONSUMER) carrying the job id, executor, attempt, node, queue latency and outcome; an attempt
  that raised or timed out sets the span's status to error. The span is the current one while
  the attempt runs, so spans the job's code opens are its children. Its parent is the trace
  context in the job's tags when the event carries them (``tags`` in the event metadata);
  :func:`job_context` gives the same context to code that holds the job.

Example:
    >>> tracing = JobTracing().attach()                           # in the worker
    >>> job_id = await enqueue_with_trace(EmailJob.builder().with_data("a@example.com"))
    >>> # in EmailJob.execute: tracer.start_as_current_span("send", context=job_context(job))
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from contextvars import Token
from typing import Any, Self, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from rexecutor import telemetry
from rexecutor.backend import Backend
from rexecutor.builder import JobBuilder
from rexecutor.job import Job, JobId

__all__ = [
    "TRACE_TAG_PREFIXES",
    "JobTracing",
    "enqueue_with_trace",
    "extract_context",
    "job_context",
    "trace_tags",
    "with_trace",
]

D = TypeVar("D")
M = TypeVar("M")

_FIELDS = ("traceparent", "tracestate")
#: Tags reserved for the trace context: ``traceparent=<W3C value>``, ``tracestate=<value>``.
TRACE_TAG_PREFIXES = tuple(f"{name}=" for name in _FIELDS)
_PROPAGATOR = TraceContextTextMapPropagator()
_SYSTEM = "rexecutor"


def trace_tags(context: Context | None = None) -> list[str]:
    """The trace context (default: the current one) as reserved tags; empty without a span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return [f"{name}={carrier[name]}" for name in _FIELDS if carrier.get(name)]


def _untraced(tags: Iterable[str]) -> list[str]:
    return [tag for tag in tags if not tag.startswith(TRACE_TAG_PREFIXES)]


def with_trace(builder: JobBuilder[D, M], context: Context | None = None) -> JobBuilder[D, M]:
    """``builder`` with the trace context (default: the current one) added as reserved tags.

    Trace tags the builder already had are replaced; its other tags are kept.
    """
    current = _untraced(builder.build().tags)
    return builder.with_tags([*current, *trace_tags(context)])


def extract_context(tags: Iterable[str]) -> Context:
    """The trace context stored in ``tags`` (an empty context when there is none)."""
    carrier: dict[str, str] = {}
    for tag in tags:
        name, sep, value = tag.partition("=")
        if sep and name in _FIELDS:
            carrier[name] = value
    return _PROPAGATOR.extract(carrier)


def job_context(job: Job[Any, Any]) -> Context:
    """The trace context in which ``job`` was enqueued, from its tags."""
    return extract_context(job.tags)


async def enqueue_with_trace(
    builder: JobBuilder[Any, Any],
    backend: Backend | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    connection: Any = None,
) -> JobId:
    """Enqueue inside a ``send <executor>`` PRODUCER span whose context travels with the job.

    ``backend`` defaults to the global backend; ``connection`` joins the caller's PostgreSQL
    transaction, as in ``JobBuilder.enqueue_to_backend``. Returns the job's id.
    """
    executor = builder.build().executor
    tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
    attributes = {
        "messaging.system": _SYSTEM,
        "messaging.operation": "send",
        "messaging.destination.name": executor,
    }
    with tracer.start_as_current_span(
        f"send {executor}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        result = await with_trace(builder).enqueue_with_result(backend, connection=connection)
        span.set_attribute("messaging.message.id", str(int(result.job_id)))
        span.set_attribute("rexecutor.job.duplicate", result.duplicate)
    return result.job_id


class JobTracing:
    """A CONSUMER span around every job attempt, driven by telemetry events.

    ``attach()`` starts it and ``detach()`` stops it. ``set_current`` (default True) makes the
    attempt's span the current span while the attempt runs, so that spans opened by the job's
    code (and instrumented libraries) nest under it.
    """

    def __init__(
        self, tracer_provider: TracerProvider | None = None, *, set_current: bool = True
    ) -> None:
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        self._set_current = set_current
        self._lock = threading.Lock()
        self._open: dict[tuple[int, int, str], tuple[trace.Span, Token[Context] | None]] = {}
        self._handler_id = f"rexecutor.contrib.otel:{id(self)}"

    def attach(self) -> Self:
        """Start tracing attempts; returns self."""
        telemetry.attach(self._handler_id, ["job.start", "job.stop", "job.exception"], self.handle)
        return self

    def detach(self) -> None:
        """Stop tracing (spans already open are ended)."""
        telemetry.detach(self._handler_id)
        with self._lock:
            still_open, self._open = list(self._open.values()), {}
        for span, _ in still_open:
            span.end()

    @staticmethod
    def _key(metadata: Mapping[str, Any]) -> tuple[int, int, str]:
        return (
            int(metadata.get("job_id", 0)),
            int(metadata.get("attempt", 0)),
            str(metadata.get("node_id", "")),
        )

    def handle(self, event: telemetry.Event) -> None:
        """Open the attempt's span on ``job.start``; close it on ``job.stop``/``job.exception``."""
        if event.name == "job.start":
            self._start(event)
        elif event.name in ("job.stop", "job.exception"):
            self._stop(event)

    def _start(self, event: telemetry.Event) -> None:
        meta = event.metadata
        executor = str(meta.get("executor", ""))
        parent = extract_context(meta.get("tags") or ())
        attributes: dict[str, Any] = {
            "messaging.system": _SYSTEM,
            "messaging.operation": "process",
            "messaging.destination.name": executor,
            "messaging.message.id": str(meta.get("job_id", "")),
            "rexecutor.job.attempt": int(meta.get("attempt", 0)),
            "rexecutor.node_id": str(meta.get("node_id", "")),
        }
        if "queue_latency" in event.measurements:
            attributes["rexecutor.job.queue_latency"] = float(event.measurements["queue_latency"])
        span = self._tracer.start_span(
            f"process {executor}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        )
        token = None
        if self._set_current:
            token = otel_context.attach(trace.set_span_in_context(span))
        with self._lock:
            self._open[self._key(meta)] = (span, token)

    def _stop(self, event: telemetry.Event) -> None:
        meta = event.metadata
        with self._lock:
            entry = self._open.pop(self._key(meta), None)
        if entry is None:
            return
        span, token = entry
        # The span is ended whatever the attributes do: an open span would be kept forever.
        try:
            outcome = str(meta.get("outcome", ""))
            span.set_attribute("rexecutor.job.outcome", outcome)
            if "duration" in event.measurements:
                span.set_attribute("rexecutor.job.duration", float(event.measurements["duration"]))
            if event.name == "job.exception":
                error = str(meta.get("error", ""))
                span.add_event(
                    "exception", {"exception.message": error, "rexecutor.outcome": outcome}
                )
                span.set_status(Status(StatusCode.ERROR, error))
        finally:
            if token is not None:
                otel_context.detach(token)
            span.end()
