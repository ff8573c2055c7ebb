"""Background loops of a running node: cron ticks, pruning, heartbeats, rescue and the
watch that stops jobs cancelled elsewhere, and the watch that applies operators' controls."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from rexecutor import _clock, _cron_jobs, admin, telemetry
from rexecutor._guard import LoopGuard
from rexecutor.backend import Backend, NodeInfo
from rexecutor.cron import CronCatchUp, CronSchedule
from rexecutor.executor import Executor
from rexecutor.pruner import PrunerConfig
from rexecutor.runner import JobRunner, RunningJobs

log = logging.getLogger("rexecutor")

#: How early a cron tick's job is enqueued, so that it is waiting when the tick comes.
CRON_LEAD = timedelta(milliseconds=50)


async def run_cron(
    executor: type[Executor[Any, Any]] | Executor[Any, Any],
    schedule: CronSchedule,
    data: Any,
    metadata: Any,
    policy: CronCatchUp,
    backend: Backend,
) -> None:
    """Catch up on missed ticks as ``policy`` says, then enqueue one job per tick of
    ``schedule``, exactly once across every node.

    Each tick's job is enqueued by :func:`rexecutor._cron_jobs.enqueue_tick`, whose uniqueness
    key makes whichever node enqueues first win.
    """
    cls = type(executor) if isinstance(executor, Executor) else executor
    guard = LoopGuard("cron", executor=cls.name, schedule=schedule.expression)
    after = _clock.now()
    caught_up = False
    while True:
        try:
            if not caught_up:
                # Up to ``after``, so that the catch-up and the ticks below meet without a gap
                # (after a failed round ``after`` moves on, and the retry covers up to it).
                ticks = await _cron_jobs.catch_up(
                    cls, schedule, data, metadata, policy, backend, after
                )
                caught_up = True
                if ticks:
                    log.info(
                        "cron %s %r: enqueued %d missed tick(s) (catch_up=%r), latest %s",
                        cls.name,
                        schedule.expression,
                        len(ticks),
                        policy.policy,
                        ticks[-1].isoformat(),
                    )
            tick = schedule.next_after(after)
            await _clock.sleep_until(tick - CRON_LEAD)
            await _cron_jobs.enqueue_tick(cls, schedule, data, metadata, backend, tick)
            guard.succeeded()
        except Exception as exc:
            # The tick is given up (a node that is down misses ticks the same way); the next
            # one is tried after the backoff.
            await asyncio.sleep(guard.failed(exc))
            after = max(after, _clock.now())
            continue
        after = tick


async def run_pruner(config: PrunerConfig, backend: Backend) -> None:
    """Run ``config``'s rules on its schedule, at most ``max_concurrency`` at once."""
    limit = asyncio.Semaphore(config.max_concurrency)
    guard = LoopGuard("pruning")

    async def prune_one(index: int) -> None:
        spec = config.pruners[index].spec
        async with limit:
            try:
                deleted = await backend.prune_jobs(spec, config.batch_size)
            except Exception as exc:
                # One rule failing leaves the others alone; it is tried again next tick.
                guard.failed(exc, status=str(spec.status))
                return
        if deleted:
            log.info("pruned %d %s jobs", deleted, spec.status)
        telemetry.emit("prune", {"count": deleted}, {"status": str(spec.status)})

    after = _clock.now()
    while True:
        try:
            tick = config.schedule.next_after(after)
            await _clock.sleep_until(tick)
            await asyncio.gather(*(prune_one(i) for i in range(len(config.pruners))))
        except Exception as exc:
            await asyncio.sleep(guard.failed(exc))
            after = max(after, _clock.now())
            continue
        after = tick


class HeartbeatThread(threading.Thread):
    """Records the node's heartbeats and rescues dead nodes' jobs from a thread of its own.

    It runs its own event loop on its own backend connection (``Backend.for_thread``), so
    neither a job that blocks the node's event loop nor a CPU-bound job can starve it: a node
    that is alive always looks alive.
    """

    def __init__(
        self, backend: Backend, node: NodeInfo, interval: timedelta, rescue_after: timedelta
    ) -> None:
        super().__init__(name=f"rexecutor-heartbeat-{node.node_id}", daemon=True)
        self._backend = backend
        self._node = node
        self._interval = interval.total_seconds()
        self._interval_td = interval
        self._rescue_after = rescue_after
        self._halt = threading.Event()
        # Set by stop(), and by a test clock that moves (rescue windows are due at once).
        self._wake = threading.Event()
        _clock.on_change(self, self._wake.set)

    def run(self) -> None:
        asyncio.run(self._beat())

    def stop(self) -> None:
        """Stop beating; returns once the thread has closed its connection."""
        self._halt.set()
        self._wake.set()
        self.join(timeout=10)

    async def _beat(self) -> None:
        backend = self._backend.for_thread()
        owned = backend is not self._backend
        loop = asyncio.get_running_loop()
        guard = LoopGuard("heartbeat", node_id=self._node.node_id)
        try:
            while not self._halt.is_set():
                try:
                    await backend.connect()
                    beat_at = _clock.now()
                    await backend.record_heartbeat(self._node)
                    # A test clock that jumped since this beat would make this very node look
                    # silent: beat again first, rescue on the next round.
                    if _clock.now() - beat_at >= self._rescue_after - self._interval_td:
                        continue
                    rescued = await admin.rescue_orphans(backend, self._rescue_after)
                    # Repairs a workflow step whose release a dead node never wrote.
                    settled = await backend.settle_blocked()
                    if settled:
                        log.info("settled %d blocked workflow jobs", settled)
                    guard.succeeded()
                    if rescued:
                        log.warning("rescued %d jobs of dead nodes: %s", len(rescued), rescued)
                        telemetry.emit(
                            "rescue",
                            {"count": len(rescued)},
                            {"job_ids": [int(i) for i in rescued], "node_id": self._node.node_id},
                        )
                except Exception as exc:
                    # Never let the thread die: a node that stops beating has its jobs
                    # rescued while it still runs them. The next beat comes on schedule.
                    guard.failed(exc)
                await loop.run_in_executor(None, self._wake.wait, self._interval)
                self._wake.clear()
        finally:
            if owned:
                await backend.close()


async def watch_lost_jobs(
    backend: Backend, node_id: str, running: RunningJobs, interval: float
) -> None:
    """Stop running jobs that this node no longer holds (cancelled, or rescued elsewhere).

    Checks every ``interval`` seconds, and at once when the backend hints at a cancellation.
    """
    hints = backend.subscribe_cancellations()
    guard = LoopGuard("watching for cancelled jobs", node_id=node_id)
    try:
        while True:
            await hints.wait(interval)
            try:
                leases = running.leases()
                for job_id in await backend.lost_jobs(node_id, leases) if leases else ():
                    log.info("job %s was cancelled or moved elsewhere; stopping it", job_id)
                    running.abort(job_id, "lost")
                guard.succeeded()
            except Exception as exc:
                await asyncio.sleep(guard.failed(exc))
    finally:
        hints.close()


async def apply_controls(
    backend: Backend, runners: Sequence[JobRunner], *, declare: bool = False
) -> None:
    """Bring each runner's per-node limit in line with its executor's stored state.

    ``declare``: first store the limits each executor's code declares (a node starting).
    """
    if declare:
        for runner in runners:
            await backend.declare_limits(runner.name, type(runner.executor).claim_limits())
    states = {s.name: s for s in await backend.executor_states([r.name for r in runners])}
    for runner in runners:
        state = states.get(runner.name)
        runner.scale(None if state is None else state.max_concurrency)


async def watch_controls(backend: Backend, runners: Sequence[JobRunner], interval: float) -> None:
    """Apply operators' ``scale`` to this node's runners every ``interval`` seconds, and report
    the jobs limits held back (one ``executor.held`` event per executor and interval)."""
    guard = LoopGuard("reading executor controls")
    while True:
        await asyncio.sleep(interval)
        try:
            await apply_controls(backend, runners)
            guard.succeeded()
        except Exception as exc:
            await asyncio.sleep(guard.failed(exc))
        for runner in runners:
            if runner.held_back:
                held, runner.held_back = runner.held_back, 0
                telemetry.emit("executor.held", {"count": held}, {"executor": runner.name})
