"""``rexecutor executors [list]`` and ``rexecutor executors pause|resume|scale``.

The state and the changes are :mod:`rexecutor.control`'s, stored in the backend for every
node; here they are given their arguments and printed. The command line does not import the
node's code, so an executor's own ``max_concurrency`` (a class attribute) is not known here:
a limit no operator set is shown as the class default.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from rexecutor import _views, control
from rexecutor.backend import Backend
from rexecutor.cli.errors import EXIT_OK
from rexecutor.cli.output import Cell, Column, Output
from rexecutor.control import ExecutorControl
from rexecutor.limits import RateLimit

__all__ = [
    "executors_list",
    "executors_pause",
    "executors_resume",
    "executors_scale",
    "format_period",
]

_DEFAULT: Cell = ("default", "dim")


async def executors_list(backend: Backend, args: argparse.Namespace, out: Output) -> int:
    """``executors`` (or ``executors list``): each executor the backend knows, by name."""
    rows = await control.controls(backend)
    if out.json:
        out.dump([_views.control_to_json(row) for row in rows])
        return EXIT_OK
    if not rows:
        out.line("no executor is known to the backend yet: no jobs and no stored state")
        return EXIT_OK
    columns = [Column("EXECUTOR")]
    for name in ("STATE", "PER NODE", "GLOBAL", "PARTITION", "RATE LIMIT", "HEADROOM"):
        columns.append(Column(name, no_wrap=True))
    for name in ("SCHEDULED", "EXECUTING", "FAILED"):
        columns.append(Column(name, justify="right"))
    cells: list[list[Cell]] = [
        [
            row.name,
            _state(row),
            _per_node(row),
            _limit(row.global_max_concurrency),
            _limit(row.partition_max_concurrency),
            _rate(row.rate_limit),
            _headroom(row),
            str(row.scheduled),
            str(row.executing),
            str(row.failed),
        ]
        for row in rows
    ]
    out.table(columns, cells)
    if any(not row.scaled for row in rows):
        out.note(
            "PER NODE default: the executor's own max_concurrency, in the node's code "
            "(`rexecutor executors scale NAME N` sets it on every node)"
        )
    return EXIT_OK


async def executors_pause(backend: Backend, args: argparse.Namespace, out: Output) -> int:
    """``executors pause NAME``: no node claims the executor's jobs until it is resumed."""
    return await _set_paused(backend, args.name, True, out)


async def executors_resume(backend: Backend, args: argparse.Namespace, out: Output) -> int:
    """``executors resume NAME``: every node claims the executor's jobs again."""
    return await _set_paused(backend, args.name, False, out)


async def _set_paused(backend: Backend, name: str, paused: bool, out: Output) -> int:
    known, before = await _before(backend, name)
    await (control.pause if paused else control.resume)(backend, name)
    after = await control.control(backend, name)
    if before.paused == paused:
        said = f"{name} was {'already' if paused else 'not'} paused: nothing changed"
    elif paused:
        said = f"paused {name}: no node claims its jobs now (running jobs finish)"
    else:
        said = f"resumed {name}: nodes claim its jobs again"
    return _report("pause" if paused else "resume", known, before, after, said, out)


async def executors_scale(backend: Backend, args: argparse.Namespace, out: Output) -> int:
    """``executors scale NAME N|default``: the per-node limit on every node running it."""
    known, before = await _before(backend, args.name)
    await control.scale(backend, args.name, args.max_concurrency)
    after = await control.control(backend, args.name)
    was, now = _limit_text(before), _limit_text(after)
    if was == now:
        said = f"{args.name} is already at {now}: nothing changed"
    else:
        said = f"scaled {args.name} to {now} (was {was}); nodes apply it within a poll interval"
    return _report("scale", known, before, after, said, out)


async def _before(backend: Backend, name: str) -> tuple[bool, ExecutorControl]:
    """Whether the backend knows ``name`` (stored state or jobs), and its state now."""
    known = any(row.name == name for row in await control.controls(backend))
    return known, await control.control(backend, name)


def _report(
    action: str,
    known: bool,
    before: ExecutorControl,
    after: ExecutorControl,
    said: str,
    out: Output,
) -> int:
    if out.json:
        out.dump(
            {
                "action": action,
                "changed": _changed(before, after),
                "known": known,
                "before": _views.control_to_json(before),
                "after": _views.control_to_json(after),
            }
        )
        return EXIT_OK
    out.line(said)
    if not known:
        # Allowed on purpose: an executor can be paused (or scaled) before its first deploy.
        out.note(
            f"stored; no node has run {after.name} yet and it has no jobs: the setting "
            "applies when a node starts it (check the name if that is not what you meant)"
        )
    return EXIT_OK


def _changed(before: ExecutorControl, after: ExecutorControl) -> bool:
    return (before.paused, before.scaled, before.max_concurrency) != (
        after.paused,
        after.scaled,
        after.max_concurrency,
    )


def _limit_text(state: ExecutorControl) -> str:
    if not state.scaled:
        return "the class default"
    return f"{state.max_concurrency} per node"


def _state(row: ExecutorControl) -> Cell:
    return ("paused", "bold red") if row.paused else ("active", "green")


def _per_node(row: ExecutorControl) -> Cell:
    if not row.scaled:
        return _DEFAULT
    return f"{row.max_concurrency} (scaled)"


def _limit(value: int | None) -> Cell:
    return ("-", "dim") if value is None else str(value)


def _rate(rate: RateLimit | None) -> Cell:
    if rate is None:
        return ("-", "dim")
    text = f"{rate.allowed} / {format_period(rate.period)}"
    return f"{text} per partition" if rate.per_partition else text


def _headroom(row: ExecutorControl) -> Cell:
    headroom = row.rate_headroom
    if headroom is None:
        return ("-", "dim")
    if row.rate_limit is not None and row.rate_limit.per_partition:
        # Each partition has its own window: this is the room of one that started nothing.
        return f"up to {headroom} per partition"
    style = "red" if headroom == 0 else ""
    return (f"{headroom} left", style)


_UNITS: tuple[tuple[str, float], ...] = (
    ("w", 604800.0),
    ("d", 86400.0),
    ("h", 3600.0),
    ("m", 60.0),
    ("s", 1.0),
)


def format_period(period: timedelta) -> str:
    """A period in the units durations are written in: ``1m``, ``1h30m``, ``1.5s``, ``250ms``.

    Example:
        >>> format_period(timedelta(minutes=90))
        '1h30m'
    """
    seconds = period.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    parts: list[str] = []
    for unit, size in _UNITS:
        if unit == "s":
            if seconds:
                parts.append(f"{round(seconds, 3):g}s")
            break
        count = int(seconds // size)
        if count:
            parts.append(f"{count}{unit}")
            seconds -= count * size
    return "".join(parts)
