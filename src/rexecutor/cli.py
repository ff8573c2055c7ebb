"""The ``rexecutor`` command line: run a worker, apply migrations.

``rexecutor worker MODULE:ATTRIBUTE`` imports a :class:`~rexecutor.Rexecutor` (or a function
that takes a backend and returns one) and runs it until SIGINT or SIGTERM, then shuts down
gracefully; a second signal exits at once. The backend comes from ``--backend URL``, else
``$REXECUTOR_BACKEND``, else ``sqlite:///rexecutor.db`` in the working directory.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from rexecutor.backends import DEFAULT_URL, ENV_VAR, backend_from_url
from rexecutor.errors import RexecutorError
from rexecutor.rexecutor import Rexecutor

__all__ = ["load_target", "main"]

log = logging.getLogger("rexecutor")


class CliError(Exception):
    """A problem the user can fix; printed as one sentence, exit code 2."""


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


async def _run_worker(rex: Rexecutor, shutdown_timeout: float) -> None:
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rexecutor", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--backend",
        help=f"backend URL (default: ${ENV_VAR}, else {DEFAULT_URL})",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run a node until SIGINT/SIGTERM")
    worker.add_argument("target", help="MODULE:ATTRIBUTE naming a Rexecutor or a factory")
    worker.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        help="seconds running jobs get to finish at shutdown before they are handed back",
    )
    commands.add_parser("migrate", help="create or upgrade the backend's schema")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.backend:
        os.environ[ENV_VAR] = args.backend
    try:
        if args.command == "worker":
            rex = load_target(args.target)
            asyncio.run(_run_worker(rex, args.shutdown_timeout))
        elif args.command == "migrate":
            asyncio.run(_migrate())
    except (CliError, RexecutorError) as exc:
        print(f"rexecutor: error: {exc}", file=sys.stderr)
        return 2
    return 0


async def _migrate() -> None:
    backend = backend_from_url()
    await backend.connect()
    await backend.close()
    print(f"rexecutor: schema of {os.environ.get(ENV_VAR) or DEFAULT_URL} is up to date")
