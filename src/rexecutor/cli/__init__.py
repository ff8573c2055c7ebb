"""The ``rexecutor`` command line: run a worker, apply migrations, manage jobs, serve a dashboard.

``rexecutor worker MODULE:ATTRIBUTE`` imports a :class:`~rexecutor.Rexecutor` (or a function
that takes a backend and returns one) and runs it until SIGINT or SIGTERM, then shuts down
gracefully; a second signal exits at once. The backend comes from ``--backend URL``, else
``$REXECUTOR_BACKEND``, else ``sqlite:///rexecutor.db`` in the working directory. The commands
that only read (``jobs list|show``, ``stats``, ``nodes``, ``cron list``, ``executors [list]``,
``workflows show``) and the dashboard's pages read from ``--read-url URL`` (else
``$REXECUTOR_READ_URL``) when one is given, such as a streaming replica; actions always go to
the backend.
Behind PgBouncer in transaction mode add ``--transaction-pooling`` and ``--listen-url
DIRECT_URL`` (or ``$REXECUTOR_TRANSACTION_POOLING``, ``$REXECUTOR_LISTEN_URL``), for every
command.

The other commands manage stored jobs through the backend protocol, so they work on every
backend: ``jobs list|show|cancel|rerun|retry``, ``stats``, ``prune``, ``nodes``,
``cron list`` (which imports the node, as ``worker`` does, to read its schedules),
``executors [list]|pause|resume|scale`` (run-time control, see :mod:`rexecutor.control`),
``workflows show`` (a workflow's jobs as a tree of their dependencies) and ``dashboard``.
They print tables, or JSON with ``--json``. Exit codes: 0 done; 1 the job (or workflow) does
not exist, or the action applied to nothing (a cancel of a finished job, a rerun of an
executing job, a bulk retry that matched no job); 2 a usage or configuration error; 3 the
backend is unavailable.

Only ``rexecutor migrate`` (and a worker) creates or upgrades the schema: the management
commands connect with ``migrate=False``, so pointing one at the wrong database is an error
that names the database and says to run ``rexecutor migrate`` (exit code 2), never new empty
tables there. Connection URLs are shown with their password masked.

The package, one module per concept: ``parser`` (arguments), ``worker`` (``worker`` and
``migrate``), ``connect`` (opening the backend for a command), ``jobs`` (``jobs ...`` and
``prune``), ``stats`` (``stats`` and ``nodes``), ``cron`` (``cron list``), ``executors``
(``executors ...``), ``workflows`` (``workflows show``), ``dashboard``,
``output`` (tables and JSON; the only user of rich) and ``errors`` (exit codes). The
operations themselves are :mod:`rexecutor.admin`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from rexecutor._redact import mask_secrets
from rexecutor.backends import ENV_VAR, LISTEN_URL_ENV_VAR, TRANSACTION_POOLING_ENV_VAR
from rexecutor.cli import cron, executors, jobs, stats, workflows
from rexecutor.cli.connect import READ_ENV_VAR, Handler, with_backend
from rexecutor.cli.dashboard import TOKEN_ENV_VAR, is_loopback, serve_dashboard
from rexecutor.cli.errors import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
    NothingDone,
)
from rexecutor.cli.output import Output
from rexecutor.cli.parser import build_parser
from rexecutor.cli.worker import load_target, migrate, run_worker
from rexecutor.errors import (
    BackendError,
    ConfigurationError,
    InvalidTransition,
    JobNotFound,
    RexecutorError,
    ValidationError,
)

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

_HANDLERS: dict[str, Handler] = {
    "jobs list": jobs.jobs_list,
    "jobs show": jobs.jobs_show,
    "jobs cancel": jobs.jobs_cancel,
    "jobs rerun": jobs.jobs_rerun,
    "jobs retry": jobs.jobs_retry,
    "stats": stats.stats,
    "prune": jobs.prune,
    "nodes": stats.nodes,
    "cron list": cron.cron_list,
    "executors": executors.executors_list,
    "executors list": executors.executors_list,
    "executors pause": executors.executors_pause,
    "executors resume": executors.executors_resume,
    "executors scale": executors.executors_scale,
    "workflows show": workflows.workflows_show,
}

#: The commands that only read: with a read URL (``--read-url``) they read from it.
_READS = frozenset(
    {
        "jobs list",
        "jobs show",
        "stats",
        "nodes",
        "cron list",
        "executors",
        "executors list",
        "workflows show",
    }
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    parser = build_parser()
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
    # The worker's factories build their backend from the environment, so the options are
    # copied into it; an in-process caller (a test) gets its environment back.
    given = {
        ENV_VAR: args.backend or None,
        READ_ENV_VAR: args.read_url or None,
        LISTEN_URL_ENV_VAR: args.listen_url or None,
        TRANSACTION_POOLING_ENV_VAR: "1" if args.transaction_pooling else None,
    }
    previous = {name: os.environ.get(name) for name, value in given.items() if value}
    for name in previous:
        os.environ[name] = str(given[name])
    try:
        return _run(args)
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "worker":
            rex = load_target(args.target)
            asyncio.run(run_worker(rex, args.shutdown_timeout))
            return EXIT_OK
        if args.command == "migrate":
            asyncio.run(migrate())
            return EXIT_OK
        if args.command == "dashboard":
            return serve_dashboard(args)
        action = getattr(args, "action", None)
        name = args.command if action is None else f"{args.command} {action}"
        out = Output(bool(getattr(args, "json", False)))
        return asyncio.run(with_backend(_HANDLERS[name], args, out, reads_only=name in _READS))
    except NothingDone as exc:
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
