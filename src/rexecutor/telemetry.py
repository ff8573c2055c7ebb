"""Telemetry: events the node emits, for metrics, tracing and logs.

Attach a handler to one or more event names; it is called synchronously with an
:class:`Event` each time one is emitted, so keep it quick (hand heavy work to a queue). A
handler that raises is logged and does not disturb the job.

| event | when | measurements | metadata |
|---|---|---|---|
| ``job.start`` | an attempt is about to run | ``queue_latency`` (s since due) | job |
| ``job.stop`` | an attempt ended without raising | ``duration`` (s) | job, outcome |
| ``job.exception`` | an attempt raised or timed out | ``duration`` (s) | job, outcome, error |
| ``claim`` | a runner claimed jobs | ``count``, ``duration`` (s) | executor, node_id |
| ``rescue`` | orphaned jobs were rescued | ``count`` | job_ids, node_id |
| ``prune`` | a pruning rule ran | ``count`` | status, node_id |
| ``runner.error`` | a node's loop failed a round | ``failures``, ``retry_in`` (s) | see below |
| ``executor.pause`` | an executor was paused | | executor |
| ``executor.resume`` | an executor was resumed | | executor |
| ``executor.scale`` | its per-node limit was set | ``max_concurrency`` (-1: default) | executor |
| ``executor.held`` | limits held due jobs back | ``count`` (since the last event) | executor |

"job" stands for job_id, executor, attempt, node_id and tags. ``outcome`` is one of ``complete``,
``retryable``, ``discarded``, ``snoozed``, ``cancelled``, ``handed_back``, ``lost``.

``runner.error`` is how a node says that one of its loops hit an error and goes on: ``where``
names the loop (``claiming jobs``, ``writing a job outcome``, ``cron``, ``pruning``,
``heartbeat``, ``watching for cancelled jobs``, ``reading executor controls``), ``error_type``
is the exception's class name and ``error`` its text (capped at 4 KiB). A ``BackendError``
(the database is unavailable) is reported the same way as anything unexpected; the loop backs
off exponentially (capped) and tries again, so these events say why a node is slow or idle,
never that it stopped. ``failures`` counts the failed rounds in a row; the metadata also names
what the loop works on (``executor``, ``job_id``, ``node_id`` where they apply).

Example:
    >>> seen = []
    >>> attach("demo", ["job.stop"], seen.append)
    >>> emit("job.stop", {"duration": 0.1}, {"executor": "email"})
    >>> seen[0].metadata["executor"]
    'email'
    >>> detach("demo")
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EVENTS", "Event", "attach", "detach", "emit"]

log = logging.getLogger("rexecutor.telemetry")

EVENTS = frozenset(
    {
        "job.start",
        "job.stop",
        "job.exception",
        "claim",
        "rescue",
        "prune",
        "runner.error",
        "executor.pause",
        "executor.resume",
        "executor.scale",
        "executor.held",
    }
)


@dataclass(frozen=True, slots=True)
class Event:
    """One emitted event: its name, numbers, and what it is about."""

    name: str
    measurements: Mapping[str, float] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)


Handler = Callable[[Event], object]

_lock = threading.Lock()
_handlers: dict[str, dict[str, Handler]] = {}


def attach(handler_id: str, events: Iterable[str], handler: Handler) -> None:
    """Call ``handler`` for each of ``events``; ``handler_id`` names it for :func:`detach`."""
    names = list(events)
    unknown = set(names) - EVENTS
    if unknown:
        raise ValueError(f"unknown telemetry events {sorted(unknown)}; known: {sorted(EVENTS)}")
    with _lock:
        for name in names:
            _handlers.setdefault(name, {})[handler_id] = handler


def detach(handler_id: str) -> None:
    """Stop calling the handler attached as ``handler_id``."""
    with _lock:
        for handlers in _handlers.values():
            handlers.pop(handler_id, None)


def active(name: str) -> bool:
    """Whether any handler listens to ``name`` (lets hot paths skip building events)."""
    return bool(_handlers.get(name))


def emit(name: str, measurements: Mapping[str, float], metadata: Mapping[str, Any]) -> None:
    """Deliver an event to its handlers."""
    handlers = _handlers.get(name)
    if not handlers:
        return
    event = Event(name, measurements, metadata)
    for handler_id, handler in list(handlers.items()):
        try:
            handler(event)
        except Exception:
            log.exception("telemetry handler %r failed on %s", handler_id, name)
