"""The command line's arguments: commands, options and how their values are read."""

from __future__ import annotations

import argparse
import re
from datetime import timedelta

from rexecutor import control
from rexecutor.admin import Filters
from rexecutor.backends import (
    DEFAULT_URL,
    ENV_VAR,
    LISTEN_URL_ENV_VAR,
    TRANSACTION_POOLING_ENV_VAR,
)
from rexecutor.cli.connect import READ_ENV_VAR
from rexecutor.cli.dashboard import TOKEN_ENV_VAR
from rexecutor.errors import ConfigurationError, ValidationError
from rexecutor.job import JobStatus

__all__ = ["SCALE_DEFAULT", "build_parser", "parse_duration"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)")
_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> timedelta:
    """Parse ``90s``, ``15m``, ``12h``, ``7d``, ``2w`` or combinations such as ``1d12h``.

    A bare number counts seconds. Raises ``ConfigurationError`` with the accepted forms.

    Example:
        >>> parse_duration("1d12h")
        datetime.timedelta(days=1, seconds=43200)
    """
    cleaned = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        return timedelta(seconds=float(cleaned))
    position, seconds = 0, 0.0
    for match in _DURATION.finditer(cleaned):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not cleaned or position != len(cleaned):
        raise ConfigurationError(
            f"cannot read the duration {text!r}: use a number with a unit, such as 90s, 15m, "
            "12h, 7d or 2w (or combinations such as 1d12h)"
        )
    return timedelta(seconds=seconds)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _status(text: str) -> JobStatus:
    try:
        return Filters.parse_statuses([text])[0]
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _terminal_status(text: str) -> JobStatus:
    status = _status(text)
    if not status.is_terminal:
        raise argparse.ArgumentTypeError(
            f"only finished jobs can be pruned: use complete, cancelled or discarded, not {status}"
        )
    return status


def _executor_name(text: str) -> str:
    try:
        return control.check_name(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: What ``executors scale NAME default`` is spelled with: back to the class's own limit.
SCALE_DEFAULT = "default"


def _scale(text: str) -> int | None:
    if text.strip().lower() == SCALE_DEFAULT:
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number >= 1 or {SCALE_DEFAULT!r} (the class's own limit), "
            f"got {text!r}"
        ) from None
    try:
        return control.check_scale(value)
    except ConfigurationError:
        # The rule is control's; the wording is the command line's (no ``None`` here).
        raise argparse.ArgumentTypeError(
            f"expected a whole number >= 1 or {SCALE_DEFAULT!r}, got {value}; to stop "
            "claiming altogether, use `rexecutor executors pause NAME`"
        ) from None


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="rexecutor",
        description="Run rexecutor workers and manage their jobs.",
        epilog="Exit codes: 0 done, 1 not found or nothing to do, 2 usage or configuration "
        "error, 3 backend unavailable.",
    )
    parser.add_argument(
        "--backend",
        help=f"backend URL (default: ${ENV_VAR}, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--read-url",
        help=f"read-only commands and dashboard pages read here, e.g. a streaming replica "
        f"(default: ${READ_ENV_VAR}, else the backend)",
    )
    parser.add_argument(
        "--listen-url",
        help=f"PostgreSQL: a direct server URL for the wake-up listeners, when --backend goes "
        f"through PgBouncer (default: ${LISTEN_URL_ENV_VAR})",
    )
    parser.add_argument(
        "--transaction-pooling",
        action="store_true",
        default=None,
        help=f"PostgreSQL: --backend goes through a transaction pooler such as PgBouncer "
        f"(default: ${TRANSACTION_POOLING_ENV_VAR})",
    )
    parser.add_argument(
        "--log-level",
        default=None,
        help="logging level (default INFO for worker and dashboard, WARNING otherwise)",
    )
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print JSON instead of tables")
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument(
        "--executor", "-e", action="append", default=[], help="only this executor (repeatable)"
    )
    filters.add_argument("--tag", "-t", action="append", default=[], help="only jobs with this tag")

    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    worker = commands.add_parser("worker", help="run a node until SIGINT/SIGTERM")
    worker.add_argument("target", help="MODULE:ATTRIBUTE naming a Rexecutor or a factory")
    worker.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        help="seconds running jobs get to finish at shutdown before they are handed back",
    )
    commands.add_parser("migrate", help="create or upgrade the backend's schema")

    jobs = commands.add_parser("jobs", help="list, show, cancel, rerun and retry jobs")
    actions = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list", parents=[output, filters], help="list jobs, newest first, a page at a time"
    )
    listing.add_argument(
        "--status", "-s", action="append", default=[], type=_status, help="only this status"
    )
    listing.add_argument("--limit", type=_positive, default=50, help="page size (default 50)")
    listing.add_argument("--offset", type=_non_negative, default=0, help="jobs to skip")
    listing.add_argument("--oldest-first", action="store_true", help="oldest jobs first")
    show = actions.add_parser("show", parents=[output], help="one job in full, with its errors")
    show.add_argument("id", type=_positive, help="the job's id")
    cancel = actions.add_parser(
        "cancel", parents=[output], help="cancel a job (a running one is stopped)"
    )
    cancel.add_argument("id", type=_positive, help="the job's id")
    cancel.add_argument(
        "--reason", default="cancelled from the command line", help="recorded with the job"
    )
    rerun = actions.add_parser("rerun", parents=[output], help="run a job again now")
    rerun.add_argument("id", type=_positive, help="the job's id")
    retry = actions.add_parser(
        "retry", parents=[output, filters], help="run again every job that matches (bulk)"
    )
    retry.add_argument(
        "--status",
        "-s",
        action="append",
        default=[],
        type=_status,
        help="jobs with this status (repeatable; default discarded)",
    )
    retry.add_argument("--limit", type=_positive, default=None, help="retry at most this many")
    retry.add_argument("--dry-run", action="store_true", help="show what would be retried")

    stats = commands.add_parser(
        "stats", parents=[output], help="jobs per executor and status, and throughput"
    )
    stats.add_argument(
        "--minutes", type=_positive, default=15, help="throughput window in minutes (default 15)"
    )

    prune = commands.add_parser(
        "prune", parents=[output], help="delete finished jobs once, with the pruner's rules"
    )
    prune.add_argument(
        "--status",
        required=True,
        type=_terminal_status,
        help="complete, cancelled or discarded",
    )
    rule = prune.add_mutually_exclusive_group(required=True)
    rule.add_argument(
        "--max-age", type=_duration, help="delete jobs finished longer ago than this (e.g. 7d)"
    )
    rule.add_argument(
        "--max-length", type=_non_negative, help="keep this many most recent jobs, delete the rest"
    )
    prune.add_argument("--only", action="append", default=[], help="only this executor")
    prune.add_argument(
        "--except", dest="exclude", action="append", default=[], help="never this executor"
    )
    prune.add_argument("--batch-size", type=_positive, default=1000, help="rows per statement")

    nodes = commands.add_parser("nodes", parents=[output], help="nodes and their heartbeats")
    nodes.add_argument(
        "--stale-after",
        type=_duration,
        default=timedelta(seconds=30),
        help="a node silent for longer is shown as not alive (default 30s)",
    )

    cron = commands.add_parser("cron", help="the cron schedules a node registers")
    cron_actions = cron.add_subparsers(dest="action", required=True, metavar="ACTION")
    cron_listing = cron_actions.add_parser(
        "list", parents=[output], help="each schedule with its catch-up, next and last tick"
    )
    cron_listing.add_argument("target", help="MODULE:ATTRIBUTE naming a Rexecutor or a factory")

    # ``executors`` alone lists, like ``executors list``; ``--json`` may come before or after
    # the action, so the actions' copy must not reset what the command's copy read.
    late_output = argparse.ArgumentParser(add_help=False)
    late_output.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON"
    )
    executors = commands.add_parser(
        "executors",
        parents=[output],
        help="executors: paused, limits, job counts; pause, resume and scale them",
        description="Without an ACTION, list the executors (as `executors list` does).",
    )
    executor_actions = executors.add_subparsers(dest="action", metavar="ACTION")
    executor_actions.add_parser(
        "list",
        parents=[late_output],
        help="each executor with its paused state, limits, counts and rate-limit headroom "
        "(the default)",
    )
    for verb, what in (
        ("pause", "stop every node claiming the executor's jobs (running ones finish)"),
        ("resume", "let every node claim the executor's jobs again"),
    ):
        toggle = executor_actions.add_parser(verb, parents=[late_output], help=what)
        toggle.add_argument("name", type=_executor_name, help="the executor's name")
    scale = executor_actions.add_parser(
        "scale", parents=[late_output], help="set the per-node limit of the executor on every node"
    )
    scale.add_argument("name", type=_executor_name, help="the executor's name")
    scale.add_argument(
        "max_concurrency",
        metavar="N",
        type=_scale,
        help=f"jobs at once per node (>= 1), or {SCALE_DEFAULT!r} for the class's own limit",
    )

    workflows = commands.add_parser("workflows", help="workflows: their jobs and dependencies")
    workflow_actions = workflows.add_subparsers(dest="action", required=True, metavar="ACTION")
    workflow_show = workflow_actions.add_parser(
        "show",
        parents=[output],
        help="the workflow's jobs as a tree of their dependencies, roots first",
    )
    workflow_show.add_argument("id", help="the workflow's id (job.workflow_id)")

    dashboard = commands.add_parser("dashboard", help="serve the web dashboard")
    dashboard.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    dashboard.add_argument("--read-only", action="store_true", help="no cancel, rerun or retry")
    dashboard.add_argument(
        "--token",
        default=None,
        help=f"require this access token (default: ${TOKEN_ENV_VAR}, else none)",
    )
    dashboard.add_argument(
        "--allow-public",
        action="store_true",
        help="allow a host other than a loopback address (needs a token)",
    )
    dashboard.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this host name, not only localhost (repeatable)",
    )
    dashboard.add_argument(
        "--refresh", type=float, default=2.0, help="seconds between live refreshes (default 2)"
    )
    return parser
