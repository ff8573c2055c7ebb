"""What a cross-node limit costs: the 2-process PostgreSQL figure with and without limits.

Issue 13 asks for the throughput of an executor with ``global_max_concurrency = 50`` against
the same executor without it, on PostgreSQL with 2 worker processes, and says the limit should
cost under 20 %. Each variant runs the same workload as the existing 2-process figure (10,000
no-op jobs, 2 worker processes of concurrency 50 each, throughput from the rows); only the
workers' environment differs, which sets the executor's limits (see ``bench.apps``). The jobs
carry partition keys (``KEYS`` of them, round robin) in every variant, so that the partitioned
variant differs from the others by its limit alone.

After each run the rows are swept (:func:`peak`): no instant between an
``attempted_at`` and its ``completed_at`` may hold more executing jobs than the limit allows.
Ties count as overlapping, which can only overstate the peak. The rows overstate it in two
more ways: a finished job stays ``executing`` until its node writes the completion (batched),
and the claim stamps ``attempted_at`` with the time read when the executor's lock is taken,
one statement before it counts what is executing; a completion that commits in between, its
``completed_at`` (its transaction's start) later than that time, frees a place the claim
takes, and the two jobs then overlap in the rows by a fraction of a millisecond. The peaks
are figures, and ``bench.run`` checks them against the limits as targets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bench.apps import BenchJob
from bench.common import Scratch, Sizes
from bench.stores import PgStore
from bench.workers import sql_process
from rexecutor import JobBuilder, RateLimit
from rexecutor.backend import Backend

#: Worker processes and the concurrency of each: the same as the existing 2-process figure.
PROCS = 2
CONCURRENCY = 50
#: The limit the issue names.
GLOBAL_MAX = 50
#: Partition keys on the jobs, and the partitioned variant's limit per key: KEYS × PER_KEY is
#: the workers' own total, so the limit binds only where one key's jobs bunch up.
KEYS = 10
PER_KEY = 10
#: A rate limit that never binds: more starts per period than any run has jobs.
RATE = RateLimit(allowed=1_000_000, period=timedelta(seconds=1))


@dataclass(frozen=True)
class Variant:
    """One executor configuration measured by the scenario."""

    key: str
    label: str
    global_max: int | None = None
    partition_max: int | None = None
    rate: RateLimit | None = None

    def env(self) -> dict[str, str]:
        """The workers' environment that gives ``bench.apps.BenchJob`` these limits."""
        env = {"BENCH_GLOBAL_MAX": "", "BENCH_PARTITION_MAX": "", "BENCH_RATE": ""}
        if self.global_max is not None:
            env["BENCH_GLOBAL_MAX"] = str(self.global_max)
        if self.partition_max is not None:
            env["BENCH_PARTITION_MAX"] = str(self.partition_max)
        if self.rate is not None:
            env["BENCH_RATE"] = f"{self.rate.allowed}/{self.rate.period.total_seconds()}"
        return env


NONE = Variant("none", "no limits")
VARIANTS = (
    NONE,
    Variant("global", f"global_max_concurrency = {GLOBAL_MAX}", global_max=GLOBAL_MAX),
    Variant(
        "partition",
        f"partition_max_concurrency = {PER_KEY}, {KEYS} keys",
        partition_max=PER_KEY,
    ),
    Variant(
        "rate",
        f"rate_limit {RATE.allowed:,} per {RATE.period.total_seconds():g} s (never binds)",
        rate=RATE,
    ),
)


def jobs(n: int) -> list[JobBuilder[int, None]]:
    """``n`` no-op jobs, their partition keys taken round robin."""
    return [BenchJob.builder().with_data(0).with_partition_key(f"k{i % KEYS}") for i in range(n)]


def peak(intervals: Iterable[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one instant (a start and an end at the same instant count
    as overlapping)."""
    events: list[tuple[datetime, int]] = []
    for start, end in intervals:
        # At equal times a start (0) sorts before an end (1): ties overlap.
        events.append((start, 0))
        events.append((end, 1))
    events.sort()
    open_, most = 0, 0
    for _, kind in events:
        open_ += 1 if kind == 0 else -1
        most = max(most, open_)
    return most


def peaks(rows: Sequence[tuple[datetime, datetime | None, str | None, int]]) -> dict[str, int]:
    """The peak executing of a run, overall and in its busiest partition key."""
    by_key: dict[str | None, list[tuple[datetime, datetime]]] = defaultdict(list)
    every: list[tuple[datetime, datetime]] = []
    for started, completed, key, attempt in rows:
        # A row keeps only its last attempt's times: a retried job would hide an interval.
        if completed is None or attempt != 1:
            raise RuntimeError(f"a job ended with attempt {attempt}, completed at {completed}")
        every.append((started, completed))
        by_key[key].append((started, completed))
    return {
        "global": peak(every),
        "per_key": max((peak(spans) for spans in by_key.values()), default=0),
    }


async def measure(
    store: PgStore, backend: Backend, scratch: Scratch, sizes: Sizes, variant: Variant
) -> dict[str, Any]:
    """One run of ``variant``: its throughput and the peaks swept from its rows (``global``:
    executing at once; ``per_key``: in the busiest partition key)."""
    result = await sql_process(
        store,
        backend,
        scratch,
        sizes,
        n=sizes.process,
        procs=PROCS,
        concurrency=CONCURRENCY,
        prepare=store.reset,
        env=variant.env(),
        jobs=jobs,
    )
    return {**result, **peaks(store.attempts(result["after"]))}
