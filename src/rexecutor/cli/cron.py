"""``rexecutor cron list``: the cron schedules a node registers, their next and last ticks.

Schedules live in the user's code, not in the backend, so the command imports the node as
``rexecutor worker`` does (``MODULE:ATTRIBUTE``) and reads its schedules. The last tick each
one enqueued is read from the configured backend, from the tags its tick jobs carry.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from rexecutor import _clock, _cron_jobs, _views
from rexecutor._json import to_json_value
from rexecutor.backend import Backend
from rexecutor.cli.errors import EXIT_OK
from rexecutor.cli.output import Cell, Column, Output, short
from rexecutor.cli.worker import load_target
from rexecutor.cron import CronCatchUp, CronRegistration

__all__ = ["cron_list"]


async def cron_list(backend: Backend, args: argparse.Namespace, out: Output) -> int:
    """``cron list``: each schedule of the node with its policy, next tick and last tick."""
    schedules = load_target(args.target).cron_schedules
    now = _clock.now()
    rows = [(cron, await _last(backend, cron), _next(cron, now)) for cron in schedules]
    if out.json:
        out.dump([_to_json(cron, last, upcoming) for cron, last, upcoming in rows])
        return EXIT_OK
    if not rows:
        out.line(f"{args.target} registers no cron schedule")
        return EXIT_OK
    names = ("EXECUTOR", "SCHEDULE", "TIMEZONE", "DATA", "CATCH UP", "NEXT TICK", "LAST ENQUEUED")
    cells: list[list[Cell]] = [
        [
            cron.executor,
            cron.schedule.expression,
            cron.schedule.timezone,
            short(to_json_value(cron.data, "data"), 30),
            _policy(cron.catch_up),
            _moment(upcoming, now),
            _moment(last, now) if last is not None else ("none on record", "dim"),
        ]
        for cron, last, upcoming in rows
    ]
    out.table([Column(name, no_wrap=True) for name in names], cells)
    return EXIT_OK


async def _last(backend: Backend, cron: CronRegistration) -> datetime | None:
    return await _cron_jobs.last_enqueued_tick(backend, cron.executor, cron.schedule, cron.data)


def _next(cron: CronRegistration, now: datetime) -> datetime | None:
    try:
        return cron.schedule.next_after(now)
    except ValueError:  # no tick left before the end of what a datetime holds
        return None


def _policy(catch_up: CronCatchUp) -> str:
    if catch_up.policy == "all":
        return f"all (at most {catch_up.limit})"
    return catch_up.policy


def _moment(moment: datetime | None, now: datetime) -> str:
    # In UTC, the unit the ticks are stored in: the schedule's own wall time is its expression.
    if moment is None:
        return "-"
    return f"{moment.strftime('%Y-%m-%d %H:%M:%S')}Z ({_views.format_age(moment, now)})"


def _to_json(cron: CronRegistration, last: datetime | None, upcoming: datetime | None) -> Any:
    return {
        "executor": cron.executor,
        "expression": cron.schedule.expression,
        "timezone": cron.schedule.timezone,
        "data": to_json_value(cron.data, "data"),
        "catch_up": cron.catch_up.policy,
        "catch_up_limit": cron.catch_up.limit,
        "next_tick": _views.iso(upcoming),
        "last_enqueued_tick": _views.iso(last),
    }
