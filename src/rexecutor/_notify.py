"""In-process wake-ups: backends tell local runners that jobs may be ready, and local waiters
(``wait_for_job``) that jobs may have finished."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import weakref
from collections.abc import Callable, Collection

from rexecutor import _clock


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
        # A flag and the future of the one waiter, instead of an asyncio.Event behind
        # asyncio.wait_for: a wake-up resolves the waiter directly, with no task per wait (a
        # runner waits after almost every claim, so this is on the pick-up path).
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def wants(self, executor: str | None) -> bool:
        """Whether a wake-up for ``executor`` (None: any) concerns this subscriber."""
        return executor is None or self.executors is None or executor in self.executors

    def notify(self) -> None:
        """Wake the subscriber (from any thread)."""
        if threading.get_ident() == self._thread:
            self._wake()
        else:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Wait until notified or ``timeout`` seconds pass, then re-arm."""
        if not self._set and timeout > 0:
            waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        self._set = False

    def close(self) -> None:
        """Stop receiving wake-ups."""
        self._hub.unsubscribe(self)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


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

    @property
    def has_subscribers(self) -> bool:
        """Whether anyone is subscribed."""
        with self._lock:
            return bool(self._subscribers)

    def notify(self, executor: str | None = None) -> None:
        """Wake the subscribers interested in ``executor`` (None: all of them)."""
        with self._lock:
            targets = [s for s in self._subscribers if s.wants(executor)]
        for sub in targets:
            sub.notify()


class FinishedSubscription:
    """One mailbox for "jobs finished" wake-ups; safe to notify from any thread.

    Notifications accumulate until :meth:`take`: the ids named, and whether one named none
    (``None``: some jobs finished, which is not known). ``wait`` returns at once if anything
    arrived since the previous ``take``, so nothing that lands between a read and a wait is
    missed.
    """

    def __init__(self, hub: FinishedHub) -> None:
        self._hub = hub
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._ids: set[int] = set()
        self._unknown = False
        self._event = asyncio.Event()

    def notify(self, job_ids: Collection[int] | None) -> None:
        """Record that ``job_ids`` (None: unknown which) finished, and wake the waiter."""
        with self._lock:
            if job_ids is None:
                self._unknown = True
            else:
                self._ids.update(job_ids)
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            self._loop.call_soon_threadsafe(self._event.set)

    def take(self) -> tuple[set[int], bool]:
        """The ids notified since the last take, and whether an unknown set finished."""
        with self._lock:
            ids, unknown = self._ids, self._unknown
            self._ids, self._unknown = set(), False
        return ids, unknown

    async def wait(self, timeout: float | None) -> None:
        """Wait until notified (or ``timeout`` seconds pass), then re-arm."""
        with self._lock:
            pending = bool(self._ids) or self._unknown
        if not pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()

    def close(self) -> None:
        """Stop receiving notifications."""
        self._hub.unsubscribe(self)


class FinishedHub:
    """The local subscribers to a backend's "jobs finished" notifications.

    ``on_change`` runs (from the subscribing thread) whenever someone subscribes or
    unsubscribes: SQLite's watcher runs while anyone waits.
    """

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._subscribers: set[FinishedSubscription] = set()
        self._on_change = on_change

    def subscribe(self) -> FinishedSubscription:
        """Register a subscriber; call from its event loop."""
        sub = FinishedSubscription(self)
        with self._lock:
            self._subscribers.add(sub)
        if self._on_change is not None:
            self._on_change()
        return sub

    def unsubscribe(self, sub: FinishedSubscription) -> None:
        """Forget a subscriber."""
        with self._lock:
            self._subscribers.discard(sub)
        if self._on_change is not None:
            self._on_change()

    @property
    def subscriber_count(self) -> int:
        """How many subscribers there are."""
        with self._lock:
            return len(self._subscribers)

    def notify(self, job_ids: Collection[int] | None) -> None:
        """Tell every subscriber that ``job_ids`` (None: unknown which) finished."""
        if job_ids is not None and not job_ids:
            return
        with self._lock:
            targets = list(self._subscribers)
        for sub in targets:
            sub.notify(job_ids)


class Wakeups:
    """A backend's wake-ups: runners waiting for ready jobs, watches waiting for hints that
    a running job may have been cancelled elsewhere, and waiters for finished jobs.

    Every backend holds one as ``backend.wakeups``. ``jobs`` and ``finished`` may be hubs of
    the backend's own (SQLite's watcher sleeps while nobody is subscribed to either;
    PostgreSQL listens for finished jobs only while someone waits); ``on_subscribe`` runs on
    each subscription to ready jobs (PostgreSQL makes sure its listener runs). A
    test clock that moves wakes every runner, since jobs may have become due.
    """

    def __init__(
        self,
        jobs: WakeHub | None = None,
        on_subscribe: Callable[[], None] | None = None,
        finished: FinishedHub | None = None,
    ) -> None:
        self.jobs = WakeHub() if jobs is None else jobs
        self.cancellations = WakeHub()
        self.finished = FinishedHub() if finished is None else finished
        self._on_subscribe = on_subscribe
        _clock.on_change(self, functools.partial(_wake_all, weakref.ref(self)))

    def subscribe(self, executors: Collection[str] | None = None) -> Subscription:
        """Register for wake-ups about ready jobs of ``executors``; call from a running loop."""
        sub = self.jobs.subscribe(executors)
        if self._on_subscribe is not None:
            self._on_subscribe()
        return sub

    def notify(self, executor: str | None = None) -> None:
        """Wake local subscribers interested in ``executor`` (None: all)."""
        self.jobs.notify(executor)

    def subscribe_cancellations(self) -> Subscription:
        """Register for hints that a running job may have been cancelled.

        A node's watch loop checks its running jobs (``lost_jobs``) when woken, instead of
        waiting for its next periodic check; a spurious hint costs one cheap query.
        """
        return self.cancellations.subscribe()

    def notify_cancellation(self) -> None:
        """Hint local nodes that a running job may have been cancelled."""
        self.cancellations.notify()

    def subscribe_finished(self) -> FinishedSubscription:
        """Register for notifications that jobs finished; call from a running loop.

        ``rexecutor._waiting`` holds one such subscription per backend and event loop,
        however many callers wait.
        """
        return self.finished.subscribe()

    def notify_finished(self, job_ids: Collection[int] | None) -> None:
        """Tell local waiters that ``job_ids`` reached a terminal status (None: some jobs did,
        which is not known: a commit by another process, a reconnect)."""
        self.finished.notify(job_ids)

    @property
    def subscribed(self) -> bool:
        """Whether any runner waits for job wake-ups."""
        return self.jobs.has_subscribers


def _wake_all(ref: weakref.ref[Wakeups]) -> None:
    wakeups = ref()
    if wakeups is not None:
        wakeups.notify()
