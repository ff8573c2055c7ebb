"""``RexecutorBackend``: Django's tasks framework (``django.tasks``, Django 6+) on rexecutor.

Settings (``TASKS[alias]``):

``BACKEND``
    ``"rexecutor.contrib.django.backend.RexecutorBackend"``.
``QUEUES``
    The allowed queue names (Django's default: ``["default"]``). Each queue is a rexecutor
    executor named ``django:<queue>``; the worker runs the queues it is given.
``OPTIONS``
    ``URL``: a rexecutor backend URL (``sqlite:///jobs.db``, ``postgresql://...``,
    ``memory://``). Without it the jobs live in the Django database ``DATABASE`` (default
    ``"default"``), which must then be PostgreSQL (with psycopg 3), in the schema ``SCHEMA``
    (default ``"public"``): enqueueing runs on Django's own connection, inside the current
    transaction, so a task enqueued in ``transaction.atomic()`` exists only if that block
    commits, and workers are woken when it does. ``MAX_ATTEMPTS``: attempts per task before
    it fails (default 1, as in Django: a task that raises is failed; more attempts retry it
    with rexecutor's backoff). ``MIGRATE``: create or upgrade rexecutor's tables on first use
    and after ``manage.py migrate`` (default True). ``TASK_MODULES``: modules (or packages)
    outside ``INSTALLED_APPS`` whose tasks workers may run.

Which tasks a worker runs: a job row names its task by module path, and a row can be written
by anyone with access to the database, so the path is checked before anything is imported.
Only tasks of a ``RexecutorBackend`` run: a path is accepted once such a task with that path
has been defined in the process, or when its module lies inside an installed app, a
``TASK_MODULES`` entry or a module given to ``rexecutor_worker --import-module`` (that
module is then imported, and the path must name a task it defined). Any other path is
cancelled with an error saying so, without importing it.

With a ``URL``, enqueueing is not part of Django's transaction: to enqueue only after a
commit, use ``transaction.on_commit(partial(my_task.enqueue, ...))``.

What maps to what: a task's ``priority`` (-100 to 100, higher first) becomes rexecutor
priority ``100 - priority``; ``run_after`` the job's ``scheduled_at``; the ``TaskResult`` id is
the job id. Statuses: scheduled or retryable → ``READY``, executing → ``RUNNING``, complete →
``SUCCESSFUL``, cancelled or discarded → ``FAILED``. The return value is stored in the job's
metadata. ``TaskResult.worker_ids`` holds the last worker's node id once per attempt (rexecutor
records only the last). Results are read through rexecutor's own connection, so a task
enqueued in a transaction that has not committed yet is not found.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import re
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from rexecutor import sync
from rexecutor.backend import Backend
from rexecutor.backends import backend_from_url
from rexecutor.builder import JobBuilder
from rexecutor.errors import JobNotFound
from rexecutor.executor import Executor
from rexecutor.job import ErrorType, Job, JobError, JobStatus
from rexecutor.result import ExecutionResult
from rexecutor.rexecutor import Rexecutor

if TYPE_CHECKING:
    # Django ships no type information; these stand-ins describe what is used here.

    class BaseTaskBackend:
        alias: str
        queues: set[str]
        options: dict[str, Any]
        supports_defer: bool
        supports_async_task: bool
        supports_get_result: bool
        supports_priority: bool

        def __init__(self, alias: str, params: dict[str, Any]) -> None: ...

        def validate_task(self, task: Any) -> None: ...

    ImproperlyConfigured: Any
    apps: Any
    TaskError: Any
    TaskContext: Any
    TaskResult: Any
    TaskResultDoesNotExist: Any
    TaskResultStatus: Any
    close_old_connections: Any
    connections: Any
    import_string: Any
    normalize_json: Any
    task_enqueued: Any
    task_finished: Any
    task_started: Any
    task_backends: Any
    timezone: Any
else:
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured
    from django.db import close_old_connections, connections
    from django.tasks import task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskContext, TaskError, TaskResult, TaskResultStatus
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils import timezone
    from django.utils.json import normalize_json
    from django.utils.module_loading import import_string

__all__ = [
    "DjangoTaskExecutor",
    "RexecutorBackend",
    "TaskCall",
    "UnknownTask",
    "allow_task_modules",
    "migrate_stores",
]

#: Executor names of Django task queues start with this.
PREFIX = "django:"

_TASK_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
# Module paths of the tasks defined for a RexecutorBackend in this process, and the modules
# besides the installed apps whose tasks may be imported: see the module docstring.
_known_tasks: set[str] = set()
_task_modules: set[str] = set()
_registry_lock = threading.Lock()


class UnknownTask(ValueError):
    """A job names a task path that is not a registered task; nothing was imported."""


def allow_task_modules(modules: Iterable[str]) -> None:
    """Let workers import tasks from ``modules`` (module or package names), besides the
    installed apps. ``TASK_MODULES`` and ``rexecutor_worker --import-module`` call this."""
    with _registry_lock:
        _task_modules.update(str(m) for m in modules)


class TaskCall(BaseModel):
    """What a Django task's job stores: the task, its arguments and how it was enqueued."""

    path: str
    args: list[Any]
    kwargs: dict[str, Any]
    backend: str
    priority: int = 0
    queue_name: str = "default"
    run_after: datetime | None = None


class DjangoTaskExecutor(Executor[TaskCall, dict[str, Any]], abstract=True):
    """Runs Django tasks; one subclass per queue (:meth:`for_queue`), named ``django:<queue>``.

    A plain task function runs in a worker thread, between ``close_old_connections()`` calls
    as a request would; a coroutine function runs on the worker's event loop. The return
    value (JSON-normalised, as Django does) is written to the job's metadata before the job
    completes.
    """

    _queues: ClassVar[dict[str, type[DjangoTaskExecutor]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @classmethod
    def for_queue(cls, queue: str) -> type[DjangoTaskExecutor]:
        """The executor class of ``queue`` (made once per process)."""
        with cls._lock:
            found = cls._queues.get(queue)
            if found is None:
                found = type(
                    f"DjangoTaskExecutor[{queue}]",
                    (DjangoTaskExecutor,),
                    {"name": f"{PREFIX}{queue}", "__module__": __name__},
                )
                cls._queues[queue] = found
            return found

    async def execute(self, job: Job[TaskCall, dict[str, Any]]) -> ExecutionResult | None:
        """Run the task once; raise what it raises.

        A job that names no registered task is cancelled with the reason, never imported.
        """
        try:
            task = _load_task(job.data)
        except UnknownTask as exc:
            return ExecutionResult.Cancel(str(exc))
        result = _task_result(job, task, running=True)
        call_args = list(job.data.args)
        if task.takes_context:
            call_args.insert(0, TaskContext(task_result=result))
        final = job.is_final_attempt
        if inspect.iscoroutinefunction(task.func):
            task_started.send(sender=RexecutorBackend, task_result=result)
            try:
                value = normalize_json(await task.func(*call_args, **job.data.kwargs))
            except BaseException:
                if final:
                    _finish(result, TaskResultStatus.FAILED)
                raise
            _finish(result, TaskResultStatus.SUCCESSFUL, value)
        else:
            value = await asyncio.to_thread(_run_sync, task, result, call_args, job, final)
        job.metadata = {**(job.metadata or {}), "return_value": value}
        try:
            await type(self).update_job_on_backend(job, self.backend)
        except Exception as exc:  # the task ran: do not run it again for want of its result
            _log_lost_result(job, exc)
        return None


def _run_sync(
    task: Any,
    result: Any,
    call_args: list[Any],
    job: Job[TaskCall, dict[str, Any]],
    final: bool,
) -> Any:
    close_old_connections()
    try:
        task_started.send(sender=RexecutorBackend, task_result=result)
        try:
            value = normalize_json(task.func(*call_args, **job.data.kwargs))
        except BaseException:
            if final:
                _finish(result, TaskResultStatus.FAILED)
            raise
        _finish(result, TaskResultStatus.SUCCESSFUL, value)
        return value
    finally:
        close_old_connections()


def _finish(result: Any, status: Any, value: Any = None) -> None:
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", timezone.now())
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", value)
    task_finished.send(sender=RexecutorBackend, task_result=result)


def _log_lost_result(job: Job[Any, Any], exc: Exception) -> None:
    import logging

    logging.getLogger("rexecutor").error(
        "job %s (%s): the task ran, but storing its return value failed: %s",
        int(job.id),
        job.executor,
        exc,
    )


def _importable(module: str) -> bool:
    roots = [config.name for config in apps.get_app_configs()]
    with _registry_lock:
        roots.extend(_task_modules)
    return any(module == root or module.startswith(root + ".") for root in roots)


def _load_task(call: TaskCall) -> Any:
    """The task a job names, checked before anything is imported (see the module docstring).

    Raises ``UnknownTask`` for a path that is not a registered task.
    """
    path = call.path
    with _registry_lock:
        known = path in _known_tasks
    if not known:
        module = path.rpartition(".")[0]
        if not _TASK_PATH.fullmatch(path) or not _importable(module):
            raise UnknownTask(
                f"the job names {path[:200]!r}, which is not a registered task: tasks are "
                "run only from installed apps, OPTIONS['TASK_MODULES'] and modules given to "
                "rexecutor_worker --import-module; it was not imported"
            )
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UnknownTask(
                f"the job names {path!r}, whose module cannot be imported: {exc}"
            ) from exc
        with _registry_lock:
            known = path in _known_tasks
        if not known:
            raise UnknownTask(
                f"the job names {path!r}, which is not a task of a RexecutorBackend "
                "(decorate it with @task)"
            )
    task = import_string(path)
    if not hasattr(task, "using") or not hasattr(task, "func"):
        raise UnknownTask(f"{path} is not a Django task (decorate it with @task)")
    return task.using(
        priority=call.priority,
        queue_name=call.queue_name,
        run_after=call.run_after,
        backend=call.backend,
    )


_STATUSES = {
    JobStatus.SCHEDULED: "READY",
    JobStatus.RETRYABLE: "READY",
    JobStatus.EXECUTING: "RUNNING",
    JobStatus.COMPLETE: "SUCCESSFUL",
    JobStatus.CANCELLED: "FAILED",
    JobStatus.DISCARDED: "FAILED",
}

_NOT_RAISED = {
    ErrorType.TIMEOUT: "builtins.TimeoutError",
    ErrorType.INVALID_DATA: "rexecutor.errors.ValidationError",
}


def _exception_path(error: JobError) -> str:
    """The dotted path of the exception class behind ``error``, as ``TaskError`` wants it.

    rexecutor records the class name and the formatted traceback, whose exception line
    starts with the class's module-qualified name (no module for builtins).
    """
    if error.error_type in _NOT_RAISED:
        return _NOT_RAISED[error.error_type]
    name = error.name or ""
    if error.traceback and name:
        pattern = re.compile(rf"^((?:[A-Za-z_][\w]*\.)*){re.escape(name)}(?::|$)")
        for line in reversed(error.traceback.splitlines()):
            match = pattern.match(line)
            if match:
                prefix = match[1]
                return f"{prefix}{name}" if prefix else f"builtins.{name}"
    return "rexecutor.errors.RexecutorError"


def _task_result(job: Job[Any, Any], task: Any, *, running: bool = False) -> Any:
    call = job.data if isinstance(job.data, TaskCall) else TaskCall.model_validate(job.data)
    status = "RUNNING" if running else _STATUSES[job.status]
    result = TaskResult(
        task=task,
        id=str(int(job.id)),
        status=TaskResultStatus(status),
        enqueued_at=job.inserted_at,
        started_at=job.attempted_at,
        finished_at=None if running else job.finished_at,
        last_attempted_at=job.attempted_at,
        args=call.args,
        kwargs=call.kwargs,
        backend=call.backend,
        errors=[
            TaskError(
                exception_class_path=_exception_path(error),
                traceback=error.traceback or error.details,
            )
            for error in job.errors
        ],
        worker_ids=[job.attempted_by or ""] * job.attempt,
    )
    if job.status is JobStatus.COMPLETE and not running:
        object.__setattr__(result, "_return_value", (job.metadata or {}).get("return_value"))
    return result


# -- where the jobs live -----------------------------------------------------------------------

# Django makes one task backend per thread; what they store in is shared by the process.
_stores_lock = threading.Lock()
_stores: dict[tuple[Any, ...], Backend] = {}
_migrated: set[tuple[Any, ...]] = set()

#: Database settings that are Django's own, not libpq connection parameters.
_DJANGO_DB_OPTIONS = frozenset(
    {
        "assume_role",
        "context",
        "cursor_factory",
        "isolation_level",
        "pool",
        "prepare_threshold",
        "server_side_binding",
    }
)


def _conninfo(settings: dict[str, Any]) -> str:
    """A libpq connection string for a Django PostgreSQL database's settings."""
    from psycopg.conninfo import make_conninfo

    params: dict[str, Any] = {
        "dbname": settings.get("NAME"),
        "user": settings.get("USER"),
        "password": settings.get("PASSWORD"),
        "host": settings.get("HOST"),
        "port": settings.get("PORT"),
    }
    for key, value in (settings.get("OPTIONS") or {}).items():
        if key not in _DJANGO_DB_OPTIONS and isinstance(value, str | int):
            params[key] = value
    return make_conninfo("", **{k: v for k, v in params.items() if v not in (None, "")})


class RexecutorBackend(BaseTaskBackend):
    """A ``django.tasks`` backend that stores tasks as rexecutor jobs.

    Supports deferred tasks (``run_after``), priorities, async tasks and results.
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options = {str(k).upper(): v for k, v in self.options.items()}
        self._url: str | None = options.get("URL")
        self._database: str = options.get("DATABASE", "default")
        self._schema: str = options.get("SCHEMA", "public")
        self._migrate: bool = bool(options.get("MIGRATE", True))
        attempts = options.get("MAX_ATTEMPTS", 1)
        if not isinstance(attempts, int) or attempts < 1:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS']['MAX_ATTEMPTS'] must be an int >= 1, got {attempts!r}"
            )
        self._max_attempts = attempts
        modules = options.get("TASK_MODULES", ())
        if isinstance(modules, str) or not all(isinstance(m, str) for m in modules):
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS']['TASK_MODULES'] must be a list of module names, "
                f"got {modules!r}"
            )
        allow_task_modules(modules)

    def validate_task(self, task: Any) -> None:
        """Django's checks; a task that passes them is one this process's workers may run."""
        super().validate_task(task)
        with _registry_lock:
            _known_tasks.add(task.module_path)

    # -- the store ---------------------------------------------------------------------------

    def _target(self) -> tuple[tuple[Any, ...], str | None]:
        """The store's identity, and the Django database to enqueue on (None: none)."""
        if self._url:
            return ("url", self._url), None
        try:
            conn = connections[self._database]
        except Exception as exc:
            raise ImproperlyConfigured(
                f"TASKS[{self.alias!r}]: no Django database {self._database!r}: {exc}"
            ) from exc
        if conn.vendor != "postgresql":
            raise ImproperlyConfigured(
                f"TASKS[{self.alias!r}]: the jobs can live in the Django database only on "
                f"PostgreSQL, and {self._database!r} is {conn.vendor}; set "
                "OPTIONS['URL'] to a rexecutor backend URL (for example sqlite:///jobs.db)"
            )
        if not getattr(conn, "is_psycopg3", True):
            raise ImproperlyConfigured(
                f"TASKS[{self.alias!r}]: enqueueing on Django's connection needs psycopg 3 "
                "(pip install 'psycopg[binary]'); psycopg2 is in use"
            )
        return ("pg", _conninfo(conn.settings_dict), self._schema), self._database

    def new_store(self) -> Backend:
        """A new, unconnected rexecutor backend on this task backend's store (a worker's)."""
        key, _ = self._target()
        return _make_store(key)

    def _store(self, *, migrate: bool | None = None) -> tuple[Backend, str | None]:
        """The shared store (migrated on first use if MIGRATE), and the database to join."""
        key, database = self._target()
        with _stores_lock:
            store = _stores.get(key)
            if store is None:
                store = _stores[key] = _make_store(key)
            pending = key not in _migrated
        if (self._migrate if migrate is None else migrate) and pending:
            sync.migrate(store)
            with _stores_lock:
                _migrated.add(key)
        return store, database

    def migrate(self) -> None:
        """Create or upgrade rexecutor's tables in this backend's store (idempotent)."""
        key, _ = self._target()
        with _stores_lock:
            _migrated.discard(key)
        self._store(migrate=True)

    # -- django.tasks ------------------------------------------------------------------------

    def builder(
        self, task: Any, args: Iterable[Any], kwargs: dict[str, Any]
    ) -> JobBuilder[Any, Any]:
        """The job builder for one call of ``task`` (validated by Django's rules first)."""
        self.validate_task(task)
        run_after = task.run_after
        if run_after is not None and timezone.is_naive(run_after):
            run_after = timezone.make_aware(run_after)
        call = TaskCall(
            path=task.module_path,
            args=normalize_json(list(args)),
            kwargs=normalize_json(dict(kwargs)),
            backend=self.alias,
            priority=task.priority,
            queue_name=task.queue_name,
            run_after=run_after,
        )
        builder = (
            DjangoTaskExecutor.for_queue(task.queue_name)
            .builder()
            .with_data(call)
            .with_priority(100 - int(task.priority))
            .with_max_attempts(self._max_attempts)
        )
        if run_after is not None:
            builder = builder.schedule_at(run_after)
        return builder

    def enqueue(self, task: Any, args: Iterable[Any], kwargs: dict[str, Any]) -> Any:
        """Store a job for ``task(*args, **kwargs)``; returns its ``TaskResult`` (READY)."""
        builder = self.builder(task, args, kwargs)
        store, database = self._store()
        if database is not None:
            conn = connections[database]
            conn.ensure_connection()
            job_id = sync.enqueue(builder, store, connection=conn.connection)
        else:
            job_id = sync.enqueue(builder, store)
        result = TaskResult(
            task=task,
            id=str(int(job_id)),
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: Any) -> Any:
        """The ``TaskResult`` of the job with this id, or ``TaskResultDoesNotExist``."""
        try:
            job_id = int(result_id)
        except (TypeError, ValueError):
            raise TaskResultDoesNotExist(result_id) from None
        store, _ = self._store()
        try:
            job = sync.call(lambda b: b.get_job(job_id), store)
        except JobNotFound:
            raise TaskResultDoesNotExist(result_id) from None
        if not job.executor.startswith(PREFIX):
            raise TaskResultDoesNotExist(result_id)
        call = TaskCall.model_validate(job.data)
        return _task_result(job, _load_task(call))

    # -- running -----------------------------------------------------------------------------

    def make_node(self, queues: Iterable[str] | None = None, **settings: Any) -> Rexecutor:
        """A node (on a new store connection) that runs ``queues`` (default: all QUEUES).

        ``settings`` go to :class:`~rexecutor.Rexecutor` (``poll_interval`` and so on).
        """
        names = sorted(set(queues if queues is not None else self.queues))
        if not names:
            raise ImproperlyConfigured(
                f"TASKS[{self.alias!r}] allows any queue (QUEUES is empty): name the queues to run"
            )
        unknown = [q for q in names if self.queues and q not in self.queues]
        if unknown:
            raise ImproperlyConfigured(
                f"queue(s) {', '.join(unknown)} are not in TASKS[{self.alias!r}]['QUEUES'] "
                f"({', '.join(sorted(self.queues))})"
            )
        store = self.new_store()
        node = Rexecutor(store, **settings)
        for queue in names:
            node.with_executor(DjangoTaskExecutor.for_queue(queue)(store))
        return node


def _make_store(key: tuple[Any, ...]) -> Backend:
    if key[0] == "url":
        return backend_from_url(key[1])
    from rexecutor.backends.postgres import PostgresBackend

    return PostgresBackend(key[1], schema=key[2])


def migrate_stores(database: str | None = None) -> None:
    """Migrate the store of every rexecutor task backend (or of those kept in ``database``)."""
    for alias in task_backends.settings:
        backend = task_backends[alias]
        if not isinstance(backend, RexecutorBackend) or not backend._migrate:
            continue
        with contextlib.suppress(ImproperlyConfigured):
            _key, kept_in = backend._target()
            if database is None or kept_in == database:
                backend.migrate()
