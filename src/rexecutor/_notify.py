"""In-process wake-ups: backends tell local runners that jobs may be ready."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Collection


class Subscription:
    """A runner's mailbox for wake-ups; safe to notify from any thread.

    ``wait`` returns at once if a wake-up arrived since the previous ``wait`` returned, so a
    runner that clears nothing itself can never miss one that lands between its claim and its
    wait.
    """

    def __init__(self, hub: WakeHub, executors: frozenset[str] | None) -> None:
        self._hub = hub
        self.executors = executors
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._event = asyncio.Event()

    def wants(self, executor: str | None) -> bool:
        """Whether a wake-up for ``executor`` (None: any) concerns this subscriber."""
        return executor is None or self.executors is None or executor in self.executors

    def notify(self) -> None:
        """Wake the subscriber (from any thread)."""
        if threading.get_ident() == self._thread:
            self._event.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float) -> None:
        """Wait until notified or ``timeout`` seconds pass, then re-arm."""
        if not self._event.is_set() and timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()

    def close(self) -> None:
        """Stop receiving wake-ups."""
        self._hub.unsubscribe(self)


class WakeHub:
    """The set of local subscribers of one backend."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: set[Subscription] = set()

    def subscribe(self, executors: Collection[str] | None = None) -> Subscription:
        """Register a subscriber for ``executors`` (None: all); call from the runner's loop."""
        sub = Subscription(self, None if executors is None else frozenset(executors))
        with self._lock:
            self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a subscriber."""
        with self._lock:
            self._subscribers.discard(sub)

    def notify(self, executor: str | None = None) -> None:
        """Wake the subscribers interested in ``executor`` (None: all of them)."""
        with self._lock:
            targets = [s for s in self._subscribers if s.wants(executor)]
        for sub in targets:
            sub.notify()
