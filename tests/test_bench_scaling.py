"""The pieces bench/scaling.py measures and checks with: CPU from /proc, shares, the ledger
check and the summary table (no timing is asserted)."""

from __future__ import annotations

import os
import time

import pytest
from bench.common import Figure
from bench.scaling import (
    CORES,
    SHAPES,
    cpu_seconds,
    key,
    machine_ticks,
    postgres_pids,
    ran_twice,
    share,
    summary,
    used,
)


def test_cpu_seconds_grow_while_a_process_works_and_are_none_once_it_is_gone() -> None:
    before = cpu_seconds(os.getpid())
    assert before is not None
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    after = cpu_seconds(os.getpid())
    assert after is not None and after > before
    assert cpu_seconds(2**22 + 1) is None  # above the kernel's largest pid


@pytest.mark.postgres
def test_the_postgres_processes_of_the_local_server_are_found() -> None:
    pids = postgres_pids()
    assert pids, "the test suite runs against a local PostgreSQL"
    for pid in pids:
        with open(f"/proc/{pid}/comm") as f:
            assert f.read().strip() == "postgres"


def test_the_machine_is_busy_for_part_of_its_ticks() -> None:
    busy, total = machine_ticks()
    assert 0 < busy < total


def test_cpu_used_between_snapshots_counts_new_processes_from_zero_and_skips_ended_ones() -> None:
    before = {1: 10.0, 2: 5.0}
    after = {1: 12.5, 3: 1.0}
    assert used(before, after, {1, 2, 3}) == 3.5
    assert share(CORES * 1.0, 2.0) == 50.0


def test_the_ledger_check_counts_extra_runs_and_missing_jobs() -> None:
    lines = ["1 0.5\n", "2 0.6\n", "2 0.7\n", "2 0.8\n", "\n"]
    assert ran_twice(lines, [1, 2, 3]) == (2, 1)
    assert ran_twice(["1 0.5", "2 0.6"], [1, 2]) == (0, 0)


def test_the_summary_has_a_row_per_shape_with_its_medians() -> None:
    figure = Figure(key(1, 10), "x", "jobs/s", samples=[100.0, 300.0, 200.0])
    share_figure = Figure(key(1, 10) + "_pg_workers", "x", "% of machine", samples=[12.5])
    table = summary({figure.key: figure, share_figure.key: share_figure})
    rows = [line for line in table.splitlines() if line.startswith("| ") and "×" in line]
    assert len(rows) == len(SHAPES) + 1  # the header names "processes × concurrency"
    assert "| 1 × 10 | 200 | 12.5 % | — |" in table
