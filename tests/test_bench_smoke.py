"""The benchmark suite (bench/) still runs: every scenario once at tiny sizes.

Asserts only that every figure was produced and every target evaluated; no timing is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.support.postgres import admin_url

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parent.parent

PER_BACKEND = (
    "bulk_enqueue",
    "bulk_enqueue_backend",
    "one_by_one",
    "process_c10",
    "process_c50",
    "big_process_c50",
    "rss_idle",
    "rss_peak",
)
LATENCY = ("p50", "p95", "p99", "p50_from_call")
EXPECTED = {
    *(f"{name}.{figure}" for name in ("memory", "sqlite", "postgres") for figure in PER_BACKEND),
    *(f"{name}.process_2p" for name in ("sqlite", "postgres")),
    *(f"{name}.latency_{p}" for name in ("sqlite", "postgres") for p in LATENCY),
    *(f"{name}.big_latency_{p}" for name in ("sqlite", "postgres") for p in LATENCY),
    *(f"{name}.local_latency_{p}" for name in ("memory", "sqlite") for p in LATENCY),
    *(f"{name}.big_local_latency_{p}" for name in ("memory", "sqlite") for p in LATENCY),
    "postgres.ceiling_k1",
    "postgres.ceiling_k100",
    "sqlite.one_by_one_normal",
    "sqlite.one_by_one_tasks",
    "sqlite.roundtrip_us",
    "sqlite.noop_direct_us",
    "sqlite.get_job_thread_us",
    "sqlite.get_job_direct_us",
    # bench/limits.py: the 2-process figure without and with each limit.
    *(f"postgres.limits_{v}" for v in ("none", "global", "partition", "rate")),
    *(f"postgres.limits_{v}_peak" for v in ("none", "global", "partition", "rate")),
    *(f"postgres.limits_{v}_ratio" for v in ("global", "partition", "rate")),
    "postgres.limits_partition_peak_per_key",
}


def test_a_quick_run_of_the_benchmark_produces_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    results = tmp_path / "RESULTS.md"
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--runs",
            "1",
            "--output",
            str(results),
            "--json",
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = run.communicate(timeout=100)
    except subprocess.TimeoutExpired:
        run.terminate()  # the run drops its database when stopped with SIGTERM
        _, stderr = run.communicate(timeout=60)
        pytest.fail(f"the quick benchmark run took over 100 s:\n{stderr[-4000:]}")
    finally:
        _drop_leftovers(run.pid)
    assert run.returncode == 0, stderr[-4000:]
    report = json.loads(out.read_text())
    produced = {key for key, figure in report["figures"].items() if figure["samples"]}
    missing = EXPECTED - produced
    assert not missing, f"figures not produced: {sorted(missing)}; errors: {report['errors']}"
    statuses = {target["text"]: target["status"] for target in report["targets"]}
    assert statuses and all(s in ("met", "missed") for s in statuses.values()), statuses
    text = results.read_text()
    assert "Command: `python -m bench.run --quick --runs 1" in text
    assert "| PostgreSQL bulk enqueue ≥ 100,000 jobs/s |" in text
    assert "global_max_concurrency = 50 costs under 20 %" in text


def _drop_leftovers(pid: int) -> None:
    """Drop the run's database if it was killed before it could (its name holds its pid)."""
    with psycopg.connect(admin_url(), autocommit=True, connect_timeout=5) as admin:
        names = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"rexecutor_bench_{pid}_%"]
        ).fetchall()
        for (name,) in names:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
