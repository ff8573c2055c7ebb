"""``rexecutor stats`` and ``rexecutor nodes``: counts, throughput and heartbeats."""

from __future__ import annotations

import argparse

from rexecutor import _clock, _views, admin
from rexecutor.backend import Backend
from rexecutor.cli.errors import EXIT_OK
from rexecutor.cli.output import STATUS_STYLES, Cell, Column, Output, sparkline
from rexecutor.job import JobStatus

__all__ = ["nodes", "stats"]


async def stats(backend: Backend, args: argparse.Namespace, out: Output) -> int:
    """``stats``: jobs per executor and status, and a sparkline of the last minutes."""
    overview = await admin.stats(backend, args.minutes)
    if out.json:
        out.dump(overview.to_json())
        return EXIT_OK
    totals = overview.by_status()
    columns = [Column("EXECUTOR", footer="total")]
    columns += [
        Column(
            (status.value.upper(), STATUS_STYLES[status]),
            justify="right",
            footer=str(totals[status]),
        )
        for status in JobStatus.ALL
    ]
    columns.append(Column("TOTAL", justify="right", footer=str(sum(totals.values()))))
    rows: list[list[Cell]] = []
    for executor in overview.executors:
        row = overview.row(executor)
        rows.append([executor, *(str(row[s]) for s in JobStatus.ALL), str(sum(row.values()))])
    out.table(columns, rows)
    completed = [per[JobStatus.COMPLETE] for _, per in overview.series]
    failed = [sum(per[s] for s in admin.FAILED_STATUSES) for _, per in overview.series]
    out.line(f"\nlast {overview.minutes} minutes, one mark a minute (oldest left)", "bold")
    out.line(f"  completed {sparkline(completed)} {sum(completed)}", "green")
    out.line(f"  failed    {sparkline(failed)} {sum(failed)}", "red")
    out.line(f"  {overview.per_minute():.1f} completed per minute")
    return EXIT_OK


async def nodes(backend: Backend, args: argparse.Namespace, out: Output) -> int:
    """``nodes``: recorded nodes, their heartbeats and whether they count as alive."""
    rows = await admin.nodes(backend, args.stale_after)
    if out.json:
        out.dump([row.to_json() for row in rows])
        return EXIT_OK
    if not rows:
        out.line("no node has recorded a heartbeat")
        return EXIT_OK
    names = ("NODE", "HOST", "PID", "STARTED", "HEARTBEAT", "ALIVE")
    now = _clock.now()
    cells: list[list[Cell]] = [
        [
            row.node.node_id,
            row.node.host,
            str(row.node.pid),
            _views.format_age(row.node.started_at, now),
            _views.format_age(row.node.heartbeat_at, now),
            ("yes", "green") if row.alive else ("no (silent)", "red"),
        ]
        for row in rows
    ]
    out.table([Column(name, no_wrap=True) for name in names], cells)
    return EXIT_OK
