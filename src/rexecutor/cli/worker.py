"""``rexecutor worker`` and ``rexecutor migrate``: import a node and run it until a signal."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
from typing import Any

from rexecutor._redact import mask_url
from rexecutor.backends import backend_from_url
from rexecutor.cli.connect import url
from rexecutor.cli.errors import CliError
from rexecutor.rexecutor import Rexecutor

__all__ = ["load_target", "migrate", "run_worker"]

log = logging.getLogger("rexecutor")


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


async def migrate() -> None:
    """Create or upgrade the configured backend's schema (``rexecutor migrate``)."""
    backend = backend_from_url()
    await backend.connect()
    await backend.close()
    print(f"rexecutor: schema of {mask_url(url())} is up to date")
