"""Workflows on PostgreSQL: enqueue of a 1,000-job workflow, and dependency-release latency.

    .venv/bin/python -m bench.workflows [--runs 3] [--url postgresql://...]

- **Enqueue**: a 1,000-job workflow (root → 9 rounds of 100 side by side → 1 join, a 50-step
  chain, 40 leaves of the root: the acceptance test's graph) stored with
  ``Workflow.enqueue_to_backend``; jobs/s, median of the runs.
- **Release latency**: a 200-step chain run by a worker in another process; for every edge,
  the dependency's ``completed_at`` to the dependent's ``attempted_at``, both stamped by the
  database; p50 and p99 over every edge of every run.

Prints the figures; a throw-away database is created and dropped. No-op jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

from bench.apps import NAME, BenchJob
from bench.stores import DEFAULT_PG_URL, PgStore
from rexecutor import Workflow
from rexecutor.backends import backend_from_url

ROOT = Path(__file__).resolve().parents[1]
CHAIN = 200


def graph() -> Workflow:
    wf = Workflow("bench")
    root = wf.add(BenchJob.builder().with_data(0))
    join = root
    for _ in range(9):
        fan = wf.add_group([BenchJob.builder().with_data(0) for _ in range(100)], depends_on=[join])
        join = wf.add(BenchJob.builder().with_data(0), depends_on=fan)
    wf.add_chain([BenchJob.builder().with_data(0) for _ in range(50)], after=[join])
    wf.add_group([BenchJob.builder().with_data(0) for _ in range(40)], depends_on=[root])
    return wf


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(url: str, runs: int) -> None:
    rates: list[float] = []
    latencies: list[float] = []
    backend = backend_from_url(url)
    async with backend:
        for index in range(runs):
            wf = graph()
            began = time.perf_counter()
            await wf.enqueue_to_backend(backend)
            rates.append(len(wf.steps) / (time.perf_counter() - began))

            chain = Workflow(f"chain-{index}")
            chain.add_chain([BenchJob.builder().with_data(0) for _ in range(CHAIN)])
            ids = await chain.enqueue_to_backend(backend)
            command = [sys.executable, "-m", "rexecutor", "--backend", url]
            command += ["--log-level", "WARNING", "worker", "bench.apps:node"]
            worker = await asyncio.create_subprocess_exec(
                *command,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), "BENCH_CONCURRENCY": "10"},
            )
            try:
                deadline = time.monotonic() + 120
                while (await backend.get_job(ids[-1])).completed_at is None:
                    if time.monotonic() > deadline:
                        raise SystemExit("the chain did not finish within 120 s")
                    await asyncio.sleep(0.05)
            finally:
                worker.terminate()
                await asyncio.wait_for(worker.wait(), 30)
            jobs = {int(j.id): j for j in await backend.workflow_jobs(chain.id)}
            for dependent, on in (await backend.dependencies(ids)).items():
                for dependency in on:
                    done, began_at = jobs[dependency].completed_at, jobs[dependent].attempted_at
                    assert done is not None and began_at is not None
                    latencies.append((began_at - done).total_seconds() * 1000)
    print(
        f"workflow enqueue (1,000 jobs, {runs} runs): median {statistics.median(rates):,.0f} "
        f"jobs/s (runs: {', '.join(f'{r:,.0f}' for r in rates)})"
    )
    print(
        f"dependency release, {CHAIN}-step chain × {runs} ({len(latencies)} edges), executor "
        f"{NAME!r} in another process: p50 {percentile(latencies, 0.5):.2f} ms, "
        f"p99 {percentile(latencies, 0.99):.2f} ms, max {max(latencies):.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", default=DEFAULT_PG_URL, help="an administrative server URL")
    args = parser.parse_args()
    store = PgStore(args.url)
    store.create()
    try:
        asyncio.run(run(store.url, args.runs))
    finally:
        store.drop()


if __name__ == "__main__":
    main()
