"""Small helpers shared by the PostgreSQL-only tests."""

from __future__ import annotations

import asyncio
import time

from rexecutor._notify import Subscription
from rexecutor.backends.postgres import PostgresBackend

#: A wake-up this late still counts as prompt.
PROMPT = 3.0
#: A wait nothing should cut short, and the least time it may then take.
QUIET_WAIT = 0.3
QUIET_AT_LEAST = 0.25


async def listening(backend: PostgresBackend, timeout: float = 10.0) -> int:
    """Wait until the backend's notification listener is LISTENing; returns its server pid."""
    await asyncio.wait_for(backend._listening.wait(), timeout)
    pid = backend._listener_pid
    assert pid is not None
    return pid


async def seconds_waited(sub: Subscription, timeout: float) -> float:
    """How long ``sub.wait(timeout)`` took: short when a wake-up came."""
    start = time.monotonic()
    await sub.wait(timeout)
    return time.monotonic() - start


async def drain(sub: Subscription) -> None:
    """Consume any pending wake-up."""
    await sub.wait(0)
