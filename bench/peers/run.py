"""rexecutor and its peers side by side: the same PostgreSQL server, job counts, concurrency
and durability, each through its public API, in one run. Prints a table per figure and writes
them into ``bench/RESULTS.md`` (the ``results:peers`` block). See bench/README.md, "Peers"."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

from bench.common import FULL, QUICK, Figure, Scratch, Sizes, fmt
from bench.inproc import latencies
from bench.peers.venvs import PEERS, PeerSpec, Unavailable, ensure
from bench.run import (
    RECOVER,
    RESULTS,
    Report,
    enqueue_figures,
    guarded,
    log,
    machine_facts,
    sql_latency,
    write_results,
)
from bench.stores import DEFAULT_PG_URL, PgStore
from bench.workers import ROOT, Workers, sql_process
from rexecutor.backends import backend_from_url

ONLY = "peers"
WRITER = "python -m bench.peers"
#: Concurrency of the worker that serves the latency scenario (one job at a time arrives).
LATENCY_CONCURRENCY = 10


def _env(ledger: str) -> dict[str, str]:
    env = dict(os.environ)
    env["BENCH_LEDGER"] = ledger
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    return env


def drive(spec: PeerSpec, role: str, args: dict[str, Any], ledger: str = os.devnull) -> Any:
    """Run one role of bench/peers/driver.py in the peer's environment; its RESULT."""
    done = subprocess.run(
        [spec.python, "-m", "bench.peers.driver", spec.name, role, json.dumps(args)],
        cwd=ROOT,
        env=_env(ledger),
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{spec.label} {role} failed ({done.returncode}):\n{done.stderr[-3000:]}"
        )
    return json.loads(lines[-1][len("RESULT ") :])


def _has_ready(log: str) -> bool:
    with open(log, errors="replace") as f:
        return "READY" in f.read()


def _lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


class PeerWorkers(Workers):
    """The peer's worker processes (``driver worker``), ready once each printed READY."""

    def __init__(
        self, spec: PeerSpec, url: str, count: int, concurrency: int, ledger: str, logdir: str
    ) -> None:
        super().__init__(url, count, concurrency, ledger, logdir)
        self.spec = spec

    def command(self) -> list[str]:
        args = json.dumps({"url": self.url, "concurrency": self.concurrency})
        return [self.spec.python, "-m", "bench.peers.driver", self.spec.name, "worker", args]

    async def wait_peer_ready(self, timeout: float = 120.0) -> None:
        """Until every worker printed READY (its worker loop is running)."""
        deadline = time.monotonic() + timeout
        while True:
            self.alive()
            if all(_has_ready(path) for path in self.logs):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.spec.label} workers did not start in time")
            await asyncio.sleep(0.05)


def read_ledger(path: str) -> dict[int, list[float]]:
    """Every start recorded in a ledger, by job number."""
    starts: dict[int, list[float]] = {}
    with open(path) as f:
        for line in f:
            number, moment = line.split()
            starts.setdefault(int(number), []).append(float(moment))
    return starts


async def _wait_ledger(path: str, n: int, workers: Workers, what: str) -> None:
    deadline = time.monotonic() + 600
    while True:
        if _lines(path) >= n:
            return
        workers.alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: jobs did not all start in time")
        await asyncio.sleep(0.05)


class PeerRun:
    """One peer's scenarios, each in a database of its own, created and dropped here."""

    def __init__(self, spec: PeerSpec, admin_url: str, scratch: Scratch, sizes: Sizes) -> None:
        self.spec, self.admin_url, self.scratch, self.sizes = spec, admin_url, scratch, sizes

    def _fresh(self) -> PgStore:
        store = PgStore(self.admin_url)
        store.create()
        try:
            drive(self.spec, "install", {"url": store.url})
        except BaseException:
            store.drop()
            raise
        return store

    def enqueue(self, role: str, n: int) -> float:
        """jobs/s of one ``bulk`` or ``one`` enqueue of ``n`` jobs into an empty database."""
        store = self._fresh()
        try:
            return n / float(drive(self.spec, role, {"url": store.url, "n": n})["seconds"])
        finally:
            store.drop()

    async def process(self, procs: int, concurrency: int) -> float:
        """jobs/s of ``procs`` idle workers at ``concurrency`` each, fed one bulk enqueue."""
        n, store = self.sizes.process, self._fresh()
        ledger = self.scratch.ledger()
        workers = PeerWorkers(self.spec, store.url, procs, concurrency, ledger, self.scratch.path)
        try:
            workers.start()
            await workers.wait_peer_ready()
            await asyncio.sleep(self.sizes.idle)
            await asyncio.to_thread(drive, self.spec, "bulk", {"url": store.url, "n": n})
            await _wait_ledger(ledger, n, workers, f"{self.spec.label} process")
        finally:
            workers.stop()
            store.drop()
        starts = read_ledger(ledger)
        if sorted(starts) != list(range(n)):
            raise RuntimeError(f"{self.spec.label}: {len(starts)} distinct jobs ran of {n}")
        moments = [m for ms in starts.values() for m in ms]
        return n / (max(moments) - min(moments))

    async def latency(self) -> dict[str, Any]:
        """Enqueue -> start latency percentiles to one idle worker in another process."""
        sizes, store = self.sizes, self._fresh()
        ledger = self.scratch.ledger()
        workers = PeerWorkers(
            self.spec, store.url, 1, LATENCY_CONCURRENCY, ledger, self.scratch.path
        )
        try:
            workers.start()
            await workers.wait_peer_ready()
            await asyncio.sleep(sizes.idle)
            args = {"url": store.url, "n": sizes.latency_jobs, "rate": sizes.latency_rate}
            result = await asyncio.to_thread(drive, self.spec, "latency", args)
            await _wait_ledger(ledger, sizes.latency_jobs, workers, f"{self.spec.label} latency")
        finally:
            workers.stop()
            store.drop()
        enqueued = {int(k): (v[0], v[1]) for k, v in result["enqueued"].items()}
        return latencies(enqueued, ledger)


async def bench_peer(report: Report, run: PeerRun) -> None:
    """One run of every scenario of one peer."""
    sizes, name = report.sizes, run.spec.name
    for key, role, n in (
        ("bulk_enqueue", "bulk", sizes.bulk),
        ("one_by_one", "one", sizes.one_by_one),
    ):
        value = await guarded(report, f"{name} {key}", lambda r=role, k=n: run.enqueue(r, k))
        if value is not None:
            report.add(f"{name}.{key}", key, "jobs/s", value, rate=True)
    for procs in (1, 2):
        value = await guarded(
            report, f"{name} process {procs}x c10", lambda p=procs: run.process(p, 10)
        )
        if value is not None:
            report.add(f"{name}.process_{procs}p", "process", "jobs/s", value, rate=True)
    result = await guarded(report, f"{name} latency", run.latency)
    if result is not None:
        for p in ("p50", "p99"):
            report.add(f"{name}.latency_{p}", p, "ms", result[p])


async def bench_rexecutor(report: Report, scratch: Scratch, admin_url: str) -> None:
    """One run of every scenario of rexecutor, in a database of its own (PostgreSQL backend)."""
    sizes = report.sizes
    store = PgStore(admin_url)
    store.create()
    RECOVER.append(store.wait_until_up)
    backend = backend_from_url(store.url)
    try:
        await backend.connect()  # creates the schema
        report.facts.setdefault(
            "postgresql",
            store.server_version()
            + ", "
            + ", ".join(f"{k}={v}" for k, v in store.settings().items()),
        )
        await guarded(
            report,
            "rexecutor enqueue",
            lambda: enqueue_figures(
                report, "rexecutor", lambda: backend_from_url(store.url), store.reset
            ),
        )
        for procs, concurrency in ((1, 10), (2, 10), (1, 50)):
            result = await guarded(
                report,
                f"rexecutor process {procs}x c{concurrency}",
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
            if result is not None:
                key = f"rexecutor.process_{procs}p" + (
                    "" if concurrency == 10 else f"_c{concurrency}"
                )
                report.add(key, "process", "jobs/s", result["jobs_s"], rate=True)
        result = await guarded(
            report,
            "rexecutor latency",
            lambda: sql_latency(store, backend, scratch, sizes, store.reset),
        )
        if result is not None:
            for p in ("p50", "p99"):
                report.add(f"rexecutor.latency_{p}", p, "ms", result[p])
    finally:
        await backend.close()
        RECOVER.remove(store.wait_until_up)
        store.drop()


# -- tables -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of a table: who, through what, and the figure's key."""

    who: str
    via: str
    key: str


@dataclass(frozen=True)
class Table:
    """One figure across rexecutor and every peer."""

    title: str
    unit: str
    suffix: str
    higher_is_better: bool = True


TABLES = (
    Table("Bulk enqueue, {bulk:,} no-op jobs", "jobs/s", "bulk_enqueue"),
    Table("One-by-one enqueue, {one_by_one:,} jobs, each awaited", "jobs/s", "one_by_one"),
    Table("Process {process:,} jobs, 1 worker process, concurrency 10", "jobs/s", "process_1p"),
    Table(
        "Process {process:,} jobs, 2 worker processes, concurrency 10 each", "jobs/s", "process_2p"
    ),
    Table(
        "Enqueue → start latency, another process, p50 ({latency_jobs} jobs at {latency_rate:g}/s)",
        "ms",
        "latency_p50",
        higher_is_better=False,
    ),
    Table(
        "Enqueue → start latency, another process, p99", "ms", "latency_p99", higher_is_better=False
    ),
)

REXECUTOR_VIA = {
    "bulk_enqueue": "rexecutor.enqueue_many(builders)",
    "one_by_one": "builder.enqueue_to_backend",
}


def _cells(figure: Figure | None, unit: str) -> str:
    if figure is None or not figure.samples:
        return "— | — | —"
    return f"{fmt(figure.median, unit)} | {fmt(figure.low, unit)} | {fmt(figure.high, unit)}"


def render_table(
    report: Report, table: Table, peers: Sequence[PeerSpec], versions: dict[str, str]
) -> str:
    """One figure's table: rexecutor's rows, every peer's, and rexecutor / best peer."""
    s = report.sizes
    title = table.title.format(**s.__dict__)
    rows = [
        Row("rexecutor", REXECUTOR_VIA.get(table.suffix, "public API"), f"rexecutor.{table.suffix}")
    ]
    if table.suffix == "bulk_enqueue":
        rows.append(
            Row("rexecutor", "backend.enqueue_many(built jobs)", "rexecutor.bulk_enqueue_backend")
        )
    for spec in peers:
        via = spec.bulk_path if table.suffix == "bulk_enqueue" else "public API"
        rows.append(Row(spec.label, via, f"{spec.name}.{table.suffix}"))
    better = max if table.higher_is_better else min
    peer_medians = {r.who: report.median(r.key) for r in rows if r.who != "rexecutor"}
    measured = {k: v for k, v in peer_medians.items() if v is not None}
    best = better(measured, key=lambda k: measured[k]) if measured else None
    lines = [
        f"### {title}",
        "",
        f"| system | version | through | median {table.unit} | min | max |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        version = versions.get(r.who, "?")
        lines.append(
            f"| {r.who} | {version} | {r.via} | {_cells(report.figures.get(r.key), table.unit)} |"
        )
    for r in rows:
        if r.who != "rexecutor":
            continue
        mine = report.median(r.key)
        ratio = "—" if mine is None or best is None else f"{mine / measured[best]:.2f}"
        lower = "" if table.higher_is_better else " (lower is better)"
        lines.append(f"\nrexecutor ({r.via}) / best peer ({best or '—'}): **{ratio}**{lower}")
    return "\n".join(lines)


def render(
    report: Report, peers: Sequence[PeerSpec], versions: dict[str, str], unavailable: dict[str, str]
) -> str:
    """The whole block: command, machine, every table, what could not run."""
    s = report.sizes
    c50 = report.figures.get("rexecutor.process_1p_c50")
    facts = "\n".join(f"- {k}: {v}" for k, v in report.facts.items())
    versions_line = ", ".join(f"{k} {v}" for k, v in versions.items())
    parts = [
        f"Command: `{report.command}`",
        "",
        f"Date: {report.started:%Y-%m-%d %H:%M} UTC; {report.runs} runs per figure (median, "
        f"min, max); took {report.facts.get('duration', '?')}.",
        "",
        f"Versions: {versions_line}.",
        "",
        "Machine and settings:",
        "",
        facts,
        "",
    ]
    for table in TABLES:
        parts += [render_table(report, table, peers, versions), ""]
    parts += [
        f"### rexecutor alone: process {s.process:,} jobs, 1 worker process, concurrency 50",
        "",
        "| figure | median jobs/s | min | max | target |",
        "| --- | --- | --- | --- | --- |",
        f"| rexecutor, concurrency 50 | {_cells(c50, 'jobs/s')} | 10,000 jobs/s |",
        "",
    ]
    if unavailable:
        parts += [
            "### Peers that could not run",
            "",
            *(f"- {k}: {v}" for k, v in unavailable.items()),
            "",
        ]
    if report.errors:
        parts += ["### Failed scenarios", "", *(f"- {e}" for e in report.errors), ""]
    return "\n".join(parts)


# -- main ---------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line, checked (unknown peers and --runs below 1 are refused)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument(
        "--peers",
        default=",".join(p.name for p in PEERS),
        help=f"comma-separated subset of: {', '.join(p.name for p in PEERS)}",
    )
    parser.add_argument("--install", action="store_true", help="recreate the peers' environments")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("REXECUTOR_BENCH_PG_URL")
        or os.environ.get("REXECUTOR_TEST_PG_URL")
        or DEFAULT_PG_URL,
        help="maintenance database to create the rexecutor_bench_* databases from",
    )
    parser.add_argument("--output", default=RESULTS, help="where to write the results")
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    opts = parser.parse_args(argv)
    names = [n.strip() for n in opts.peers.split(",") if n.strip()]
    known = {p.name for p in PEERS}
    unknown = sorted(set(names) - known)
    if unknown:
        parser.error(f"unknown peers: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    opts.peers = [p for p in PEERS if p.name in names]
    if opts.runs < 1:
        parser.error("--runs must be at least 1")
    return opts


async def run(opts: argparse.Namespace, report: Report, peers: Sequence[PeerSpec]) -> None:
    """``--runs`` rounds; in each, rexecutor then every peer, one after another."""
    scratch = Scratch()
    try:
        for n in range(report.runs):
            log(f"run {n + 1}/{report.runs}: rexecutor")
            await bench_rexecutor(report, scratch, opts.pg_url)
            for spec in peers:
                log(f"run {n + 1}/{report.runs}: {spec.label}")
                await bench_peer(report, PeerRun(spec, opts.pg_url, scratch, report.sizes))
    finally:
        scratch.remove()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Install the peers if needed, run everything, print and write the tables. Exits 1 when
    a peer could not run (it is named in the output), 0 otherwise."""
    opts = parse(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    args = sys.argv[1:] if argv is None else argv
    report = Report(
        sizes=QUICK if opts.quick else FULL,
        runs=opts.runs,
        command=f"{WRITER} {shlex.join(args)}".strip(),
        started=datetime.now(UTC),
        only=ONLY,
    )
    machine_facts(report)
    versions = {"rexecutor": version("rexecutor")}
    peers: list[PeerSpec] = []
    unavailable: dict[str, str] = {}
    for spec in opts.peers:
        try:
            ensure(spec, force=opts.install)
            versions[spec.label] = drive(spec, "version", {})["version"]
            peers.append(spec)
        except Unavailable as exc:
            # Said loudly, in the output and in RESULTS.md; the others still run.
            log(f"SKIPPING {spec.label}: {exc}")
            unavailable[spec.label] = str(exc)
    began = time.monotonic()
    asyncio.run(run(opts, report, peers))
    report.facts["load at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    minutes, seconds = divmod(int(time.monotonic() - began), 60)
    report.facts["duration"] = f"{minutes} min {seconds} s"
    body = render(report, peers, versions, unavailable)
    print(body)
    if not opts.no_write:
        write_results(opts.output, body, ONLY, WRITER)
        log(f"wrote {opts.output}")
    return 1 if unavailable else 0
