"""Shared pieces of the benchmark: sizes, figures, percentiles and process memory."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is. ``FULL`` is what the issue asks for; ``QUICK`` is the smoke run."""

    bulk: int
    one_by_one: int
    process: int
    latency_jobs: int
    latency_rate: float
    big_table: int
    ceiling_seconds: int
    ops_samples: int
    #: Seconds a started worker is left idle before it is measured (RSS) and fed.
    idle: float


FULL = Sizes(
    bulk=10_000,
    one_by_one=1_000,
    process=10_000,
    latency_jobs=200,
    latency_rate=50.0,
    big_table=1_000_000,
    ceiling_seconds=8,
    ops_samples=2_000,
    idle=1.0,
)
QUICK = Sizes(
    bulk=300,
    one_by_one=30,
    process=300,
    latency_jobs=12,
    latency_rate=100.0,
    big_table=3_000,
    ceiling_seconds=1,
    ops_samples=100,
    idle=0.3,
)


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100), interpolated between the closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Figure:
    """One measured quantity: every run's value, summarised as median, min and max."""

    key: str
    label: str
    unit: str
    samples: list[float] = field(default_factory=list)
    #: jobs/s figures are compared with the pgbench ceiling.
    rate: bool = False
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "samples": self.samples,
            "median": self.median if self.samples else None,
            "min": self.low if self.samples else None,
            "max": self.high if self.samples else None,
            "rate": self.rate,
            "note": self.note,
        }


def read_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in kB, from /proc."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
    return found


def own_status() -> dict[str, int]:
    return read_status(os.getpid())


def fmt(value: float | None, unit: str) -> str:
    """A number rounded for the table."""
    if value is None:
        return "—"
    if unit == "jobs/s":
        return f"{value:,.0f}"
    if unit == "MB":
        return f"{value:.1f}"
    if unit in ("ms", "µs"):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return f"{value:.3g}"


class Scratch:
    """The run's scratch directory: ledgers, worker logs, SQLite files."""

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="rexecutor-bench-")
        self._n = 0

    def ledger(self) -> str:
        self._n += 1
        path = os.path.join(self.path, f"ledger-{self._n}.txt")
        open(path, "w").close()
        return path

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
