"""Conformance: a subscriber is woken promptly when a job of its executors is enqueued, and
not by jobs of other executors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager

from rexecutor._notify import Subscription
from rexecutor.backend import Backend

from ._helpers import enqueue, new_job

#: A generous bound for "promptly"; the waits below allow 5 s.
PROMPT = 2.0
#: A wait that nothing should cut short, and the least time it may take.
QUIET_WAIT = 0.2
QUIET_AT_LEAST = 0.15


@asynccontextmanager
async def _subscribed(backend: Backend, executors: Collection[str]) -> AsyncIterator[Subscription]:
    sub = backend.subscribe(executors)
    try:
        yield sub
    finally:
        sub.close()


async def _seconds_waited(sub: Subscription, timeout: float) -> float:
    start = time.monotonic()
    await sub.wait(timeout)
    return time.monotonic() - start


async def test_enqueue_of_a_due_job_wakes_a_subscriber(backend: Backend) -> None:
    async with _subscribed(backend, ["ex"]) as sub:
        await enqueue(backend, "ex")
        assert await _seconds_waited(sub, 5) < PROMPT


async def test_enqueue_many_wakes_a_subscriber(backend: Backend) -> None:
    async with _subscribed(backend, ["ex"]) as sub:
        await backend.enqueue_many([new_job("other"), new_job("ex")])
        assert await _seconds_waited(sub, 5) < PROMPT


async def test_a_subscriber_to_several_executors_is_woken_by_each(backend: Backend) -> None:
    async with _subscribed(backend, ["a", "b"]) as sub:
        await enqueue(backend, "a")
        assert await _seconds_waited(sub, 5) < PROMPT
        await enqueue(backend, "b")
        assert await _seconds_waited(sub, 5) < PROMPT


async def test_enqueue_for_another_executor_does_not_wake_a_subscriber(
    backend: Backend,
) -> None:
    async with _subscribed(backend, ["ex"]) as sub:
        await enqueue(backend, "other")
        assert await _seconds_waited(sub, QUIET_WAIT) >= QUIET_AT_LEAST


async def test_a_closed_subscription_is_not_woken(backend: Backend) -> None:
    sub = backend.subscribe(["ex"])
    sub.close()
    await enqueue(backend, "ex")
    assert await _seconds_waited(sub, QUIET_WAIT) >= QUIET_AT_LEAST
