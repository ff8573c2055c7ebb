"""Scenarios that run a node inside one process: the in-memory backend (which no other process
can reach), SQLite's same-process wake-up, and the cost of SQLite's database thread.

Each scenario runs in a fresh interpreter started by ``bench.run``::

    python -m bench.inproc '{"scenario": "process", "url": "memory://", ...}'

and prints one line ``RESULT {json}`` last.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench.apps import NAME, BenchJob
from bench.common import own_status, percentile
from rexecutor import Rexecutor, enqueue_many
from rexecutor.backend import Backend
from rexecutor.backends import InMemoryBackend, backend_from_url
from rexecutor.job import Job, JobId, JobStatus
from rexecutor.query import IdIn


def fill_memory(backend: InMemoryBackend, count: int) -> None:
    """Put ``count`` completed jobs straight into the backend's store (as a long-lived
    deployment that never prunes would have them)."""
    now = datetime.now(UTC)
    with backend._lock:
        jobs, keys = backend._jobs, backend._keys
        for _ in range(count):
            job_id = JobId(backend._next_id)
            backend._next_id += 1
            jobs[job_id] = Job(
                id=job_id,
                status=JobStatus.COMPLETE,
                executor=NAME,
                data=0,
                metadata=None,
                attempt=1,
                max_attempts=5,
                priority=0,
                tags=[],
                errors=[],
                inserted_at=now,
                scheduled_at=now,
                attempted_at=now,
                completed_at=now,
                attempted_by="fill",
            )
            keys[job_id] = None


async def _started(args: dict[str, Any]) -> tuple[Backend, Rexecutor]:
    backend = backend_from_url(args["url"])
    await backend.connect()
    if args.get("fill") and isinstance(backend, InMemoryBackend):
        fill_memory(backend, int(args["fill"]))
    rex = Rexecutor(backend).with_executor(BenchJob)
    await rex.start()
    await asyncio.sleep(args.get("idle", 1.0))  # let the runner go idle
    return backend, rex


async def process(args: dict[str, Any]) -> dict[str, Any]:
    """Enqueue ``n`` no-op jobs in one bulk call to an idle node; time them through."""
    n = int(args["n"])
    backend, rex = await _started(args)
    idle = own_status()["VmRSS"]
    builders = [BenchJob.builder().with_data(0) for _ in range(n)]
    results = await enqueue_many(builders, backend)
    deadline = time.monotonic() + 300
    while rex.stats["complete"] < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {rex.stats['complete']} of {n} jobs completed")
        await asyncio.sleep(0.005)
    peak = own_status()["VmHWM"]
    await rex.graceful_shutdown()
    jobs = await backend.query(IdIn(tuple(r.job_id for r in results)))
    await backend.close()
    done = [j for j in jobs if j.status is JobStatus.COMPLETE]
    first = min(j.attempted_at for j in done if j.attempted_at is not None)
    last = max(j.completed_at for j in done if j.completed_at is not None)
    seconds = (last - first).total_seconds()
    return {
        "count": len(done),
        "seconds": seconds,
        "jobs_s": len(done) / seconds if seconds > 0 else float("inf"),
        "idle_rss_kb": idle,
        "peak_rss_kb": peak,
    }


async def latency(args: dict[str, Any]) -> dict[str, Any]:
    """Enqueue jobs one at a time at ``rate`` per second, from the node's own process."""
    count, rate = int(args["jobs"]), float(args["rate"])
    ledger = os.environ["BENCH_LEDGER"]
    backend, rex = await _started(args)
    enqueued: dict[int, tuple[float, float]] = {}
    start = time.monotonic() + 0.05
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        called = time.time()
        job_id = await BenchJob.builder().with_data(1).enqueue_to_backend(backend)
        enqueued[int(job_id)] = (called, time.time())
    deadline = time.monotonic() + 60
    while rex.stats["complete"] < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {rex.stats['complete']} of {count} jobs ran")
        await asyncio.sleep(0.01)
    await rex.graceful_shutdown()
    await backend.close()
    return latencies(enqueued, ledger)


def latencies(enqueued: dict[int, tuple[float, float]], ledger: str) -> dict[str, Any]:
    """Latency of each job from the ledger of execute starts: from the moment ``enqueue``
    returned (the job was committed) and from the moment it was called."""
    started: dict[int, float] = {}
    with open(ledger) as f:
        for line in f:
            job_id, moment = line.split()
            started.setdefault(int(job_id), float(moment))
    missing = set(enqueued) - set(started)
    if missing:
        raise RuntimeError(f"{len(missing)} jobs never recorded a start")
    after_return = [(started[j] - enqueued[j][1]) * 1000 for j in enqueued]
    after_call = [(started[j] - enqueued[j][0]) * 1000 for j in enqueued]
    return {
        "p50": percentile(after_return, 50),
        "p95": percentile(after_return, 95),
        "p99": percentile(after_return, 99),
        "p50_from_call": percentile(after_call, 50),
        "count": len(after_return),
    }


async def sqlite_costs(args: dict[str, Any]) -> dict[str, Any]:
    """What running SQLite work off the event loop costs: a round trip through the backend's
    database thread, against calling SQLite directly on the loop's thread."""
    import sqlite3

    from rexecutor.backends import sqlite as sqlite_module
    from rexecutor.backends.sqlite import codec

    samples = int(args["samples"])
    backend = backend_from_url(args["url"])
    assert isinstance(backend, sqlite_module.SqliteBackend)
    await backend.connect()
    job_id = await BenchJob.builder().with_data(0).enqueue_to_backend(backend)
    db = backend._db
    assert db is not None

    def noop() -> None:
        return None

    async def timed(call: Any) -> float:
        times = []
        for _ in range(samples):
            began = time.perf_counter()
            await call()
            times.append(time.perf_counter() - began)
        return percentile(times, 50) * 1e6

    async def roundtrip() -> None:
        await db.call(noop)

    async def via_thread() -> None:
        await backend.get_job(job_id)

    direct_conn = sqlite3.connect(backend.path, isolation_level=None)
    statement = f"SELECT {codec.COLUMNS} FROM jobs WHERE id = ?"

    async def direct() -> None:
        codec.select_jobs(direct_conn, statement, [int(job_id)])

    async def direct_noop() -> None:
        noop()

    result = {
        "roundtrip_us": await timed(roundtrip),
        "noop_direct_us": await timed(direct_noop),
        "get_job_thread_us": await timed(via_thread),
        "get_job_direct_us": await timed(direct),
    }
    direct_conn.close()
    await backend.close()
    return result


SCENARIOS = {"process": process, "latency": latency, "sqlite_costs": sqlite_costs}


def main() -> None:
    args = json.loads(sys.argv[1])
    if args.get("uvloop"):
        import uvloop

        uvloop.install()
    result = asyncio.run(SCENARIOS[args["scenario"]](args))
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
