"""Eight nodes on PostgreSQL starting and stopping at random while jobs flow (issue 16).

Worker processes (the CLI ``worker`` command) come and go for ``CHURN_SECONDS``: stopped
with SIGTERM (graceful) or SIGKILL, the oldest node among them killed on purpose, between 3
and 8 alive at any moment. Meanwhile the test enqueues sleeping ``ledger`` jobs and ``hog``
jobs (pruned every second once complete), and a cron job ticks every second. Every node runs
the housekeeping (cron, pruning, rescue); on PostgreSQL pruning and rescue are done by one node
at a time under an advisory lock, and each cron tick is enqueued once by its uniqueness key.

Asserted from the rows and the ledger the jobs write: every job completed, once, except a run
cut short by a SIGKILL, which was rescued and finished by another node after the kill; the
rows count one attempt per claim and one ``orphaned`` error per rescue; each cron tick was
enqueued exactly once with no tick missing while nodes died, the oldest included; pruning kept
going; the killed nodes were forgotten and only the live ones remain in the nodes table.
About 35 s.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import signal
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from rexecutor import ErrorType, Job, JobStatus, Where
from rexecutor._cron_jobs import TICK_TAG_PREFIX
from rexecutor.backends import backend_from_url
from tests.support.processes import start_worker, stop, wait_until
from tests.support.queue import seed

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

NODES = 8
FEWEST = 3
CHURN_SECONDS = 20.0
STEP_SECONDS = 0.5
#: Each step enqueues this many ledger jobs of JOB_MS and hog jobs (no-ops, pruned).
LEDGER_PER_STEP = 80
HOG_PER_STEP = 10
JOB_MS = 200
HEARTBEAT_MS = 300
#: Long enough that a live node on this busy 2-core machine is never taken for dead.
RESCUE_MS = 2500
ENV = {
    "CRON": "* * * * * *",
    "PRUNE": "hog",
    "HEARTBEAT_MS": str(HEARTBEAT_MS),
    "RESCUE_MS": str(RESCUE_MS),
}


@dataclass
class Node:
    """One worker process and how it ended."""

    process: subprocess.Popen[str]
    started: float
    signal: int | None = None
    ended: float | None = None


@dataclass(frozen=True)
class Run:
    """One execution, as the job wrote it to the ledger."""

    attempt: int
    pid: int


def read_ledger(ledger: Path) -> dict[int, list[Run]]:
    runs: dict[int, list[Run]] = defaultdict(list)
    for line in ledger.read_text().splitlines():
        job_id, attempt, pid = line.split()
        runs[int(job_id)].append(Run(int(attempt), int(pid)))
    return runs


def snapshot(url: str) -> tuple[list[Job[Any, Any]], set[int]]:
    """Every stored job, and the pids of the nodes the table lists."""

    async def read() -> tuple[list[Job[Any, Any]], set[int]]:
        async with backend_from_url(url) as backend:
            jobs = await backend.query(Where.everything().node)
            return jobs, {n.pid for n in await backend.list_nodes()}

    return asyncio.run(read())


def test_eight_nodes_starting_and_stopping_at_random(pg: str, tmp_path: Path) -> None:
    seed_value = random.randrange(1 << 30)
    print(f"random seed {seed_value}")
    rng = random.Random(seed_value)
    ledger = tmp_path / "ledger"
    nodes: list[Node] = []

    def start() -> None:
        nodes.append(Node(start_worker(pg, ledger, **ENV), time.time()))

    def alive() -> list[Node]:
        return [n for n in nodes if n.signal is None]

    def connections() -> int:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchone()
        return int(row[0]) if row else 0

    def running() -> list[Node]:
        # Nodes that have beaten: a signal to a process still importing kills it outright.
        listed = {int(r[0]) for r in conn.execute("SELECT pid FROM rexecutor_nodes")}
        return [n for n in alive() if n.process.pid in listed]

    def busy(node: Node) -> bool:
        row = conn.execute(
            "SELECT count(*) FROM rexecutor_jobs WHERE status = 'executing' "
            "AND attempted_by LIKE %s",
            (f"{node.process.pid}-%",),
        ).fetchone()
        return bool(row and row[0])

    def end(node: Node, sig: int) -> None:
        node.signal, node.ended = sig, time.time()
        node.process.send_signal(sig)

    enqueued = {"ledger": 0, "hog": 0}
    conn = psycopg.connect(pg, autocommit=True)
    try:
        for _ in range(NODES):
            start()
        began = time.time()
        step = 0
        peak_connections = 0
        oldest_killed = False
        while time.time() < began + CHURN_SECONDS:
            seed(pg, "ledger", LEDGER_PER_STEP, data=JOB_MS)
            seed(pg, "hog", HOG_PER_STEP, data=0)
            enqueued["ledger"] += LEDGER_PER_STEP
            enqueued["hog"] += HOG_PER_STEP
            for node in alive():
                assert node.process.poll() is None, f"a node exited: {stop(node.process)}"
            live, up = alive(), running()
            # Stopping leaves a node running (a starting one does not count), and a random stop
            # leaves FEWEST - 1.
            oldest = min(up, key=lambda n: n.started) if len(up) >= 2 else None
            if oldest and not oldest_killed and (step >= 12 or (step >= 6 and busy(oldest))):
                # The node that has run longest, whatever duty it held, dies without warning,
                # while it runs jobs if that comes soon enough.
                end(oldest, signal.SIGKILL)
                oldest_killed = True
            elif len(live) < NODES and (len(up) < FEWEST or rng.random() < 0.5):
                start()
            elif len(up) >= FEWEST:
                end(rng.choice(up), rng.choice((signal.SIGTERM, signal.SIGKILL)))
            step += 1
            peak_connections = max(peak_connections, connections())
            time.sleep(STEP_SECONDS)
        killed = {
            n.process.pid: n.ended
            for n in nodes
            if n.signal == signal.SIGKILL and n.ended is not None
        }
        assert oldest_killed, "the oldest node was never killed"

        def settled() -> bool:
            jobs, listed = snapshot(pg)
            done = sum(1 for j in jobs if j.executor == "ledger" and j.status is JobStatus.COMPLETE)
            hogs = sum(1 for j in jobs if j.executor == "hog")
            return (
                done == enqueued["ledger"]
                and hogs == 0
                and listed == {n.process.pid for n in alive()}
            )

        wait_until(settled, timeout=30, interval=0.5)
    finally:
        conn.close()
        outputs = {}
        for node in nodes:
            if node.signal is None:
                end(node, signal.SIGTERM)
        for node in nodes:
            # A second SIGTERM would make a node exit at once: wait for the first.
            outputs[node.process.pid] = node.process.communicate(timeout=30)[0]
    for node in nodes:
        if node.signal == signal.SIGTERM:
            assert node.process.returncode == 0, outputs[node.process.pid]
    jobs, _ = snapshot(pg)
    runs = read_ledger(ledger)
    by_executor: dict[str, list[Job[Any, Any]]] = defaultdict(list)
    for job in jobs:
        by_executor[job.executor].append(job)

    # Every ledger job completed; a run beyond the last was cut short by a SIGKILL, and the job
    # was taken up again only after that kill.
    rescued = 0
    # A tick enqueued ahead of its time when the last node stopped is still waiting.
    waiting = [j for j in by_executor["tick"] if j.status is JobStatus.SCHEDULED]
    assert len(waiting) <= 2, waiting
    for job in by_executor["ledger"] + [j for j in by_executor["tick"] if j not in waiting]:
        assert job.status is JobStatus.COMPLETE, job
        mine = runs[int(job.id)]
        assert mine and mine[-1].attempt == job.attempt, (job, mine)
        assert len({r.attempt for r in mine}) == len(mine), (job, mine)
        for cut in mine[:-1]:
            assert cut.pid in killed, f"job {job.id} ran twice without a kill: {mine}"
            assert job.attempted_at is not None
            assert job.attempted_at.timestamp() > killed[cut.pid], (job, mine)
        orphaned = [e for e in job.errors if e.error_type is ErrorType.ORPHANED]
        assert len(orphaned) == job.attempt - 1, (job, job.errors)
        rescued += job.attempt > 1
    assert len(by_executor["ledger"]) == enqueued["ledger"]
    assert rescued, "no job was caught running by a kill: the rescue went untested"

    # Hog jobs all ran and every complete one was pruned, while nodes died.
    hog_ids = {i for i, r in runs.items() if i not in {int(j.id) for j in jobs}}
    assert len(hog_ids) == enqueued["hog"]
    assert not by_executor["hog"]

    # One job per tick, and no tick missing from the first to the last, across every kill (a
    # rescued tick job is rescheduled: its tag keeps the tick).
    ticks = sorted(
        datetime.fromisoformat(tag.removeprefix(TICK_TAG_PREFIX))
        for j in by_executor["tick"]
        for tag in j.tags
        if tag.startswith(TICK_TAG_PREFIX)
    )
    assert len(ticks) == len(by_executor["tick"])
    assert len(set(ticks)) == len(ticks), "a cron tick was enqueued twice"
    gaps = [b - a for a, b in itertools.pairwise(ticks) if b - a != timedelta(seconds=1)]
    said = [line for out in outputs.values() for line in out.splitlines() if "cron" in line]
    assert not gaps, f"cron ticks missing: {gaps}; the nodes said: {said}"
    zone = ticks[0].tzinfo
    # The ticks straddle the last kill (a loaded machine may start the first node's cron
    # after the first kill): another node carried on with the schedule.
    assert ticks[0] < datetime.fromtimestamp(max(killed.values()), zone)
    assert ticks[-1] > datetime.fromtimestamp(max(killed.values()), zone)
    print(
        f"{len(nodes)} nodes started, {len(killed)} killed, "
        f"{sum(n.signal == signal.SIGTERM for n in nodes)} stopped; {enqueued} jobs, "
        f"{rescued} rescued, {len(ticks)} ticks; at most {peak_connections} connections"
    )
