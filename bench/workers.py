"""Worker processes: started with the library's own command line, stopped with SIGTERM; and
the processing scenario they serve (:func:`sql_process`)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from bench.apps import BenchJob
from bench.common import Scratch, Sizes, read_status
from bench.stores import PgStore, SqliteStore
from rexecutor import JobBuilder, enqueue_many
from rexecutor.backend import Backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Store(Protocol):
    def node_pids(self) -> set[int]: ...


class Workers:
    """``count`` processes running ``python -m rexecutor worker bench.apps:node``."""

    def __init__(
        self,
        url: str,
        count: int,
        concurrency: int,
        ledger: str,
        logdir: str,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        #: Extra environment for the workers (bench.apps reads its limits from it).
        self.env = dict(env or {})
        self.count = count
        self.concurrency = concurrency
        self.ledger = ledger
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []
        #: Each worker's output file, in the order of ``procs``.
        self.logs: list[str] = []

    def start(self) -> None:
        env = dict(os.environ)
        env["BENCH_CONCURRENCY"] = str(self.concurrency)
        env["BENCH_LEDGER"] = self.ledger
        env.update(self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
        command = self.command()
        for _ in range(self.count):
            log = os.path.join(self.logdir, f"worker-{len(self.logs)}-{time.monotonic_ns()}.log")
            self.logs.append(log)
            with open(log, "wb") as out:
                self.procs.append(
                    subprocess.Popen(
                        command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
                    )
                )

    def command(self) -> list[str]:
        """The command line of one worker (bench.peers runs its peers' workers instead)."""
        return [
            sys.executable,
            "-m",
            "rexecutor",
            "--backend",
            self.url,
            "--log-level",
            "WARNING",
            "worker",
            "bench.apps:node",
        ]

    def _check_alive(self) -> None:
        for proc, log in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                with open(log, errors="replace") as f:
                    tail = f.read()[-3000:]
                raise RuntimeError(f"worker {proc.pid} exited with {proc.returncode}:\n{tail}")

    async def wait_ready(self, store: _Store, timeout: float = 60.0) -> None:
        """Until every worker has recorded its first heartbeat (its runners start next)."""
        deadline = time.monotonic() + timeout
        pids = {p.pid for p in self.procs}
        while not pids <= store.node_pids():
            self._check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start in time")
            await asyncio.sleep(0.05)

    def rss_kb(self) -> list[dict[str, int]]:
        self._check_alive()
        return [read_status(p.pid) for p in self.procs]

    def alive(self) -> None:
        self._check_alive()

    def stop(self, timeout: float = 60.0) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []


async def sql_process(
    store: PgStore | SqliteStore,
    backend: Backend,
    scratch: Scratch,
    sizes: Sizes,
    *,
    n: int,
    procs: int,
    concurrency: int,
    prepare: Callable[[], None],
    env: Mapping[str, str] | None = None,
    jobs: Callable[[int], Sequence[JobBuilder[Any, Any]]] | None = None,
) -> dict[str, Any]:
    """Start ``procs`` idle workers, enqueue ``n`` jobs in one bulk call, wait for them all.

    ``env``: extra environment for the workers. ``jobs``: builds the ``n`` builders (default:
    no-op jobs without a partition key). The result's ``after`` is the largest job id before
    the run: the run's jobs are the rows above it.
    """
    prepare()
    after = store.max_id()
    workers = Workers(store.worker_url, procs, concurrency, scratch.ledger(), scratch.path, env)
    workers.start()
    try:
        await workers.wait_ready(store)
        await asyncio.sleep(sizes.idle)
        idle = workers.rss_kb()
        builders = list(jobs(n)) if jobs else [BenchJob.builder().with_data(0) for _ in range(n)]
        await enqueue_many(builders, backend)
        deadline = time.monotonic() + 600
        while store.count_complete(after) < n:
            workers.alive()
            if time.monotonic() > deadline:
                raise RuntimeError("jobs did not complete in time")
            await asyncio.sleep(0.1)
        peak = workers.rss_kb()
    finally:
        workers.stop()
    count, seconds = store.window(after)
    if count != n:
        raise RuntimeError(f"{count} of {n} jobs completed")
    return {
        "after": after,
        "jobs_s": n / seconds,
        "idle_rss_kb": max(s["VmRSS"] for s in idle),
        "peak_rss_kb": max(s["VmHWM"] for s in peak),
    }
