"""``python -m bench.run --only bigtable`` still runs: once at tiny sizes, on the partitioned
layout (the conversion, day partitions made ahead for the fill, and the prune dropping them),
about 30 s. Asserts that every figure was produced and every target evaluated; no timing is
checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_bench_smoke import ROOT, _drop_leftovers

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

FIGURES = {
    *(f"postgres.bigtable_{tag}process_c50" for tag in ("", "big_")),
    *(f"postgres.bigtable_{tag}latency_{p}" for tag in ("", "big_") for p in ("p50", "p99")),
    "postgres.bigtable_fill_s",
    *(
        f"postgres.bigtable_{tag}_{what}"
        for tag in ("steady", "prune")
        for what in ("jobs_s", "pickup_p99", "pickup_max", "ack_max")
    ),
    "postgres.bigtable_prune_rows",
    "postgres.bigtable_prune_s",
    "postgres.bigtable_prune_longest_ms",
}


def test_a_quick_bigtable_run_on_the_partitioned_layout_produces_every_figure(
    tmp_path: Path,
) -> None:
    out, results = tmp_path / "figures.json", tmp_path / "RESULTS.md"
    command = [sys.executable, "-m", "bench.run", "--only", "bigtable", "--layout"]
    command += ["partitioned", "--quick", "--runs", "1", "--output", str(results)]
    run = subprocess.Popen(
        [*command, "--json", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = run.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        run.terminate()  # the run drops its database when stopped with SIGTERM
        _, stderr = run.communicate(timeout=60)
        pytest.fail(f"the quick bigtable run took over 120 s:\n{stderr[-4000:]}")
    finally:
        _drop_leftovers(run.pid)
    assert run.returncode == 0, stderr[-4000:]
    report = json.loads(out.read_text())
    produced = {key for key, figure in report["figures"].items() if figure["samples"]}
    missing = FIGURES - produced
    assert not missing, f"figures not produced: {sorted(missing)}; errors: {report['errors']}"
    assert report["figures"]["postgres.bigtable_prune_rows"]["samples"] == [3000]
    statuses = [target["status"] for target in report["targets"]]
    assert len(statuses) == 4 and all(s in ("met", "missed") for s in statuses), statuses
    assert "<!-- results:bigtable-partitioned:begin" in results.read_text()
