"""The ceiling: a bare-SQL job cycle driven by pgbench on the same server, in the same run.

Each cycle inserts ``k`` rows, claims ``k`` with ``FOR UPDATE SKIP LOCKED`` and marks them
done: three statements, each committed on its own (autocommit), prepared, from 10 clients.
The table has the columns and the partial "ready" index a job queue needs and nothing else:
no trigger, no JSON decoding, no client-side work. jobs/s = cycles/s × k.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
from typing import Any

TABLE = """
CREATE TABLE IF NOT EXISTS bench_cycle (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status text NOT NULL DEFAULT 'scheduled',
    executor text NOT NULL,
    data jsonb NOT NULL DEFAULT '0',
    priority integer NOT NULL DEFAULT 0,
    scheduled_at timestamptz NOT NULL DEFAULT now(),
    attempted_at timestamptz,
    completed_at timestamptz
);
CREATE INDEX IF NOT EXISTS bench_cycle_ready ON bench_cycle (executor, priority, scheduled_at, id)
    WHERE status = 'scheduled';
"""

SCRIPT = """\
INSERT INTO bench_cycle (executor) SELECT 'noop' FROM generate_series(1, :k);
WITH picked AS (
    SELECT id FROM bench_cycle
    WHERE executor = 'noop' AND status = 'scheduled' AND scheduled_at <= now()
    ORDER BY priority, scheduled_at, id
    LIMIT :k
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE bench_cycle AS j SET status = 'executing', attempted_at = now()
    FROM picked WHERE j.id = picked.id
    RETURNING j.id
)
SELECT COALESCE(array_agg(id), '{}') AS ids FROM claimed
\\gset
UPDATE bench_cycle SET status = 'complete', completed_at = now() WHERE id = ANY(:ids::bigint[]);
"""

CLIENTS = 10


def find_pgbench() -> str | None:
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True)
    return candidates[0] if candidates else None


def run_cycle(store: Any, k: int, seconds: int) -> dict[str, float]:
    """One pgbench run of ``seconds``; returns cycles/s and jobs/s."""
    pgbench = find_pgbench()
    if pgbench is None:
        raise RuntimeError("pgbench not found (install the PostgreSQL client tools)")
    conn = store.conn
    for statement in TABLE.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("TRUNCATE bench_cycle")
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(SCRIPT)
    try:
        command = [
            pgbench,
            "-n",
            "-M",
            "prepared",
            "-c",
            str(CLIENTS),
            "-j",
            str(min(CLIENTS, os.cpu_count() or 1)),
            "-T",
            str(seconds),
            "-D",
            f"k={k}",
            "-f",
            script.name,
            *store.pgbench_args(),
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, env=store.pgbench_env(), check=False
        )
    finally:
        os.unlink(script.name)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed ({done.returncode}):\n{done.stderr[-2000:]}")
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout)
    if match is None:
        raise RuntimeError(f"cannot read pgbench's output:\n{done.stdout[-2000:]}")
    cycles = float(match.group(1))
    row = conn.execute("SELECT count(*) FROM bench_cycle WHERE status = 'complete'").fetchone()
    completed = int(row[0]) if row else 0
    conn.execute("TRUNCATE bench_cycle")
    return {"cycles_s": cycles, "jobs_s": cycles * k, "completed": completed}
