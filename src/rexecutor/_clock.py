"""The wall clock used by the library's own time-dependent code, replaceable in tests.

Memory and SQLite backends, the runner's waits, cron ticks, pruning and rescue windows all
read :func:`now`. A test clock installed with :func:`set_clock` calls :func:`changed` when it
moves, which wakes every runner and every sleeping cron or pruner loop so that they look at
the new time at once instead of sleeping on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import weakref
from collections.abc import Callable
from datetime import UTC, datetime

_override: Callable[[], datetime] | None = None
_lock = threading.Lock()
_listeners: dict[int, Callable[[], None]] = {}
_keys = itertools.count()


def now() -> datetime:
    """Return the current time as an aware UTC datetime (or the test clock's time)."""
    if _override is not None:
        return _override()
    return datetime.now(UTC)


def current_clock() -> Callable[[], datetime] | None:
    """The installed test clock, or ``None`` while the system clock is in use."""
    return _override


def set_clock(source: Callable[[], datetime] | None) -> None:
    """Replace the clock (``None`` restores the system clock) and wake everyone waiting."""
    global _override
    _override = source
    changed()


def on_change(owner: object, callback: Callable[[], None]) -> None:
    """Call ``callback`` (from any thread) whenever the clock is moved, while ``owner`` lives."""
    key = _listen(callback)
    weakref.finalize(owner, _unlisten, key)


def _listen(callback: Callable[[], None]) -> int:
    key = next(_keys)
    with _lock:
        _listeners[key] = callback
    return key


def _unlisten(key: int) -> None:
    with _lock:
        _listeners.pop(key, None)


def changed() -> None:
    """Tell every waiter that the time jumped (a test clock moved)."""
    with _lock:
        callbacks = list(_listeners.values())
    for callback in callbacks:
        callback()


async def sleep_until(moment: datetime) -> None:
    """Sleep until ``moment`` by :func:`now`, waking early to re-check when the clock moves."""
    loop = asyncio.get_running_loop()
    moved = asyncio.Event()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(moved.set)

    key = _listen(wake)
    try:
        while (remaining := (moment - now()).total_seconds()) > 0:
            moved.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(moved.wait(), remaining)
    finally:
        _unlisten(key)
