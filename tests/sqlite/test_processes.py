"""SQLite only: several processes on one file, and crashes (real subprocesses)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

from rexecutor.backend import EnqueuableJob
from rexecutor.backends.sqlite import SqliteBackend
from rexecutor.job import JobStatus
from rexecutor.query import Where

# Each worker connects, says "ready", waits for "go" on stdin (so that the workers really run at
# the same time), does its part and prints one JSON line.
_WORKER = r"""
import asyncio, json, sys
from datetime import timedelta
from rexecutor.backend import EnqueuableJob
from rexecutor.backends.sqlite import SqliteBackend
from rexecutor.uniqueness import UniquenessCriteria

async def main(path, role, name):
    async with SqliteBackend(path, busy_timeout=timedelta(seconds=60)) as backend:
        print("ready", flush=True)
        sys.stdin.readline()
        if role == "claim":
            claimed = []
            while True:
                jobs = await backend.claim_ready_jobs("ex", 2, name)
                if not jobs:
                    break
                claimed.extend(int(job.id) for job in jobs)
            print(json.dumps(claimed), flush=True)
        elif role == "unique":
            criteria = UniquenessCriteria.by_key("the-one")
            ids = []
            for _ in range(40):
                result = await backend.enqueue(EnqueuableJob("ex", {}, uniqueness=criteria))
                ids.append(int(result.job_id))
            print(json.dumps(ids), flush=True)
        elif role == "enqueue-forever":
            n = 0
            while True:
                result = await backend.enqueue(EnqueuableJob("ex", {"n": n}))
                print(int(result.job_id), flush=True)  # printed only once committed
                n += 1

asyncio.run(main(*sys.argv[1:]))
"""


def _start(path: Path, role: str, name: str) -> subprocess.Popen[str]:
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(path), role, name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "ready"
    return worker


def _run_together(path: Path, role: str, count: int) -> list[list[int]]:
    workers = [_start(path, role, f"node-{i}") for i in range(count)]
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    outputs = []
    for worker in workers:
        out, _ = worker.communicate(timeout=100)
        assert worker.returncode == 0
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    return outputs


async def test_two_processes_claim_every_job_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path) as backend:
        results = await backend.enqueue_many([EnqueuableJob("ex", {"n": n}) for n in range(500)])
    enqueued = {int(r.job_id) for r in results}

    first, second = _run_together(path, "claim", 2)

    counts = Counter(first + second)
    assert set(counts) == enqueued
    assert max(counts.values()) == 1, "a job was claimed twice"
    assert first and second, "one process claimed everything: the test did not contend"
    async with SqliteBackend(path) as backend:
        jobs = await backend.query(Where.everything().node)
    holders = {int(job.id): job.attempted_by for job in jobs}
    assert all(job.status is JobStatus.EXECUTING and job.attempt == 1 for job in jobs)
    assert {holders[i] for i in first} == {"node-0"}
    assert {holders[i] for i in second} == {"node-1"}


async def test_unique_enqueues_from_two_processes_make_one_job(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path):
        pass

    first, second = _run_together(path, "unique", 2)

    assert len(set(first + second)) == 1
    async with SqliteBackend(path) as backend:
        assert len(await backend.query(Where.everything().node)) == 1


async def test_sigkill_loses_no_committed_job(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    worker = _start(path, "enqueue-forever", "n")
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write("go\n")
    worker.stdin.flush()
    acknowledged = [int(worker.stdout.readline()) for _ in range(100)]
    worker.send_signal(signal.SIGKILL)
    worker.wait(30)
    acknowledged += [int(line) for line in worker.stdout.read().split()]
    worker.stdout.close()
    worker.stdin.close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    async with SqliteBackend(path) as backend:
        stored = {int(j.id) for j in await backend.query(Where.everything().node)}
    assert set(acknowledged) <= stored
