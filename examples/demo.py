"""The main job: a worker on the SQLite default processing example jobs.

Run it with ``./scripts/demo`` (or ``python examples/demo.py``). It enqueues a batch of
example jobs into ``rexecutor.db`` — some succeed, some fail once and are retried, some snooze,
some fail for good and are discarded, and a cron job ticks every two seconds — runs a node
until this run's jobs are finished, showing progress, and ends with a summary. The file keeps
every job, so a second run shows the first run's jobs too.

The same executors run as a long-lived worker with
``rexecutor worker examples.demo:node`` (stop it with Ctrl-C).
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from collections import Counter
from datetime import timedelta

from rexecutor import Backend, ExecutionResult, Executor, Job, JobStatus, Rexecutor, Where
from rexecutor.backends import backend_from_url

QUICK_RETRY = timedelta(milliseconds=500)


class Greet(Executor[str, None]):
    """Always succeeds, after a little simulated work."""

    name = "demo.greet"
    max_concurrency = 20

    async def execute(self, job: Job[str, None]) -> None:
        await asyncio.sleep(random.uniform(0.001, 0.02))


class Flaky(Executor[int, None]):
    """Fails its first attempt, then succeeds: a retry."""

    name = "demo.flaky"

    async def execute(self, job: Job[int, None]) -> ExecutionResult:
        if job.attempt == 1:
            return ExecutionResult.Error(ConnectionError("upstream timed out (simulated)"))
        return ExecutionResult.Done()

    def backoff(self, job: Job[int, None]) -> timedelta:
        return QUICK_RETRY


class Sleepy(Executor[int, None]):
    """Snoozes once (without using up an attempt), then succeeds."""

    name = "demo.sleepy"

    async def execute(self, job: Job[int, None]) -> ExecutionResult:
        if job.scheduled_at - job.inserted_at < timedelta(milliseconds=500):
            return ExecutionResult.Snooze(timedelta(seconds=1))
        return ExecutionResult.Done()


class Doomed(Executor[str, None]):
    """Raises every time: discarded after its two attempts."""

    name = "demo.doomed"
    max_attempts = 2

    def execute(self, job: Job[str, None]) -> None:  # a plain def runs in a worker thread
        raise RuntimeError(f"cannot process {job.data!r} (simulated bug)")

    def backoff(self, job: Job[str, None]) -> timedelta:
        return QUICK_RETRY


class Tick(Executor[str, None]):
    """Enqueued by cron every two seconds."""

    name = "demo.tick"

    async def execute(self, job: Job[str, None]) -> None:
        return None


def node(backend: Backend) -> Rexecutor:
    """The demo's node: every executor above, and the cron schedule."""
    return (
        Rexecutor(backend, poll_interval=0.5)
        .with_executor(Greet)
        .with_executor(Flaky)
        .with_executor(Sleepy)
        .with_executor(Doomed)
        .with_cron_executor(Tick, "*/2 * * * * *", data="tick")
    )


BATCH = {Greet: 300, Flaky: 20, Sleepy: 10, Doomed: 5}
FINAL = {JobStatus.COMPLETE, JobStatus.DISCARDED, JobStatus.CANCELLED}


async def _count_by_status(backend: Backend, ids: list[int]) -> Counter[str]:
    jobs = await backend.query(Where.id_in(ids).node)
    return Counter(str(j.status) for j in jobs)


async def main() -> int:
    """Enqueue the batch, run the node until it is finished, print a summary."""
    logging.basicConfig(level=logging.ERROR)
    backend = backend_from_url()
    await backend.connect()
    before = len(await backend.query(Where.everything().node))
    print(f"rexecutor demo: {before} jobs already stored from earlier runs")
    ids: list[int] = []
    for executor, count in BATCH.items():
        for i in range(count):
            data = f"user{i}@example.com" if executor in (Greet, Doomed) else i
            ids.append(await executor.builder().with_data(data).enqueue_to_backend(backend))
    print(f"enqueued {len(ids)} jobs: " + ", ".join(f"{n} {e.name}" for e, n in BATCH.items()))
    rex = node(backend)
    started = time.monotonic()
    finished_after: float | None = None
    tty = sys.stdout.isatty()
    async with rex:
        while True:
            await asyncio.sleep(0.25)
            counts = await _count_by_status(backend, ids)
            ticks = len(await Tick.query_jobs_on_backend(None, backend))
            elapsed = time.monotonic() - started
            line = (
                f"[{elapsed:5.1f}s] complete {counts['complete']:4} | "
                f"executing {counts['executing']:3} | "
                f"waiting {counts['scheduled'] + counts['retryable']:4} | "
                f"retried {rex.stats['retryable']:3} | snoozed {rex.stats['snoozed']:3} | "
                f"discarded {counts['discarded']:2} | cron ticks {ticks}"
            )
            print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
            if finished_after is None and sum(counts[s] for s in FINAL) == len(ids):
                finished_after = elapsed
            # Keep going a little so that the cron schedule ticks a couple of times.
            if (finished_after is not None and elapsed > 4.5) or elapsed > 60:
                break
    counts = await _count_by_status(backend, ids)
    total = len(await backend.query(Where.everything().node))
    await backend.close()
    print("\n\nsummary of this run")
    print(f"  done       {counts['complete']}")
    print(f"  retried    {rex.stats['retryable']} failed attempts retried after backoff")
    print(f"  snoozed    {rex.stats['snoozed']}")
    print(f"  discarded  {counts['discarded']}")
    if finished_after is not None:
        print(f"  throughput {len(ids) / finished_after:.0f} jobs/s ({finished_after:.1f}s)")
    print(f"  stored     {total} jobs in the database ({before} from earlier runs)")
    unfinished = len(ids) - sum(counts[s] for s in FINAL)
    return 1 if unfinished else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
