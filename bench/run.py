"""Run the benchmark suite: ``python -m bench.run`` (from the repository root).

Measures, for the in-memory, SQLite and PostgreSQL backends: bulk and one-by-one enqueue,
processing no-op jobs at concurrency 10 and 50 and with two worker processes, pick-up latency,
the same with 1,000,000 finished jobs in the table, worker memory, and (PostgreSQL) the bare-SQL
ceiling driven by pgbench. Prints a table and writes ``bench/RESULTS.md``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench import bigtable, ceiling, limits, scaling
from bench.apps import BenchJob
from bench.common import FULL, QUICK, Figure, Scratch, Sizes, fmt
from bench.inproc import latencies
from bench.stores import DEFAULT_PG_URL, PgStore, SqliteStore
from bench.workers import ROOT, Workers, sql_process
from rexecutor import enqueue_many
from rexecutor.backend import Backend
from rexecutor.backends import InMemoryBackend, backend_from_url
from rexecutor.backends.postgres import PostgresBackend

BACKENDS = ("memory", "sqlite", "postgres")
RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
#: The idle time of the sizes in use, for bench.inproc (set by main).
IDLE = [1.0]
#: Scenarios ``--only`` can run by themselves; their results have their own block in RESULTS.md.
ONLY = ("limits", "bigtable", "scaling")


def markers(only: str | None, writer: str = "python -m bench.run") -> tuple[str, str]:
    """The markers around the block a run writes (the whole suite's, or one scenario's, or
    another command's such as bench.peers)."""
    name = "results" if only is None else f"results:{only}"
    return (
        f"<!-- {name}:begin (written by {writer}; edit outside these markers) -->",
        f"<!-- {name}:end -->",
    )


KB_PER_MB = 1024


@dataclass
class Report:
    sizes: Sizes
    runs: int
    command: str
    started: datetime
    figures: dict[str, Figure] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)
    backends: tuple[str, ...] = BACKENDS
    errors: list[str] = field(default_factory=list)
    #: The one scenario run (``--only``), or None for the whole suite.
    only: str | None = None

    def add(self, key: str, label: str, unit: str, value: float, *, rate: bool = False) -> None:
        figure = self.figures.get(key)
        if figure is None:
            figure = self.figures[key] = Figure(key, label, unit, rate=rate)
        figure.samples.append(float(value))
        if self.only == "bigtable":  # a long scenario: show each figure as it comes
            log(f"{label}: {fmt(float(value), unit)} {unit}")

    def median(self, key: str) -> float | None:
        figure = self.figures.get(key)
        return figure.median if figure is not None and figure.samples else None


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


#: Called after a failed scenario, before it is tried again (PostgreSQL: wait for the server,
#: which the project's test suite restarts in one of its tests).
RECOVER: list[Callable[[], None]] = []


async def guarded(report: Report, what: str, call: Callable[[], Any]) -> Any:
    """Run one scenario, once more if it fails; a second failure is reported and the suite
    goes on with the next scenario."""
    for attempt in (1, 2):
        try:
            result = call()
            if asyncio.iscoroutine(result):
                result = await result
            return result
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            message = f"{what}: {type(exc).__name__}: {first}"
            log(f"FAILED (attempt {attempt}) {message}")
            report.errors.append(f"{message} (attempt {attempt})")
            for recover in RECOVER:
                recover()
    return None


# -- enqueue ------------------------------------------------------------------------------------


async def bulk_enqueue(backend: Backend, n: int) -> float:
    builders = [BenchJob.builder().with_data(0) for _ in range(n)]
    began = time.perf_counter()
    results = await enqueue_many(builders, backend)
    elapsed = time.perf_counter() - began
    assert len(results) == n
    return n / elapsed


async def bulk_enqueue_backend(backend: Backend, n: int) -> float:
    jobs = [BenchJob.builder().with_data(0).build() for _ in range(n)]
    began = time.perf_counter()
    results = await backend.enqueue_many(jobs)
    elapsed = time.perf_counter() - began
    assert len(results) == n
    return n / elapsed


async def one_by_one(backend: Backend, n: int) -> float:
    builders = [BenchJob.builder().with_data(0) for _ in range(n)]
    began = time.perf_counter()
    for builder in builders:
        await builder.enqueue_to_backend(backend)
    return n / (time.perf_counter() - began)


async def one_by_one_tasks(backend: Backend, n: int, tasks: int = 20) -> float:
    """``tasks`` coroutines at once, each enqueueing its share one job at a time (awaited)."""
    per = n // tasks

    async def share() -> None:
        for builder in [BenchJob.builder().with_data(0) for _ in range(per)]:
            await builder.enqueue_to_backend(backend)

    began = time.perf_counter()
    await asyncio.gather(*(share() for _ in range(tasks)))
    return per * tasks / (time.perf_counter() - began)


async def sqlite_enqueue_figures(report: Report, store: SqliteStore) -> None:
    """SQLite's one-by-one enqueue with ``synchronous=normal``, and from 20 tasks at once (their
    writes share commits, see ``backends/sqlite/connection``)."""
    n = report.sizes.one_by_one
    for what, url, call, label in (
        (
            "one_by_one_normal",
            store.url + "?synchronous=normal",
            one_by_one,
            f"one-by-one enqueue, {n:,}, synchronous=normal",
        ),
        ("one_by_one_tasks", store.url, one_by_one_tasks, f"one-by-one enqueue, {n:,}, 20 tasks"),
    ):
        store.reset()
        backend = backend_from_url(url)
        await backend.connect()
        try:
            value = await call(backend, n)
        finally:
            await backend.close()
        report.add(f"sqlite.{what}", label, "jobs/s", value, rate=True)
    store.reset()


async def enqueue_figures(
    report: Report, name: str, make: Callable[[], Any], reset: Callable[[], None]
) -> None:
    sizes = report.sizes
    for what, call, n, label in (
        ("bulk_enqueue", bulk_enqueue, sizes.bulk, f"bulk enqueue, {sizes.bulk:,} jobs"),
        (
            "bulk_enqueue_backend",
            bulk_enqueue_backend,
            sizes.bulk,
            f"bulk enqueue, {sizes.bulk:,} built jobs (backend.enqueue_many)",
        ),
        ("one_by_one", one_by_one, sizes.one_by_one, f"one-by-one enqueue, {sizes.one_by_one:,}"),
    ):
        reset()
        backend = make()
        await backend.connect()
        try:
            value = await call(backend, n)
        finally:
            await backend.close()
        report.add(f"{name}.{what}", label, "jobs/s", value, rate=True)
    reset()


# -- processing and latency with worker processes ---------------------------------------------


async def sql_latency(
    store: PgStore | SqliteStore,
    backend: Backend,
    scratch: Scratch,
    sizes: Sizes,
    prepare: Callable[[], None],
) -> dict[str, Any]:
    """Enqueue jobs one at a time at a steady rate from this process to an idle worker."""
    prepare()
    after = store.max_id()
    ledger = scratch.ledger()
    workers = Workers(store.worker_url, 1, 50, ledger, scratch.path)
    workers.start()
    try:
        await workers.wait_ready(store)
        await asyncio.sleep(sizes.idle)
        enqueued: dict[int, tuple[float, float]] = {}
        start = time.monotonic() + 0.05
        for i in range(sizes.latency_jobs):
            delay = start + i / sizes.latency_rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            called = time.time()
            job_id = await BenchJob.builder().with_data(1).enqueue_to_backend(backend)
            enqueued[int(job_id)] = (called, time.time())
        deadline = time.monotonic() + 120
        while store.count_complete(after) < sizes.latency_jobs:
            workers.alive()
            if time.monotonic() > deadline:
                raise RuntimeError("latency jobs did not complete in time")
            await asyncio.sleep(0.05)
    finally:
        workers.stop()
    return latencies(enqueued, ledger)


def inproc(scratch: Scratch, args: dict[str, Any], concurrency: int = 50) -> dict[str, Any]:
    """Run a bench.inproc scenario in a fresh interpreter."""
    env = dict(os.environ)
    env["BENCH_CONCURRENCY"] = str(concurrency)
    env["BENCH_LEDGER"] = scratch.ledger()
    args = {"idle": IDLE[0], **args}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "bench.inproc", json.dumps(args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"bench.inproc {args['scenario']} failed ({done.returncode}):\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result


def add_latency(report: Report, prefix: str, label: str, result: dict[str, Any]) -> None:
    for p in ("p50", "p95", "p99"):
        report.add(f"{prefix}_{p}", f"{label} {p}", "ms", result[p])
    report.add(
        f"{prefix}_p50_from_call",
        f"{label} p50, from the enqueue call",
        "ms",
        result["p50_from_call"],
    )


def add_process(report: Report, key: str, label: str, result: dict[str, Any]) -> None:
    report.add(key, label, "jobs/s", result["jobs_s"], rate=True)


def add_memory(report: Report, name: str, result: dict[str, Any]) -> None:
    report.add(f"{name}.rss_idle", "idle worker RSS", "MB", result["idle_rss_kb"] / KB_PER_MB)
    report.add(
        f"{name}.rss_peak",
        f"peak worker RSS, {report.sizes.process:,} jobs",
        "MB",
        result["peak_rss_kb"] / KB_PER_MB,
    )


# -- per backend ------------------------------------------------------------------------------


async def bench_memory(report: Report, scratch: Scratch) -> None:
    """The in-memory backend: only the node's own process can reach it, so every scenario
    runs inside one fresh process (bench.inproc)."""
    sizes, name = report.sizes, "memory"
    latency_args = {
        "scenario": "latency",
        "url": "memory://",
        "jobs": sizes.latency_jobs,
        "rate": sizes.latency_rate,
    }
    for run in range(report.runs):
        log(f"memory: run {run + 1}/{report.runs}")
        await guarded(
            report,
            "memory enqueue",
            lambda: enqueue_figures(report, name, InMemoryBackend, lambda: None),
        )
        for concurrency in (10, 50):
            args = {"scenario": "process", "url": "memory://", "n": sizes.process}
            result = await guarded(
                report,
                f"memory process c{concurrency}",
                lambda a=args, c=concurrency: inproc(scratch, a, c),
            )
            if result is not None:
                add_process(
                    report,
                    f"{name}.process_c{concurrency}",
                    f"process {sizes.process:,}, 1 process, concurrency {concurrency}",
                    result,
                )
                if concurrency == 50:
                    add_memory(report, name, result)
        result = await guarded(report, "memory latency", lambda: inproc(scratch, latency_args))
        if result is not None:
            add_latency(report, f"{name}.local_latency", "pick-up latency, same process", result)
    for run in range(report.runs):
        log(f"memory, {sizes.big_table:,} finished jobs: run {run + 1}/{report.runs}")
        args = {
            "scenario": "process",
            "url": "memory://",
            "n": sizes.process,
            "fill": sizes.big_table,
        }
        result = await guarded(
            report, "memory big-table process", lambda a=args: inproc(scratch, a)
        )
        if result is not None:
            add_process(
                report, f"{name}.big_process_c50", _big("process, concurrency 50", sizes), result
            )
        args = {**latency_args, "fill": sizes.big_table}
        result = await guarded(
            report, "memory big-table latency", lambda a=args: inproc(scratch, a)
        )
        if result is not None:
            add_latency(
                report,
                f"{name}.big_local_latency",
                _big("pick-up latency, same process", sizes),
                result,
            )


def _big(what: str, sizes: Sizes) -> str:
    return f"{what}, {sizes.big_table:,} finished jobs in the table"


SQLITE_COSTS = (
    ("roundtrip_us", "a no-op through the database thread"),
    ("noop_direct_us", "a no-op called directly"),
    ("get_job_thread_us", "get_job through the database thread"),
    ("get_job_direct_us", "the same SELECT called directly on the loop"),
)


async def bench_sql(report: Report, scratch: Scratch, store: PgStore | SqliteStore) -> None:
    """SQLite and PostgreSQL: worker processes started with the command line, jobs enqueued
    from this process."""
    sizes, name = report.sizes, store.kind

    def make() -> Backend:
        return backend_from_url(store.url)

    def local_latency(prepare: Callable[[], None]) -> dict[str, Any]:
        prepare()
        args = {
            "scenario": "latency",
            "url": store.url,
            "jobs": sizes.latency_jobs,
            "rate": sizes.latency_rate,
        }
        return inproc(scratch, args)

    backend = make()
    await backend.connect()  # creates the schema
    try:
        for run in range(report.runs):
            log(f"{name}: run {run + 1}/{report.runs}")
            await guarded(
                report, f"{name} enqueue", lambda: enqueue_figures(report, name, make, store.reset)
            )
            if isinstance(store, SqliteStore):
                options = functools.partial(sqlite_enqueue_figures, report, store)
                await guarded(report, "sqlite enqueue options", options)
            for procs, concurrency in ((1, 10), (1, 50), (2, 50)):
                result = await guarded(
                    report,
                    f"{name} process {procs}x c{concurrency}",
                    lambda p=procs, c=concurrency: sql_process(
                        store,
                        backend,
                        scratch,
                        sizes,
                        n=sizes.process,
                        procs=p,
                        concurrency=c,
                        prepare=store.reset,
                    ),
                )
                if result is None:
                    continue
                label = f"process {sizes.process:,}, {procs} process{'es' if procs > 1 else ''}, "
                label += f"concurrency {concurrency}{' each' if procs > 1 else ''}"
                key = f"{name}.process_{'2p' if procs > 1 else f'c{concurrency}'}"
                add_process(report, key, label, result)
                if (procs, concurrency) == (1, 50):
                    add_memory(report, name, result)
            result = await guarded(
                report,
                f"{name} latency",
                lambda: sql_latency(store, backend, scratch, sizes, store.reset),
            )
            if result is not None:
                add_latency(report, f"{name}.latency", "pick-up latency, another process", result)
            if isinstance(store, SqliteStore):
                result = await guarded(
                    report, f"{name} same-process latency", lambda: local_latency(store.reset)
                )
                if result is not None:
                    add_latency(
                        report, f"{name}.local_latency", "pick-up latency, same process", result
                    )
                args = {
                    "scenario": "sqlite_costs",
                    "url": "sqlite:///" + os.path.join(scratch.path, f"costs-{run}.db"),
                    "samples": sizes.ops_samples,
                }
                result = await guarded(report, "sqlite costs", lambda a=args: inproc(scratch, a))
                if result is not None:
                    for key, label in SQLITE_COSTS:
                        report.add(f"{name}.{key}", label, "µs", result[key])
        log(f"{name}: filling {sizes.big_table:,} finished jobs")

        def fill() -> bool:
            store.reset()
            store.fill_finished(sizes.big_table)
            return True

        filled = await guarded(report, f"{name} fill", fill)
        for run in range(report.runs if filled else 0):
            log(f"{name}, {sizes.big_table:,} finished jobs: run {run + 1}/{report.runs}")
            result = await guarded(
                report,
                f"{name} big-table process",
                lambda: sql_process(
                    store,
                    backend,
                    scratch,
                    sizes,
                    n=sizes.process,
                    procs=1,
                    concurrency=50,
                    prepare=store.tidy,
                ),
            )
            if result is not None:
                add_process(
                    report,
                    f"{name}.big_process_c50",
                    _big("process, concurrency 50", sizes),
                    result,
                )
            result = await guarded(
                report,
                f"{name} big-table latency",
                lambda: sql_latency(store, backend, scratch, sizes, store.tidy),
            )
            if result is not None:
                add_latency(
                    report,
                    f"{name}.big_latency",
                    _big("pick-up latency, another process", sizes),
                    result,
                )
            if isinstance(store, SqliteStore):
                result = await guarded(
                    report,
                    f"{name} big-table same-process latency",
                    lambda: local_latency(store.tidy),
                )
                if result is not None:
                    add_latency(
                        report,
                        f"{name}.big_local_latency",
                        _big("pick-up latency, same process", sizes),
                        result,
                    )
    finally:
        await backend.close()


def bench_ceiling(report: Report, store: PgStore) -> None:
    for run in range(report.runs):
        log(f"ceiling (pgbench): run {run + 1}/{report.runs}")
        for k in (1, 100):
            result = ceiling.run_cycle(store, k, report.sizes.ceiling_seconds)
            report.add(
                f"postgres.ceiling_k{k}",
                f"bare-SQL cycle, k={k}, pgbench {ceiling.CLIENTS} clients",
                "jobs/s",
                result["jobs_s"],
                rate=True,
            )


async def bench_limits(report: Report, scratch: Scratch, store: PgStore) -> None:
    """PostgreSQL, 2 worker processes: the executor without limits and with each limit in
    ``bench.limits.VARIANTS``, interleaved in every run so that drift in the machine's load
    falls on all of them alike; each limited figure is also divided by the same run's
    unlimited one."""
    sizes = report.sizes
    backend = backend_from_url(store.url)
    await backend.connect()
    try:
        for run in range(report.runs):
            log(f"limits: run {run + 1}/{report.runs}")
            unlimited: float | None = None
            for variant in limits.VARIANTS:
                result = await guarded(
                    report,
                    f"limits {variant.key}",
                    lambda v=variant: limits.measure(store, backend, scratch, sizes, v),
                )
                if result is None:
                    continue
                key = f"postgres.limits_{variant.key}"
                label = (
                    f"process {sizes.process:,}, {limits.PROCS} processes, concurrency "
                    f"{limits.CONCURRENCY} each, {variant.label}"
                )
                report.add(key, label, "jobs/s", result["jobs_s"], rate=True)
                report.add(
                    f"{key}_peak",
                    f"peak executing at once, {variant.label} (swept from the rows)",
                    "jobs",
                    result["global"],
                )
                if variant.partition_max is not None:
                    report.add(
                        f"{key}_peak_per_key",
                        f"peak executing in one key, {variant.label} (swept from the rows)",
                        "jobs",
                        result["per_key"],
                    )
                if variant is limits.NONE:
                    unlimited = result["jobs_s"]
                elif unlimited:
                    report.add(
                        f"{key}_ratio",
                        f"{variant.label} ÷ no limits, same run",
                        "×",
                        result["jobs_s"] / unlimited,
                    )
    finally:
        await backend.close()


async def bench_bigtable(
    report: Report, scratch: Scratch, store: PgStore, rows: int, layout: str | None
) -> None:
    """PostgreSQL with ``rows`` finished jobs (issue 16): processing and pick-up against an
    empty table, then a steady load without and during a prune of them all (see
    ``bench.bigtable``).

    The empty table is a twin database measured alternately with the big one in every run
    (empty first in even runs, big first in odd ones), so that both see the same machine:
    measured one after the other, the second figure also carried the fill's checkpoints and
    whatever else the machine did meanwhile. The fill is done once; each figure's jobs are
    deleted after it, so every run starts from the same tables. The prune, which empties the
    big table, comes last, once.
    """
    sizes = report.sizes
    report.facts["layout"] = layout or "plain"
    report.facts["big table"] = f"{rows:,} finished jobs over {bigtable.DAYS} days"
    twin = PgStore(store.admin_url)
    twin.create()
    opened: list[Backend] = []
    try:
        for each in (store, twin):
            backend = (
                PostgresBackend(each.url, layout=layout) if layout else backend_from_url(each.url)
            )
            await backend.connect()
            opened.append(backend)
        backend, twin_backend = opened
        seconds = await bigtable.fill(store, rows)
        report.add("postgres.bigtable_fill_s", f"fill {rows:,} jobs + VACUUM ANALYZE", "s", seconds)
        for run in range(report.runs):
            log(f"bigtable: run {run + 1}/{report.runs}")
            order = (False, True) if run % 2 == 0 else (True, False)
            for big in order:
                on, b = (store, backend) if big else (twin, twin_backend)
                tag, what = ("big_", _rows("", rows)) if big else ("", ", empty table")
                base = on.max_id()
                result = await guarded(
                    report,
                    f"bigtable process{tag}",
                    lambda on=on, b=b: sql_process(
                        on,
                        b,
                        scratch,
                        sizes,
                        n=sizes.process,
                        procs=1,
                        concurrency=50,
                        prepare=on.tidy,
                    ),
                )
                if result is not None:
                    add_process(
                        report,
                        f"postgres.bigtable_{tag}process_c50",
                        f"process {sizes.process:,}, 1 process, concurrency 50{what}",
                        result,
                    )
                result = await guarded(
                    report,
                    f"bigtable latency{tag}",
                    lambda on=on, b=b: sql_latency(on, b, scratch, sizes, on.tidy),
                )
                if result is not None:
                    add_latency(
                        report, f"postgres.bigtable_{tag}latency", f"pick-up latency{what}", result
                    )
                on.delete_after(base)
        for pruning in (False, True):
            load, pruned = await bigtable.steady(
                store,
                backend,
                scratch,
                bigtable.QUICK_SECONDS if sizes is QUICK else bigtable.SECONDS,
                bigtable.prune_all(store, backend) if pruning else None,
            )
            tag = "prune_" if pruning else "steady_"
            what = "during the prune" if pruning else "without a prune"
            report.add(
                f"postgres.bigtable_{tag}jobs_s",
                f"steady load, throughput {what}",
                "jobs/s",
                load.jobs_s,
                rate=True,
            )
            report.add(
                f"postgres.bigtable_{tag}pickup_p99",
                f"steady load, pick-up p99 {what}",
                "ms",
                load.pickup["p99"],
            )
            report.add(
                f"postgres.bigtable_{tag}pickup_max",
                f"steady load, worst pick-up {what}",
                "ms",
                load.pickup_max_ms,
            )
            report.add(
                f"postgres.bigtable_{tag}ack_max",
                f"steady load, worst start-to-stored-completion {what}",
                "ms",
                load.worst_ack_ms,
            )
            if pruned is not None:
                report.add("postgres.bigtable_prune_rows", "jobs pruned", "jobs", pruned["pruned"])
                report.add(
                    "postgres.bigtable_prune_s",
                    f"prune duration (batches of {bigtable.BATCH})",
                    "s",
                    pruned["seconds"],
                )
                report.add(
                    "postgres.bigtable_prune_longest_ms",
                    "longest prune transaction seen (sampled every 20 ms)",
                    "ms",
                    pruned["longest_ms"],
                )
    finally:
        for opened_backend in opened:
            await opened_backend.close()
        twin.drop()


def _rows(what: str, rows: int) -> str:
    return f"{what}, {rows:,} finished jobs in the table"


def bigtable_targets(report: Report) -> list[Target]:
    """Issue 16: with the big table, throughput and pick-up within 20 % of the empty table's,
    and the prune does not stall the workers (their throughput during it within 20 %)."""
    m = report.median
    out = []
    for what, big, empty, higher in (
        ("throughput", "big_process_c50", "process_c50", True),
        ("pick-up p50", "big_latency_p50", "latency_p50", False),
        ("pick-up p99", "big_latency_p99", "latency_p99", False),
        ("steady throughput during the prune", "prune_jobs_s", "steady_jobs_s", True),
    ):
        b, e = m(f"postgres.bigtable_{big}"), m(f"postgres.bigtable_{empty}")
        status, change = _within(b, e, higher)
        unit = "jobs/s" if higher else "ms"
        detail = f"{change} ({fmt(b, unit)} vs {fmt(e, unit)} {unit})"
        out.append(Target(f"PostgreSQL big table: {what} within 20 %", status, detail))
    return out


async def bench_scaling(report: Report, scratch: Scratch, store: PgStore) -> None:
    """PostgreSQL, 1 to 8 worker processes (``bench.scaling.SHAPES``), interleaved in every
    run: jobs/s, the CPU shares of PostgreSQL and of the workers, and the double-run check."""
    sizes = report.sizes
    n = scaling.jobs_per_run(sizes)
    backend = backend_from_url(store.url)
    await backend.connect()
    try:
        for run in range(report.runs):
            log(f"scaling: run {run + 1}/{report.runs}")
            for procs, concurrency in scaling.SHAPES:
                result = await guarded(
                    report,
                    f"scaling {procs}x c{concurrency}",
                    lambda p=procs, c=concurrency: scaling.measure(
                        store, backend, scratch, sizes, p, c
                    ),
                )
                if result is None:
                    continue
                key = scaling.key(procs, concurrency)
                shape = f"{procs} process{'es' if procs > 1 else ''} × concurrency {concurrency}"
                report.add(key, f"process {n:,}, {shape}", "jobs/s", result["jobs_s"], rate=True)
                for part, what in (
                    ("pg_workers", "PostgreSQL CPU, the workers' backends"),
                    ("pg_server", "PostgreSQL CPU, every server process"),
                    ("workers", "worker processes' CPU"),
                    ("machine", "whole machine busy (any load)"),
                ):
                    report.add(f"{key}_{part}", f"{shape}: {what}", "% of machine", result[part])
                report.add(
                    f"{key}_busiest",
                    f"{shape}: busiest node's share of the jobs",
                    "%",
                    result["busiest"],
                )
                report.add(
                    f"{key}_twice",
                    f"{shape}: jobs run or claimed twice (ledger and rows)",
                    "jobs",
                    result["twice"],
                )
    finally:
        await backend.close()


# -- targets ------------------------------------------------------------------------------------


@dataclass
class Target:
    text: str
    status: str
    detail: str


def _at_least(value: float | None, bound: float | None) -> str:
    if value is None or bound is None:
        return "not measured"
    return "met" if value >= bound else "missed"


def _at_most(value: float | None, bound: float | None) -> str:
    if value is None or bound is None:
        return "not measured"
    return "met" if value <= bound else "missed"


def _within(big: float | None, empty: float | None, higher_is_better: bool) -> tuple[str, str]:
    if big is None or empty is None:
        return "not measured", ""
    change = (big - empty) / empty
    worse = -change if higher_is_better else change
    return ("met" if worse <= 0.20 else "missed"), f"{change:+.0%}"


def targets(report: Report) -> list[Target]:
    m = report.median
    out: list[Target] = []
    k1 = m("postgres.ceiling_k1")

    def ratio(value: float | None) -> str:
        return f"{value / k1:.2f}× k=1" if value is not None and k1 else "—"

    if report.only == "bigtable":
        return bigtable_targets(report)
    if "postgres" in report.backends and report.only is None:
        one = m("postgres.process_c50")
        out.append(
            Target(
                "PostgreSQL, 1 worker process ≥ 1.5× the bare-SQL k=1 cycle",
                _at_least(one, 1.5 * k1 if k1 else None),
                f"{fmt(one, 'jobs/s')} jobs/s = {ratio(one)} (concurrency 50)",
            )
        )
        two = m("postgres.process_2p")
        out.append(
            Target(
                "PostgreSQL, 2 worker processes ≥ 2× the bare-SQL k=1 cycle",
                _at_least(two, 2 * k1 if k1 else None),
                f"{fmt(two, 'jobs/s')} jobs/s = {ratio(two)}",
            )
        )
        best = max((v for v in (m("postgres.process_c10"), one) if v is not None), default=None)
        out.append(
            Target(
                "PostgreSQL, aim: 10,000 no-op jobs/s from one process",
                _at_least(best, 10_000),
                f"best single process: {fmt(best, 'jobs/s')} jobs/s",
            )
        )
        bulk = m("postgres.bulk_enqueue")
        out.append(
            Target(
                "PostgreSQL bulk enqueue ≥ 100,000 jobs/s",
                _at_least(bulk, 100_000),
                f"{fmt(bulk, 'jobs/s')} jobs/s (backend.enqueue_many of built jobs: "
                f"{fmt(m('postgres.bulk_enqueue_backend'), 'jobs/s')})",
            )
        )
        p50, p99 = m("postgres.latency_p50"), m("postgres.latency_p99")
        out.append(
            Target("PostgreSQL pick-up p50 ≤ 1.5 ms", _at_most(p50, 1.5), f"{fmt(p50, 'ms')} ms")
        )
        out.append(
            Target("PostgreSQL pick-up p99 ≤ 3 ms", _at_most(p99, 3.0), f"{fmt(p99, 'ms')} ms")
        )
    if "postgres" in report.backends and report.only in (None, "limits"):
        out += limit_targets(report)
    if report.only == "scaling":
        out += scaling_targets(report)
    if report.only is not None:
        return out
    if "sqlite" in report.backends:
        local = m("sqlite.local_latency_p50")
        out.append(
            Target(
                "SQLite pick-up, same process: p50 ≤ 1 ms",
                _at_most(local, 1.0),
                f"{fmt(local, 'ms')} ms",
            )
        )
        other = m("sqlite.latency_p50")
        out.append(
            Target(
                "SQLite pick-up, another process: p50 ≤ 50 ms",
                _at_most(other, 50.0),
                f"{fmt(other, 'ms')} ms",
            )
        )
        one = m("sqlite.process_c50")
        out.append(
            Target(
                "SQLite, 1 worker process ≥ 5,000 jobs/s",
                _at_least(one, 5_000),
                f"{fmt(one, 'jobs/s')} jobs/s (concurrency 50)",
            )
        )
    for name in report.backends:
        idle = m(f"{name}.rss_idle")
        out.append(
            Target(
                f"{name}: idle worker RSS ≤ 60 MB", _at_most(idle, 60.0), f"{fmt(idle, 'MB')} MB"
            )
        )
    for name in report.backends:
        status, change = _within(
            m(f"{name}.big_process_c50"), m(f"{name}.process_c50"), higher_is_better=True
        )
        out.append(
            Target(
                f"{name}: throughput with {report.sizes.big_table:,} finished jobs within 20 %",
                status,
                f"{change} ({fmt(m(f'{name}.big_process_c50'), 'jobs/s')} vs "
                f"{fmt(m(f'{name}.process_c50'), 'jobs/s')} jobs/s)",
            )
        )
        for prefix in ("latency", "local_latency"):
            empty, big = m(f"{name}.{prefix}_p50"), m(f"{name}.big_{prefix}_p50")
            if empty is None:
                continue
            status, change = _within(big, empty, higher_is_better=False)
            where = "same process" if prefix == "local_latency" else "another process"
            out.append(
                Target(
                    f"{name}: pick-up p50 ({where}) with {report.sizes.big_table:,} finished jobs "
                    "within 20 %",
                    status,
                    f"{change} ({fmt(big, 'ms')} vs {fmt(empty, 'ms')} ms)",
                )
            )
    return out


def limit_targets(report: Report) -> list[Target]:
    """Issue 13: the global limit costs under 20 %, and no limit is ever exceeded."""
    m = report.median
    glob = f"global_max_concurrency = {limits.GLOBAL_MAX}"
    ratio = m("postgres.limits_global_ratio")
    out = [
        Target(
            f"PostgreSQL, 2 processes: {glob} costs under 20 %",
            _at_least(ratio, 0.8),
            "—"
            if ratio is None
            else f"{ratio:.2f}× no limits (median of the runs' ratios); "
            f"{fmt(m('postgres.limits_global'), 'jobs/s')} against "
            f"{fmt(m('postgres.limits_none'), 'jobs/s')} jobs/s",
        )
    ]
    for key, bound, what in (
        ("postgres.limits_global_peak", limits.GLOBAL_MAX, f"{glob}: executing at once"),
        (
            "postgres.limits_partition_peak_per_key",
            limits.PER_KEY,
            f"partition_max_concurrency = {limits.PER_KEY}: executing at once in one key",
        ),
    ):
        figure = report.figures.get(key)
        highest = figure.high if figure is not None and figure.samples else None
        out.append(
            Target(
                f"PostgreSQL, {what} never above {bound} (swept from the rows)",
                _at_most(highest, bound),
                f"highest peak of the runs: {fmt(highest, 'jobs')}",
            )
        )
    return out


def scaling_targets(report: Report) -> list[Target]:
    """Issue 16: no job runs twice with many nodes, in any run of any shape."""
    twice = [
        f for k, f in report.figures.items() if k.endswith("_twice") and k.startswith("postgres.")
    ]
    runs = sum(len(f.samples) for f in twice)
    worst = max((f.high for f in twice if f.samples), default=None)
    return [
        Target(
            "PostgreSQL, 1 to 8 nodes: no job run or claimed twice (ledger and rows, every run)",
            _at_most(worst, 0),
            f"{runs} runs checked, most double runs in one: {fmt(worst, 'jobs')}",
        )
    ]


# -- output -------------------------------------------------------------------------------------


def tables(report: Report) -> str:
    k1, k100 = report.median("postgres.ceiling_k1"), report.median("postgres.ceiling_k100")
    lines: list[str] = []
    titles = {"memory": "In-memory", "sqlite": "SQLite", "postgres": "PostgreSQL"}
    for name in report.backends:
        lines += [
            f"### {titles[name]}",
            "",
            "| figure | median | min | max | unit | ÷ k=1 ceiling | ÷ k=100 ceiling |",
            "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
        ]
        for key, figure in report.figures.items():
            if not key.startswith(name + ".") or not figure.samples:
                continue
            r1 = f"{figure.median / k1:.2f}" if figure.rate and k1 else ""
            r100 = f"{figure.median / k100:.2f}" if figure.rate and k100 else ""
            lines.append(
                f"| {figure.label} | {fmt(figure.median, figure.unit)} | "
                f"{fmt(figure.low, figure.unit)} | {fmt(figure.high, figure.unit)} | "
                f"{figure.unit} | {r1} | {r100} |"
            )
        lines.append("")
    return "\n".join(lines)


def target_table(report: Report) -> str:
    lines = ["| target | status | measured (median) |", "| --- | --- | --- |"]
    for t in targets(report):
        mark = {"met": "✅ met", "missed": "❌ missed"}.get(t.status, t.status)
        lines.append(f"| {t.text} | {mark} | {t.detail} |")
    return "\n".join(lines)


def machine_facts(report: Report) -> None:
    facts = report.facts
    facts["cpus"] = str(os.cpu_count())
    facts["python"] = platform.python_version()
    facts["platform"] = platform.platform()
    facts["sqlite"] = sqlite3.sqlite_version
    try:
        import psycopg

        facts["psycopg"] = f"{psycopg.__version__} ({psycopg.pq.__impl__})"
    except ImportError:  # pragma: no cover
        pass
    try:
        with open("/proc/meminfo") as f:
            total = int(f.readline().split()[1])
        facts["memory"] = f"{total / 1024 / 1024:.0f} GiB"
    except OSError:  # pragma: no cover
        pass
    facts["load at start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())


def jobs_per_run(report: Report) -> int:
    """The jobs each processing run of a ``--only`` scenario handles."""
    return scaling.jobs_per_run(report.sizes) if report.only == "scaling" else report.sizes.process


def render(report: Report) -> str:
    s = report.sizes
    facts = "\n".join(f"- {k}: {v}" for k, v in report.facts.items())
    return "\n".join(
        [
            f"Command: `{report.command}`",
            "",
            f"Date: {report.started:%Y-%m-%d %H:%M} UTC; {report.runs} runs per figure "
            "(median, min, max); "
            f"took {report.facts.get('duration', '?')}.",
            "",
            "Machine and settings:",
            "",
            facts,
            "",
            f"Sizes: processing {jobs_per_run(report):,} jobs per run."
            if report.only
            else f"Sizes: bulk {s.bulk:,}; one-by-one {s.one_by_one:,}; processing "
            f"{s.process:,}; latency {s.latency_jobs} jobs at {s.latency_rate:g}/s; big table "
            f"{s.big_table:,} finished jobs; pgbench {s.ceiling_seconds} s per run.",
            "",
            "## Figures",
            "",
            *([scaling.summary(report.figures), ""] if report.only == "scaling" else []),
            tables(report),
            "## Targets",
            "",
            target_table(report),
            "",
            *(
                ["## Failed scenarios", "", *(f"- {e}" for e in report.errors), ""]
                if report.errors
                else []
            ),
        ]
    )


def write_results(
    path: str, body: str, only: str | None = None, writer: str = "python -m bench.run"
) -> None:
    begin, end = markers(only, writer)
    block = f"{begin}\n{body}\n{end}"
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
        if begin in text and end in text:
            head, _, rest = text.partition(begin)
            _, _, tail = rest.partition(end)
            text = head + block + tail
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    else:
        text = f"# Benchmark results\n\n{block}\n"
    with open(path, "w") as f:
        f.write(text)


# -- main ---------------------------------------------------------------------------------------


async def run(opts: argparse.Namespace, report: Report) -> None:
    scratch = Scratch()
    try:
        if "postgres" in report.backends:
            pg = PgStore(opts.pg_url)
            pg.create()
            RECOVER.append(pg.wait_until_up)
            try:
                report.facts["postgresql"] = (
                    pg.server_version()
                    + ", "
                    + ", ".join(f"{k}={v}" for k, v in pg.settings().items())
                )
                backend = backend_from_url(pg.url)
                await backend.connect()  # migrate before pgbench shares the database
                await backend.close()
                if report.only is None:
                    await guarded(report, "ceiling", lambda: bench_ceiling(report, pg))
                    await bench_sql(report, scratch, pg)
                if report.only in (None, "limits"):
                    await bench_limits(report, scratch, pg)
                if report.only == "bigtable":
                    rows = opts.rows or (bigtable.QUICK_ROWS if opts.quick else bigtable.ROWS)
                    await bench_bigtable(report, scratch, pg, rows, opts.layout)
                if report.only == "scaling":
                    await bench_scaling(report, scratch, pg)
            finally:
                RECOVER.remove(pg.wait_until_up)
                pg.drop()
        if "sqlite" in report.backends:
            lite = SqliteStore(scratch.path)
            try:
                await bench_sql(report, scratch, lite)
            finally:
                lite.drop()
        if "memory" in report.backends:
            await bench_memory(report, scratch)
    finally:
        scratch.remove()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="comma-separated: memory,sqlite,postgres"
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("REXECUTOR_BENCH_PG_URL")
        or os.environ.get("REXECUTOR_TEST_PG_URL")
        or DEFAULT_PG_URL,
        help="maintenance database to create the rexecutor_bench_* database from",
    )
    parser.add_argument(
        "--rows", type=int, default=None, help="--only bigtable: finished jobs to fill"
    )
    parser.add_argument(
        "--layout", choices=("partitioned",), default=None, help="--only bigtable: the layout"
    )
    parser.add_argument("--output", default=RESULTS, help="where to write the results")
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    parser.add_argument("--json", help="also write every figure as JSON to this file")
    parser.add_argument(
        "--only",
        choices=ONLY,
        help="run one scenario (limits: PostgreSQL, 2 processes, with and without limits; "
        "bigtable: PostgreSQL with millions of finished jobs, and pruning them; "
        "scaling: PostgreSQL, 1 to 8 processes); its results go into their own block of the "
        "results file",
    )
    opts = parser.parse_args(argv)
    wanted = tuple(b.strip() for b in opts.backends.split(",") if b.strip())
    unknown = set(wanted) - set(BACKENDS)
    if unknown or not wanted:
        parser.error(f"unknown backends: {', '.join(sorted(unknown)) or '(none)'}")
    opts.backends = tuple(b for b in BACKENDS if b in wanted)
    if opts.only in ("limits", "bigtable", "scaling"):
        if "postgres" not in opts.backends:
            parser.error(f"--only {opts.only} runs on PostgreSQL: leave postgres in --backends")
        opts.backends = ("postgres",)
    if opts.runs < 1:
        parser.error("--runs must be at least 1")
    return opts


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    # SIGTERM unwinds like Ctrl-C, so that the run still drops its database and scratch files.
    signal.signal(signal.SIGTERM, _interrupt)
    command = "python -m bench.run" + (" " + shlex.join(sys.argv[1:]) if argv is None else "")
    if argv is not None:
        command = "python -m bench.run " + shlex.join(argv)
    report = Report(
        sizes=QUICK if opts.quick else FULL,
        runs=opts.runs,
        command=command.strip(),
        started=datetime.now(UTC),
        backends=opts.backends,
        only=opts.only,
    )
    IDLE[0] = report.sizes.idle
    machine_facts(report)
    began = time.monotonic()
    asyncio.run(run(opts, report))
    report.facts["load at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    minutes, seconds = divmod(int(time.monotonic() - began), 60)
    report.facts["duration"] = f"{minutes} min {seconds} s"
    body = render(report)
    print(body)
    if not opts.no_write:
        block = opts.only if opts.layout is None else f"{opts.only}-{opts.layout}"
        write_results(opts.output, body, block)
        log(f"wrote {opts.output}")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(
                {
                    "figures": {k: v.to_json() for k, v in report.figures.items()},
                    "targets": [t.__dict__ for t in targets(report)],
                    "facts": report.facts,
                    "errors": report.errors,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
