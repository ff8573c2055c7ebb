"""The node: :class:`Rexecutor` registers executors, cron schedules and pruners, and runs
them on a backend until it is shut down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections import Counter
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

from rexecutor import _global, _process, _services, _text
from rexecutor._acker import Acker
from rexecutor.backend import Backend, NodeInfo
from rexecutor.cron import (
    DEFAULT_CATCH_UP_LIMIT,
    CatchUpPolicy,
    CronCatchUp,
    CronRegistration,
    CronSchedule,
)
from rexecutor.errors import ConfigurationError
from rexecutor.executor import Executor
from rexecutor.pruner import PrunerConfig
from rexecutor.runner import JobRunner, RunningJobs

__all__ = ["Rexecutor"]

log = logging.getLogger("rexecutor")

#: Seconds a shutting-down node keeps retrying outcome writes before it gives up.
ACK_DRAIN_TIMEOUT = 30.0
#: The smallest ``max_error_bytes``: room for a readable message and the truncation mark.
MIN_ERROR_BYTES = 256


class Rexecutor:
    """One node: runs the registered executors' jobs from ``backend``.

    Nothing runs until ``await rex.start()`` or ``async with rex:``; ``await rex.run()`` runs
    until shutdown. Each running instance is a node with a unique identity that records a
    heartbeat every ``heartbeat_interval``; a node silent for ``rescue_after`` is dead and its
    executing jobs are rescued by the others.

    Example:
        >>> rex = Rexecutor(InMemoryBackend()).with_executor(EmailJob)
        >>> async with rex:
        ...     await EmailJob.builder().with_data("x").enqueue_to_backend(rex.backend)

    Args:
        backend: where jobs live.
        heartbeat_interval: how often this node records that it is alive.
        rescue_after: how long a node may be silent before its jobs are rescued.
        poll_interval: the longest an idle runner waits before looking for work that no
            wake-up announced.
        cancel_check_interval: how often running jobs are checked for a cancel made elsewhere.
        blocking_threads: worker threads for blocking and plain-``def`` executors.
        max_error_bytes: the most bytes (UTF-8) of each error text recorded with a job
            (details, traceback); a longer one is cut and ends with ``… [truncated N bytes]``.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        heartbeat_interval: timedelta = timedelta(seconds=5),
        rescue_after: timedelta = timedelta(seconds=30),
        poll_interval: float = 1.0,
        cancel_check_interval: float = 0.5,
        blocking_threads: int = 16,
        max_error_bytes: int = _text.DEFAULT_MAX_ERROR_BYTES,
    ) -> None:
        if rescue_after <= heartbeat_interval:
            raise ConfigurationError(
                f"rescue_after ({rescue_after}) must be longer than heartbeat_interval "
                f"({heartbeat_interval}), or live nodes would be taken for dead"
            )
        if not isinstance(max_error_bytes, int) or max_error_bytes < MIN_ERROR_BYTES:
            raise ConfigurationError(
                f"max_error_bytes must be an int of at least {MIN_ERROR_BYTES}, "
                f"got {max_error_bytes!r}"
            )
        self.backend = backend
        self.node_id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.heartbeat_interval = heartbeat_interval
        self.rescue_after = rescue_after
        self.poll_interval = poll_interval
        self.cancel_check_interval = cancel_check_interval
        self.blocking_threads = blocking_threads
        self.max_error_bytes = max_error_bytes
        self.stats: Counter[str] = Counter()
        self._executors: dict[str, Executor[Any, Any]] = {}
        self._crons: list[tuple[Executor[Any, Any], CronRegistration]] = []
        self._pruners: list[PrunerConfig] = []
        self._runners: list[JobRunner] = []
        self._claimers: list[asyncio.Task[None]] = []
        self._services: list[asyncio.Task[None]] = []
        self._threads: ThreadPoolExecutor | None = None
        self._acker: Acker | None = None
        self._stopped: asyncio.Event | None = None
        self._heartbeat: _services.HeartbeatThread | None = None
        self._started = False

    # -- configuration ---------------------------------------------------------------------

    def _register(
        self, executor: type[Executor[Any, Any]] | Executor[Any, Any]
    ) -> Executor[Any, Any]:
        if self._started:
            raise ConfigurationError("register executors before the node starts")
        if isinstance(executor, type):
            if not issubclass(executor, Executor):
                raise ConfigurationError(f"{executor!r} is not an Executor subclass")
            existing = self._executors.get(executor.name)
            if existing is not None and type(existing) is executor:
                return existing
            instance: Executor[Any, Any] = executor()
        elif isinstance(executor, Executor):
            if executor.run_in_process:
                raise ConfigurationError(
                    f"executor {executor.name!r} runs in a process (run_in_process = True): "
                    "register its class, not an instance; the child process builds its own "
                    "instance, so dependencies given to this one would not reach it"
                )
            instance = executor
        else:
            raise ConfigurationError(f"{executor!r} is neither an Executor class nor an instance")
        if instance.run_in_process:
            _process.import_path(type(instance))
        existing = self._executors.get(instance.name)
        if existing is not None and existing is not instance:
            raise ConfigurationError(
                f"an executor named {instance.name!r} is already registered on this node "
                f"({type(existing).__qualname__}); executor names must be unique"
            )
        self._executors[instance.name] = instance
        return instance

    def with_executor(self, executor: type[Executor[Any, Any]] | Executor[Any, Any]) -> Self:
        """Run this executor's jobs on this node (a class, or an instance with dependencies)."""
        self._register(executor)
        return self

    def with_cron_executor(
        self,
        executor: type[Executor[Any, Any]] | Executor[Any, Any],
        schedule: str,
        *,
        data: Any = None,
        metadata: Any = None,
        timezone: str = "UTC",
        catch_up: CatchUpPolicy = "skip",
        catch_up_limit: int = DEFAULT_CATCH_UP_LIMIT,
    ) -> Self:
        """Enqueue a job of ``executor`` at each tick of ``schedule`` (and run it here).

        ``schedule`` has 5 fields, or 6 with seconds first; ``timezone`` is an IANA name.
        ``catch_up`` says what a starting node does about the ticks that passed while no node
        ran the schedule: ``"skip"`` nothing, ``"latest"`` one job for the latest of them,
        ``"all"`` one job each, the most recent ``catch_up_limit`` (default 100) at most (see
        :class:`~rexecutor.cron.CronCatchUp`). A malformed expression, an unknown zone or
        policy, or a limit under 1 raises ``ConfigurationError`` now.
        """
        parsed = CronSchedule.parse(schedule, timezone)
        policy = CronCatchUp(catch_up, catch_up_limit)
        instance = self._register(executor)
        # Validate now so that a bad payload fails at registration, not at every tick.
        type(instance).encode_data(data)
        type(instance).encode_metadata(metadata)
        self._crons.append(
            (instance, CronRegistration(instance.name, parsed, data, metadata, policy))
        )
        return self

    def with_job_pruner(self, config: PrunerConfig) -> Self:
        """Prune finished jobs as ``config`` says."""
        if not isinstance(config, PrunerConfig):
            raise ConfigurationError(f"with_job_pruner takes a PrunerConfig, got {config!r}")
        self._pruners.append(config)
        return self

    def set_global_backend(self) -> Self:
        """Make this node's backend the one that ``enqueue()``, ``query_jobs()`` etc. use."""
        _global.set_global_backend(self.backend)
        return self

    @property
    def cron_schedules(self) -> list[CronRegistration]:
        """The registered cron schedules, in registration order."""
        return [cron for _, cron in self._crons]

    @property
    def executors(self) -> dict[str, Executor[Any, Any]]:
        """The registered executors by name."""
        return dict(self._executors)

    # -- running ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the backend and start claiming and running jobs."""
        if self._started:
            return
        await self.backend.connect()
        self._started = True
        self._stopped = asyncio.Event()
        self._threads = ThreadPoolExecutor(self.blocking_threads, "rexecutor-job")
        self._acker = Acker(self.backend)
        self._running = RunningJobs()
        node = NodeInfo(self.node_id)
        await self.backend.record_heartbeat(node)
        for executor in self._executors.values():
            runner = JobRunner(
                executor,
                self.backend,
                self.node_id,
                self._acker,
                self._threads,
                self.stats,
                self.poll_interval,
                max_error_bytes=self.max_error_bytes,
                running=self._running,
            )
            self._runners.append(runner)
        await _services.apply_controls(self.backend, self._runners, declare=True)
        for runner in self._runners:
            self._claimers.append(self._spawn(runner.run(), f"claim:{runner.name}"))
        for instance, cron in self._crons:
            self._services.append(
                self._spawn(
                    _services.run_cron(
                        instance,
                        cron.schedule,
                        cron.data,
                        cron.metadata,
                        cron.catch_up,
                        self.backend,
                    ),
                    f"cron:{instance.name}",
                )
            )
        for config in self._pruners:
            self._services.append(self._spawn(_services.run_pruner(config, self.backend), "prune"))
        self._heartbeat = _services.HeartbeatThread(
            self.backend, node, self.heartbeat_interval, self.rescue_after
        )
        self._heartbeat.start()
        self._services.append(
            self._spawn(
                _services.watch_lost_jobs(
                    self.backend, self.node_id, self._running, self.cancel_check_interval
                ),
                "watch",
            )
        )
        if self._runners:
            self._services.append(
                self._spawn(
                    _services.watch_controls(self.backend, self._runners, self.poll_interval),
                    "controls",
                )
            )
        log.info("node %s started with executors %s", self.node_id, sorted(self._executors))

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=f"rexecutor:{name}")
        task.add_done_callback(self._crashed)
        return task

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s stopped unexpectedly", task.get_name(), exc_info=task.exception())

    async def run(self) -> None:
        """Start (if needed) and run until :meth:`graceful_shutdown` finishes."""
        await self.start()
        assert self._stopped is not None
        await self._stopped.wait()

    @property
    def running_jobs(self) -> int:
        """How many jobs this node is running now, counting threads of attempts that are
        over (timed out or stopped) but have not returned yet."""
        return sum(r.busy for r in self._runners)

    async def graceful_shutdown(self, timeout: timedelta | float | None = None) -> None:
        """Stop claiming, let running jobs finish, then stop.

        With a ``timeout``, jobs still running at the deadline are stopped and handed back
        to the queue without using up an attempt (an error entry says why). Outcomes are
        written before this returns.
        """
        if not self._started or self._stopped is None or self._stopped.is_set():
            return
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        for runner in self._runners:
            runner.stop()
        await asyncio.gather(*self._claimers, return_exceptions=True)
        for task in self._services:
            task.cancel()
        await asyncio.gather(*self._services, return_exceptions=True)
        tasks = self._running.tasks()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=seconds)
            if pending:
                log.warning("shutdown deadline reached: handing back %d running jobs", len(pending))
                self._running.abort_all("shutdown")
                await asyncio.wait(pending)
        assert self._acker is not None
        try:
            # With the database gone for good, outcomes cannot be written; the jobs stay
            # executing and are rescued (run again) once this node's heartbeats stop.
            await asyncio.wait_for(self._acker.drain(), ACK_DRAIN_TIMEOUT)
        except TimeoutError:
            log.error(
                "shutdown: job outcomes could not be written within %ss (is the database "
                "down?); those jobs will be rescued and run again",
                ACK_DRAIN_TIMEOUT,
            )
        if self._heartbeat is not None:
            await asyncio.to_thread(self._heartbeat.stop)
            self._heartbeat = None
        with contextlib.suppress(Exception):
            await self.backend.remove_node(self.node_id)
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
        self._runners.clear()
        self._claimers.clear()
        self._services.clear()
        self._started = False
        self._stopped.set()
        log.info("node %s stopped", self.node_id)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.graceful_shutdown()
