"""``python manage.py rexecutor_worker``: run Django's tasks until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import importlib
from typing import TYPE_CHECKING, Any

from rexecutor.cli import run_worker
from rexecutor.contrib.django.backend import RexecutorBackend, allow_task_modules

if TYPE_CHECKING:

    class BaseCommand:  # the parts of django.core.management.BaseCommand used here
        help: str
        stdout: Any

        def add_arguments(self, parser: Any) -> None: ...

    CommandError: Any
    DEFAULT_TASK_BACKEND_ALIAS: str
    task_backends: Any
else:
    from django.core.management.base import BaseCommand, CommandError
    from django.tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends


class Command(BaseCommand):
    """Run a rexecutor node for the queues of a ``RexecutorBackend`` task backend."""

    help = (
        "Run the tasks of a rexecutor TASKS backend until SIGINT or SIGTERM, then shut down "
        "gracefully (a second signal exits at once)."
    )

    def add_arguments(self, parser: Any) -> None:
        """``--backend``, ``--queue`` and ``--import-module`` (repeatable), ``--shutdown-timeout``,
        ``--poll-interval``."""
        parser.add_argument(
            "--backend",
            default=DEFAULT_TASK_BACKEND_ALIAS,
            help="the TASKS alias (default: %(default)s)",
        )
        parser.add_argument(
            "--queue",
            action="append",
            dest="queues",
            help="a queue to run; repeat for more (default: every queue in QUEUES)",
        )
        parser.add_argument(
            "--import-module",
            action="append",
            dest="modules",
            default=[],
            metavar="MODULE",
            help="import this module first and run its tasks (besides those of the installed "
            "apps and OPTIONS['TASK_MODULES']); repeatable",
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=float,
            default=30.0,
            help="seconds running tasks get to finish at shutdown before they are handed back",
        )
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=1.0,
            help="the longest an idle queue waits before looking for work again",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Build the node for the chosen queues and run it until a signal."""
        alias = options["backend"]
        try:
            backend = task_backends[alias]
        except Exception as exc:
            raise CommandError(f"no TASKS backend {alias!r}: {exc}") from exc
        if not isinstance(backend, RexecutorBackend):
            raise CommandError(
                f"TASKS[{alias!r}] is {type(backend).__name__}, not RexecutorBackend"
            )
        allow_task_modules(options["modules"])
        for module in options["modules"]:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise CommandError(f"cannot import --import-module {module!r}: {exc}") from exc
        try:
            node = backend.make_node(options["queues"], poll_interval=options["poll_interval"])
        except Exception as exc:
            raise CommandError(str(exc)) from exc
        queues = ", ".join(sorted(node.executors))
        self.stdout.write(f"rexecutor worker {node.node_id} running {queues}")
        self.stdout.flush()
        asyncio.run(run_worker(node, options["shutdown_timeout"]))
        self.stdout.write("rexecutor worker stopped")
