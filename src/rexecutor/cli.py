"""The ``rexecutor`` command line: run a worker, apply migrations, manage jobs, serve a dashboard.

``rexecutor worker MODULE:ATTRIBUTE`` imports a :class:`~rexecutor.Rexecutor` (or a function
that takes a backend and returns one) and runs it until SIGINT or SIGTERM, then shuts down
gracefully; a second signal exits at once. The backend comes from ``--backend URL``, else
``$REXECUTOR_BACKEND``, else ``sqlite:///rexecutor.db`` in the working directory.

The other commands manage stored jobs through the backend protocol, so they work on every
backend: ``jobs list|show|cancel|rerun|retry``, ``stats``, ``prune``, ``nodes`` and
``dashboard``. They print tables, or JSON with ``--json``. Exit codes: 0 done; 1 the job does
not exist, or the action applied to nothing (a cancel of a finished job, a rerun of an
executing job, a bulk retry that matched no job); 2 a usage or configuration error; 3 the
backend is unavailable.

Only ``rexecutor migrate`` (and a worker) creates or upgrades the schema: the management
commands connect with ``migrate=False``, so pointing one at the wrong database is an error
that names the database and says to run ``rexecutor migrate`` (exit code 2), never new empty
tables there. Connection URLs are shown with their password masked.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import io
import logging
import os
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rexecutor import _clock
from rexecutor._redact import mask_secrets, mask_url
from rexecutor.backend import Backend, PruneSpec
from rexecutor.backends import DEFAULT_URL, ENV_VAR, backend_from_url
from rexecutor.errors import (
    BackendError,
    ConfigurationError,
    InvalidTransition,
    JobNotFound,
    RexecutorError,
    ValidationError,
)
from rexecutor.job import Job, JobStatus
from rexecutor.rexecutor import Rexecutor
from rexecutor.web import ops
from rexecutor.web.ops import is_loopback

if TYPE_CHECKING:
    from rich.text import Text

# rich is imported by the management commands only, so that a worker starts no slower.

__all__ = [
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "TOKEN_ENV_VAR",
    "CliError",
    "is_loopback",
    "load_target",
    "main",
    "run_worker",
]

log = logging.getLogger("rexecutor")

#: Success.
EXIT_OK = 0
#: The job does not exist, or the action applied to nothing.
EXIT_NOT_FOUND = 1
#: A usage or configuration error (bad option, bad URL, missing extra, missing database).
EXIT_USAGE = 2
#: The backend is unavailable (cannot connect, refused, corrupt).
EXIT_UNAVAILABLE = 3

#: The environment variable that holds the dashboard's access token when --token is not given.
TOKEN_ENV_VAR = "REXECUTOR_DASHBOARD_TOKEN"

STATUS_STYLES = {
    JobStatus.SCHEDULED: "cyan",
    JobStatus.EXECUTING: "blue",
    JobStatus.RETRYABLE: "yellow",
    JobStatus.COMPLETE: "green",
    JobStatus.CANCELLED: "magenta",
    JobStatus.DISCARDED: "red",
}


class CliError(Exception):
    """A problem the user can fix; printed as one sentence, exit code 2."""


class _NothingDone(Exception):
    """The action applied to nothing: printed as one sentence, exit code 1."""


def load_target(spec: str) -> Rexecutor:
    """Import ``MODULE:ATTRIBUTE`` and return the ``Rexecutor`` it names.

    The attribute may be a ``Rexecutor`` or a callable taking the backend (built from the
    URL options) and returning one.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise CliError(f"expected MODULE:ATTRIBUTE (for example myapp.jobs:rex), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise CliError(
                f"cannot import module {module_name!r}: no module named {exc.name!r} "
                f"(run from the directory that contains it, or fix PYTHONPATH)"
            ) from exc
        raise
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise CliError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if isinstance(target, Rexecutor):
        return target
    if isinstance(target, type):
        raise CliError(
            f"{spec} is the class {target.__name__}, expected a Rexecutor instance or a "
            "function that takes a backend and returns one"
        )
    if callable(target):
        made = target(backend_from_url())
        if isinstance(made, Rexecutor):
            return made
        raise CliError(f"{spec} returned {type(made).__name__}, expected a Rexecutor")
    raise CliError(f"{spec} is a {type(target).__name__}, expected a Rexecutor or a factory")


async def run_worker(rex: Rexecutor, shutdown_timeout: float) -> None:
    """Run ``rex`` until SIGINT or SIGTERM, then shut it down gracefully and close its backend.

    A second signal exits at once. The ``worker`` command and Django's ``rexecutor_worker``
    management command both run their node through this.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            log.warning("second signal: exiting at once")
            os._exit(128 + signum)
        log.info(
            "received %s: shutting down (send it again to exit at once)",
            signal.Signals(signum).name,
        )
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    await rex.start()
    try:
        await stop.wait()
    finally:
        await rex.graceful_shutdown(timeout=shutdown_timeout)
        await rex.backend.close()


# -- the parser ---------------------------------------------------------------------------


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
        return ops.Filters.parse_statuses([text])[0]
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _terminal_status(text: str) -> JobStatus:
    status = _status(text)
    if not status.is_terminal:
        raise argparse.ArgumentTypeError(
            f"only finished jobs can be pruned: use complete, cancelled or discarded, not {status}"
        )
    return status


def _duration(text: str) -> Any:
    try:
        return ops.parse_duration(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
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
        default=ops.parse_duration("30s"),
        help="a node silent for longer is shown as not alive (default 30s)",
    )

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


# -- running ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (2) and --help (0)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    level = args.log_level or ("INFO" if args.command in ("worker", "dashboard") else "WARNING")
    if level.upper() not in logging.getLevelNamesMapping():
        return _fail(f"unknown log level {args.log_level!r}: use DEBUG, INFO, WARNING or ERROR")
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _MaskSecrets) for f in handler.filters):
            handler.addFilter(_MaskSecrets())
    previous = os.environ.get(ENV_VAR)
    if args.backend:
        # The worker's factories build their backend from the environment.
        os.environ[ENV_VAR] = args.backend
    try:
        return _run(args)
    finally:
        if args.backend:  # an in-process caller (a test) gets its environment back
            if previous is None:
                os.environ.pop(ENV_VAR, None)
            else:
                os.environ[ENV_VAR] = previous


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "worker":
            rex = load_target(args.target)
            asyncio.run(run_worker(rex, args.shutdown_timeout))
            return EXIT_OK
        if args.command == "migrate":
            asyncio.run(_migrate())
            return EXIT_OK
        if args.command == "dashboard":
            return _dashboard(args)
        handler = _HANDLERS[args.command if args.command != "jobs" else f"jobs {args.action}"]
        return asyncio.run(_with_backend(handler, args, _Output(args)))
    except _NothingDone as exc:
        return _fail(str(exc), EXIT_NOT_FOUND)
    except (JobNotFound, InvalidTransition) as exc:
        return _fail(_sentence(exc), EXIT_NOT_FOUND)
    except BackendError as exc:
        return _fail(_sentence(exc), EXIT_UNAVAILABLE)
    except (CliError, ConfigurationError, ValidationError, RexecutorError) as exc:
        return _fail(_sentence(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return 130


class _MaskSecrets(logging.Filter):
    """Masks the password of any connection URL in a log line (a driver's message may quote
    the URL it was given)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def _sentence(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"rexecutor: error: {mask_secrets(message)}", file=sys.stderr)
    return code


def _url() -> str:
    return os.environ.get(ENV_VAR) or DEFAULT_URL


async def _migrate() -> None:
    backend = backend_from_url()
    await backend.connect()
    await backend.close()
    print(f"rexecutor: schema of {mask_url(_url())} is up to date")


def _existing_backend() -> Backend:
    """The configured backend, set not to create or upgrade its schema.

    A SQLite file that does not exist yet is refused (a typo in the path would otherwise
    create an empty database and show nothing); :func:`_connect` refuses a database without
    the schema.
    """
    backend = backend_from_url()
    from rexecutor.backends import InMemoryBackend

    if isinstance(backend, InMemoryBackend):
        return backend
    path = getattr(backend, "path", None)
    if isinstance(path, str):  # SQLite
        if not os.path.exists(path):
            raise CliError(
                f"no SQLite database at {os.path.abspath(path)}: check --backend or "
                f"${ENV_VAR}, or create it with `rexecutor migrate`"
            )
        from rexecutor.backends.sqlite import SqliteBackend

        return SqliteBackend(path, migrate=False)
    from rexecutor.backends.postgres import PostgresBackend

    return PostgresBackend(_url(), migrate=False)


async def _connect(backend: Backend) -> None:
    """Connect ``backend`` (made by :func:`_existing_backend`); a missing or old schema is a
    ``CliError`` that names the database and says to run ``rexecutor migrate``."""
    try:
        await backend.connect()
    except BackendError as exc:
        # Both SQL backends, asked not to migrate, say so by pointing at migrate=True or at
        # backend.migrate(): that is the one failure `rexecutor migrate` fixes.
        text = str(exc)
        if "migrate" not in text:
            raise
        raise CliError(
            f"{mask_url(_url())} holds no up-to-date rexecutor schema ({text.split(':')[0]}): "
            "check --backend or $REXECUTOR_BACKEND, or create it with `rexecutor migrate`"
        ) from None


Handler = Callable[[Backend, argparse.Namespace, "_Output"], Awaitable[int]]


async def _with_backend(handler: Handler, args: argparse.Namespace, out: _Output) -> int:
    backend = _existing_backend()
    await _connect(backend)
    try:
        return await handler(backend, args, out)
    finally:
        await backend.close()


class _Output:
    """Tables on a rich console, or JSON, on standard output."""

    def __init__(self, args: argparse.Namespace) -> None:
        from rich.console import Console

        self.json = bool(getattr(args, "json", False))
        # A stored value may hold a lone surrogate, which no encoding can write: print it as
        # a \\uXXXX escape (still valid JSON) instead of failing half-way through the output.
        if isinstance(sys.stdout, io.TextIOWrapper):
            sys.stdout.reconfigure(errors="backslashreplace")
        width = None
        if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
            width = max(shutil.get_terminal_size((160, 24)).columns, 160)
        self.console = Console(file=sys.stdout, width=width, highlight=False, soft_wrap=False)

    def dump(self, value: Any) -> None:
        """Print ``value`` as strict JSON (see :func:`rexecutor.web.ops.dumps_json`)."""
        print(ops.dumps_json(value, indent=2))

    def print(self, *items: Any) -> None:
        self.console.print(*items)

    def note(self, message: str) -> None:
        """A line for people (not printed in JSON mode)."""
        from rich.text import Text

        if not self.json:
            self.console.print(Text(message, style="dim"))


def _status_text(status: JobStatus) -> Text:
    from rich.text import Text

    return Text(status.value, style=STATUS_STYLES.get(status, ""))


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return f"{moment.astimezone().strftime('%Y-%m-%d %H:%M:%S')} ({ops.format_age(moment)})"


def _short(value: Any, limit: int = 40) -> str:
    return _clip(ops.dumps_json(value), limit)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _filters(args: argparse.Namespace, default_statuses: tuple[JobStatus, ...] = ()) -> ops.Filters:
    statuses = tuple(dict.fromkeys(args.status)) or default_statuses
    return ops.Filters(
        executors=tuple(dict.fromkeys(args.executor)),
        statuses=statuses,
        tags=tuple(dict.fromkeys(args.tag)),
    )


# -- jobs ---------------------------------------------------------------------------------


async def _jobs_list(backend: Backend, args: argparse.Namespace, out: _Output) -> int:
    from rich.table import Table
    from rich.text import Text

    filters = _filters(args)
    found = await backend.query(
        filters.node(), limit=args.limit, offset=args.offset, newest_first=not args.oldest_first
    )
    if out.json:
        out.dump([ops.job_to_json(job) for job in found])
        return EXIT_OK
    if not found:
        out.print(Text("no jobs match" + (" on this page" if args.offset else "")))
        return EXIT_OK
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("ID", "EXECUTOR", "STATUS", "ATTEMPT", "TAGS", "WHEN", "DATA", "LAST ERROR"):
        table.add_column(name, justify="right" if name == "ID" else "left", no_wrap=True)
    for job in found:
        last = job.errors[-1] if job.errors else None
        table.add_row(
            str(int(job.id)),
            Text(job.executor),
            _status_text(job.status),
            f"{job.attempt}/{job.max_attempts}",
            Text(",".join(job.tags)),
            _row_when(job),
            Text(_short(job.data, 30)),
            Text(
                _clip(f"{last.name or last.error_type.value}: {last.details}", 50) if last else ""
            ),
        )
    out.print(table)
    first = args.offset + 1
    note = f"jobs {first}-{args.offset + len(found)}"
    if len(found) == args.limit:
        note += f"; next page: --offset {args.offset + args.limit}"
    out.note(note)
    return EXIT_OK


def _row_when(job: Job[Any, Any]) -> str:
    if job.finished_at is not None:
        return f"{job.status.value} {ops.format_age(job.finished_at)}"
    if job.status is JobStatus.EXECUTING:
        return f"started {ops.format_age(job.attempted_at)}"
    return f"due {ops.format_age(job.scheduled_at)}"


async def _jobs_show(backend: Backend, args: argparse.Namespace, out: _Output) -> int:
    from rich.table import Table
    from rich.text import Text

    job = await backend.get_job(ops.check_job_id(args.id))
    if out.json:
        out.dump(ops.job_to_json(job, history=True))
        return EXIT_OK
    fields = Table(box=None, show_header=False, pad_edge=False)
    fields.add_column(style="bold")
    fields.add_column()
    fields.add_row("id", str(int(job.id)))
    fields.add_row("executor", Text(job.executor))
    fields.add_row("status", _status_text(job.status))
    fields.add_row("attempt", f"{job.attempt} of {job.max_attempts}")
    fields.add_row("priority", str(job.priority))
    fields.add_row("tags", Text(", ".join(job.tags) or "-"))
    for label, moment in (
        ("inserted", job.inserted_at),
        ("scheduled", job.scheduled_at),
        ("attempted", job.attempted_at),
        ("completed", job.completed_at),
        ("cancelled", job.cancelled_at),
        ("discarded", job.discarded_at),
    ):
        if moment is not None:
            fields.add_row(label, _when(moment))
    if job.attempted_by:
        fields.add_row("attempted by", Text(job.attempted_by))
    out.print(fields)
    out.print(Text("\ndata", style="bold"))
    out.print(Text(ops.dumps_json(job.data, indent=2)))
    out.print(Text("\nmetadata", style="bold"))
    out.print(Text(ops.dumps_json(job.metadata, indent=2)))
    out.print(Text("\nhistory", style="bold"))
    history = Table(box=None, show_header=False, pad_edge=False)
    history.add_column(no_wrap=True)
    history.add_column(no_wrap=True)
    history.add_column()
    for entry in ops.job_history(job):
        history.add_row(_when(entry.at), Text(entry.event, style="bold"), Text(entry.detail))
    out.print(history)
    if job.errors:
        out.print(Text(f"\nerrors ({len(job.errors)})", style="bold"))
        for error in job.errors:
            head = f"attempt {error.attempt} · {error.error_type.value}"
            if error.name:
                head += f" · {error.name}"
            out.print(Text(f"{head} · {_when(error.recorded_at)}", style="red"))
            out.print(Text(f"  {error.details}"))
            if error.traceback:
                out.print(Text(error.traceback.rstrip(), style="dim"))
    return EXIT_OK


async def _jobs_cancel(backend: Backend, args: argparse.Namespace, out: _Output) -> int:
    from rich.text import Text

    result = await ops.cancel_job(backend, ops.check_job_id(args.id), args.reason)
    if out.json:
        out.dump({"id": result.job_id, "cancelled": result.cancelled, "status": result.status})
    if not result.cancelled:
        raise _NothingDone(f"job {result.job_id} is already {result.status}: nothing to cancel")
    if not out.json:
        out.print(Text(f"job {result.job_id} cancelled"))
    return EXIT_OK


async def _jobs_rerun(backend: Backend, args: argparse.Namespace, out: _Output) -> int:
    from rich.text import Text

    try:
        job = await ops.rerun_job(backend, ops.check_job_id(args.id))
    except InvalidTransition:
        raise _NothingDone(
            f"job {args.id} is executing: it cannot be rerun until it finishes (or cancel it)"
        ) from None
    if out.json:
        out.dump(ops.job_to_json(job))
    else:
        out.print(Text(f"job {int(job.id)} is {job.status} again, due {_when(job.scheduled_at)}"))
    return EXIT_OK


async def _jobs_retry(backend: Backend, args: argparse.Namespace, out: _Output) -> int:
    from rich.text import Text

    filters = _filters(args, default_statuses=(JobStatus.DISCARDED,))
    if JobStatus.EXECUTING in filters.statuses:
        raise CliError("executing jobs cannot be retried: cancel them first, or pick a status")
    if args.dry_run:
        found = await backend.query(filters.node(), limit=args.limit)
        if out.json:
            out.dump({"would_rerun": [int(job.id) for job in found]})
        else:
            out.print(Text(f"{len(found)} jobs would be rerun"))
        return EXIT_OK if found else _nothing_matched(filters)
    report = await ops.retry_jobs(backend, filters, limit=args.limit)
    if out.json:
        out.dump(report.to_json())
    else:
        out.print(Text(f"{len(report.rerun)} jobs rerun"))
        for job_id, why in report.skipped:
            out.print(Text(f"skipped job {job_id}: {why}", style="yellow"))
    if not report.rerun:
        return _nothing_matched(filters)
    return EXIT_OK


def _nothing_matched(filters: ops.Filters) -> int:
    parts = [f"status {'/'.join(filters.statuses)}"]
    if filters.executors:
        parts.append(f"executor {'/'.join(filters.executors)}")
    if filters.tags:
        parts.append(f"tags {', '.join(filters.tags)}")
    raise _NothingDone(f"no job matched ({'; '.join(parts)}): nothing was retried")


# -- stats, prune, nodes ------------------------------------------------------------------

_SPARKS = "▁▂▃▄▅▆▇█"


def _sparkline(values: list[int]) -> str:
    top = max(values, default=0)
    if top == 0:
        return _SPARKS[0] * len(values)
    return "".join(_SPARKS[min(7, (v * 7 + top - 1) // top)] for v in values)


async def _stats(backend: Backend, args: argparse.Namespace, out: _Output) -> int:
    from rich.table import Table
    from rich.text import Text

    overview = await ops.load_overview(backend, args.minutes)
    if out.json:
        out.dump(overview.to_json())
        return EXIT_OK
    table = Table(box=None, header_style="bold", pad_edge=False, show_footer=True)
    table.add_column("EXECUTOR", footer="total")
    totals = overview.by_status()
    for status in JobStatus.ALL:
        table.add_column(
            Text(status.value.upper(), style=STATUS_STYLES[status]),
            justify="right",
            footer=str(totals[status]),
        )
    table.add_column("TOTAL", justify="right", footer=str(sum(totals.values())))
    for executor in overview.executors:
        row = overview.row(executor)
        table.add_row(Text(executor), *(str(row[s]) for s in JobStatus.ALL), str(sum(row.values())))
    out.print(table)
    completed = [per[JobStatus.COMPLETE] for _, per in overview.series]
    failed = [sum(per[s] for s in ops.FAILED_STATUSES) for _, per in overview.series]
    out.print(
        Text(f"\nlast {overview.minutes} minutes, one mark a minute (oldest left)", style="bold")
    )
    out.print(Text(f"  completed {_sparkline(completed)} {sum(completed)}", style="green"))
    out.print(Text(f"  failed    {_sparkline(failed)} {sum(failed)}", style="red"))
    out.print(Text(f"  {overview.per_minute():.1f} completed per minute"))
    return EXIT_OK


async def _prune(backend: Backend, args: argparse.Namespace, out: _Output) -> int:
    from rich.text import Text

    spec = PruneSpec(
        args.status,
        max_age=args.max_age,
        max_length=args.max_length,
        only=frozenset(args.only) or None,
        exclude=frozenset(args.exclude),
    )
    deleted = await backend.prune_jobs(spec, args.batch_size)
    if out.json:
        out.dump({"deleted": deleted, "status": spec.status.value})
    else:
        out.print(Text(f"deleted {deleted} {spec.status} jobs"))
    return EXIT_OK


async def _nodes(backend: Backend, args: argparse.Namespace, out: _Output) -> int:
    from rich.table import Table
    from rich.text import Text

    rows = await ops.list_node_rows(backend, args.stale_after)
    if out.json:
        out.dump([row.to_json() for row in rows])
        return EXIT_OK
    if not rows:
        out.print(Text("no node has recorded a heartbeat"))
        return EXIT_OK
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("NODE", "HOST", "PID", "STARTED", "HEARTBEAT", "ALIVE"):
        table.add_column(name, no_wrap=True)
    now = _clock.now()
    for row in rows:
        node = row.node
        table.add_row(
            Text(node.node_id),
            Text(node.host),
            str(node.pid),
            ops.format_age(node.started_at, now),
            ops.format_age(node.heartbeat_at, now),
            Text("yes", style="green") if row.alive else Text("no (silent)", style="red"),
        )
    out.print(table)
    return EXIT_OK


_HANDLERS: dict[str, Handler] = {
    "jobs list": _jobs_list,
    "jobs show": _jobs_show,
    "jobs cancel": _jobs_cancel,
    "jobs rerun": _jobs_rerun,
    "jobs retry": _jobs_retry,
    "stats": _stats,
    "prune": _prune,
    "nodes": _nodes,
}


# -- dashboard ----------------------------------------------------------------------------


def _dashboard(args: argparse.Namespace) -> int:
    if not is_loopback(args.host) and not args.allow_public:
        raise CliError(
            f"refusing to serve the dashboard on {args.host}, which is not a loopback address: "
            "anyone who can reach it could see and change jobs. Pass --allow-public (with "
            "--token) to do it anyway"
        )
    if args.token is not None and not args.token.strip():
        raise CliError(
            "--token is empty: give the access token, or leave the option out for none "
            "(loopback only)"
        )
    token = args.token or os.environ.get(TOKEN_ENV_VAR) or None
    if (args.allow_public or not is_loopback(args.host)) and token is None:
        raise CliError(
            f"refusing to serve the dashboard on {args.host} without an access token: anyone "
            f"who can reach it could see and change jobs. Set --token or ${TOKEN_ENV_VAR}"
        )
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port must be between 0 and 65535, got {args.port}")
    if args.refresh <= 0:
        raise CliError(f"--refresh must be positive, got {args.refresh}")
    try:
        import uvicorn

        from rexecutor.web import dashboard_app
    except ImportError as exc:
        raise CliError(
            f"the dashboard needs the web extra ({exc.name or exc} is missing): "
            "pip install 'rexecutor[web]'"
        ) from None
    backend = _existing_backend()
    app = dashboard_app(
        backend,
        read_only=args.read_only,
        token=token,
        refresh_seconds=args.refresh,
        allowed_hosts=args.allowed_host or None,
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=(args.log_level or "info").lower(),
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    where = f"http://{args.host if ':' not in args.host else f'[{args.host}]'}:{args.port}/"
    log.info(
        "dashboard on %s (%s%s)",
        where,
        "read-only" if args.read_only else "read-write",
        ", token required" if token else "",
    )

    async def serve() -> None:
        try:
            await _connect(backend)
            await server.serve()
        finally:
            await backend.close()

    try:
        asyncio.run(serve())
    except SystemExit:  # uvicorn exits when it cannot listen; it has logged why
        raise CliError(f"cannot serve the dashboard on {where} (see the message above)") from None
    return EXIT_OK
