"""Many nodes on one PostgreSQL (issue 16): throughput, where the CPU goes, and no double runs.

Each shape in ``SHAPES`` is a number of worker processes and the concurrency of each. A run of
one shape starts the workers (``bench.workers.Workers``), waits until every one has beaten,
enqueues ``jobs_per_run`` jobs in one bulk call and waits until every one is complete. Jobs/s
comes from the rows: the first ``attempted_at`` to the last ``completed_at``.

CPU is read from ``/proc/<pid>/stat`` (user + system time) right after the enqueue returned
and again once every job is complete, and shown as a share of the whole machine
(``os.cpu_count()`` cores × that wall time): for the PostgreSQL backends serving the workers
(found by the ``application_name`` the workers' URL carries), for every ``postgres`` process
on the server (which includes whatever else uses the server meanwhile, and the driver's
completion poll), for the worker processes, and for the whole machine (``/proc/stat``: what
else ran meanwhile shows as the gap between it and the rest). A server process that ends
inside the window takes its time with it; the pools keep their connections, so the workers'
backends do not.

Every run is also checked from what it left behind: each job ran exactly once by the jobs'
own ledger (``bench.apps`` records every execution of data ``1``), and each row was claimed
once (``attempt`` is 1: every claim adds one, so two claims of one job, by one node or two,
would show). A failed check fails the run.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from bench.apps import BenchJob
from bench.common import Figure, Scratch, Sizes, fmt
from bench.stores import PgStore
from bench.workers import Workers
from rexecutor import enqueue_many
from rexecutor.backend import Backend

#: (worker processes, concurrency of each), in the order every run measures them.
SHAPES = ((1, 10), (2, 10), (4, 10), (8, 5), (1, 50), (2, 50), (4, 50))
#: Names the workers' connections in ``pg_stat_activity``.
APP_NAME = "rexecutor-bench-scaling"
CORES = os.cpu_count() or 1
_TICK = os.sysconf("SC_CLK_TCK")


def key(procs: int, concurrency: int) -> str:
    """The figure key of a shape's jobs/s (its other figures add a suffix)."""
    return f"postgres.scaling_{procs}p_c{concurrency}"


def summary(figures: Mapping[str, Figure]) -> str:
    """The medians of every shape side by side, one row each, so that where PostgreSQL's share
    stops growing with the workers reads down a column."""
    columns = ("", "_pg_workers", "_pg_server", "_workers", "_machine", "_busiest", "_twice")
    lines = [
        "| processes × concurrency | jobs/s | PostgreSQL, workers' backends | PostgreSQL, "
        "whole server | workers | whole machine | busiest node | run twice |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for procs, concurrency in SHAPES:
        cells = []
        for suffix in columns:
            figure = figures.get(key(procs, concurrency) + suffix)
            value = figure.median if figure is not None and figure.samples else None
            unit = figure.unit if figure is not None else ""
            percent = value is not None and unit.startswith("%")
            cells.append(fmt(value, unit) + (" %" if percent else ""))
        lines.append(f"| {procs} × {concurrency} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Medians. CPU is a share of the whole machine (every core) over the run; "
        '"whole machine" is every process on it, this run\'s and any other load.',
    ]
    return "\n".join(lines)


def jobs_per_run(sizes: Sizes) -> int:
    """Jobs each shape processes: twice the processing figure's (20,000 at full size)."""
    return 2 * sizes.process


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds ``pid`` has used, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may hold spaces: the fields follow the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def postgres_pids() -> set[int]:
    """Every process on the machine whose command name is ``postgres``."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == "postgres":
                    pids.add(int(entry))
        except OSError:
            continue
    return pids


def machine_ticks() -> tuple[int, int]:
    """Clock ticks every core of the machine has spent busy, and in all (``/proc/stat``)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    # idle and iowait are the only idle columns; guest time is already counted in user time.
    total = sum(ticks[:8])
    return total - ticks[3] - ticks[4], total


def snapshot(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds of each of ``pids`` that still runs."""
    found = {pid: cpu_seconds(pid) for pid in pids}
    return {pid: used for pid, used in found.items() if used is not None}


def used(before: Mapping[int, float], after: Mapping[int, float], pids: Iterable[int]) -> float:
    """CPU seconds ``pids`` used between the snapshots (a process born in between counts from
    zero)."""
    return sum(after[pid] - before.get(pid, 0.0) for pid in pids if pid in after)


def share(seconds: float, wall: float) -> float:
    """``seconds`` of CPU as a percentage of every core of the machine over ``wall`` seconds."""
    return 100.0 * seconds / (CORES * wall)


def ran_twice(ledger: Iterable[str], ids: Iterable[int]) -> tuple[int, int]:
    """From the ledger's lines: the executions beyond the first of any job, and how many of
    ``ids`` never ran."""
    runs = Counter(int(line.split()[0]) for line in ledger if line.strip())
    extra = sum(count - 1 for count in runs.values() if count > 1)
    missing = sum(1 for job_id in ids if runs[job_id] == 0)
    return extra, missing


def worker_backends(store: PgStore) -> set[int]:
    """The server processes of the workers' connections."""
    rows = store.conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APP_NAME,)
    ).fetchall()
    return {int(r[0]) for r in rows}


def claims(store: PgStore, after: int) -> dict[str, Any]:
    """What the rows after ``after`` say: their ids and statuses, how many were claimed more
    than once, and how many jobs each node ran."""
    rows = store.conn.execute(
        "SELECT id, status, attempt, attempted_by FROM rexecutor_jobs WHERE id > %s", (after,)
    ).fetchall()
    per_node = Counter(str(r[3]) for r in rows)
    return {
        "ids": [int(r[0]) for r in rows],
        "incomplete": sum(1 for r in rows if r[1] != "complete"),
        "claimed_again": sum(1 for r in rows if int(r[2]) != 1),
        "per_node": per_node,
    }


def verify(store: PgStore, after: int, ledger: str, n: int) -> dict[str, Any]:
    """Check a finished run from its rows and ledger (raises ``RuntimeError`` on any double
    run, double claim or missing job); returns its jobs/s, the jobs each node ran and the
    double runs (0)."""
    count, seconds = store.window(after)
    rows = claims(store, after)
    with open(ledger) as f:
        extra, missing = ran_twice(f, rows["ids"])
    problems = {
        "jobs not completed": n - count,
        "rows not complete": rows["incomplete"],
        "rows claimed more than once": rows["claimed_again"],
        "extra executions in the ledger": extra,
        "jobs missing from the ledger": missing,
    }
    failed = [f"{what}: {value}" for what, value in problems.items() if value]
    if failed:
        raise RuntimeError("; ".join(failed))
    return {
        "jobs_s": n / seconds,
        "per_node": rows["per_node"],
        "twice": extra + rows["claimed_again"],
    }


async def measure(
    store: PgStore,
    backend: Backend,
    scratch: Scratch,
    sizes: Sizes,
    procs: int,
    concurrency: int,
) -> dict[str, Any]:
    """One run of one shape: jobs/s, CPU shares (percent of the machine) and the checks."""
    n = jobs_per_run(sizes)
    store.reset()
    after = store.max_id()
    ledger = scratch.ledger()
    url = f"{store.worker_url}?application_name={APP_NAME}"
    workers = Workers(url, procs, concurrency, ledger, scratch.path)
    workers.start()
    try:
        await workers.wait_ready(store)
        await asyncio.sleep(sizes.idle)
        worker_pids = {p.pid for p in workers.procs}
        await enqueue_many([BenchJob.builder().with_data(1) for _ in range(n)], backend)
        began = time.monotonic()
        before = snapshot(postgres_pids() | worker_pids)
        machine = machine_ticks()
        deadline = began + 600
        while store.count_complete(after) < n:
            workers.alive()
            if time.monotonic() > deadline:
                raise RuntimeError("jobs did not complete in time")
            await asyncio.sleep(0.1)
        server = postgres_pids()
        ours = worker_backends(store)
        end = snapshot(server | worker_pids)
        busy, total = (b - a for a, b in zip(machine, machine_ticks(), strict=True))
        wall = time.monotonic() - began
    finally:
        workers.stop()
    rows = verify(store, after, ledger, n)
    if not ours:
        raise RuntimeError(f"no server process found with application_name {APP_NAME!r}")
    per_node: Counter[str] = rows["per_node"]
    return {
        "jobs_s": rows["jobs_s"],
        "pg_workers": share(used(before, end, ours), wall),
        "pg_server": share(used(before, end, server), wall),
        "workers": share(used(before, end, worker_pids), wall),
        "machine": 100.0 * busy / total if total else 0.0,
        "twice": float(rows["twice"]),
        "busiest": max(per_node.values()) / n * 100.0,
    }
