"""Defining executors: subclass :class:`Executor` with your data and metadata types.

Example:
    >>> from rexecutor import Executor, ExecutionResult, Job
    >>> class EmailJob(Executor[str, str]):
    ...     name = "email_job"
    ...     max_attempts = 2
    ...
    ...     async def execute(self, job: Job[str, str]) -> ExecutionResult | None:
    ...         return ExecutionResult.Done()
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Optional, TypeVar, get_args, get_origin

from pydantic import ConfigDict, PydanticUserError, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from rexecutor import _global, _waiting, admin
from rexecutor import control as _control
from rexecutor._retry import RetryPolicy
from rexecutor.backend import Backend
from rexecutor.backoff import DEFAULT_BACKOFF
from rexecutor.builder import JobBuilder
from rexecutor.control import ExecutorControl
from rexecutor.errors import ConfigurationError, ValidationError
from rexecutor.job import Job, JobId, with_payload
from rexecutor.limits import ClaimLimits, RateLimit
from rexecutor.query import And, ExecutorEquals, Where
from rexecutor.result import ExecutionResult
from rexecutor.uniqueness import UniquenessCriteria

__all__ = ["Executor"]

D = TypeVar("D")
M = TypeVar("M")


class Executor(Generic[D, M]):
    """A kind of job: its name, limits, and the code that runs it.

    Subclass ``Executor[Data, Metadata]``; the two types drive validation with pydantic when a
    job is enqueued (bad data is refused, nothing stored) and when it runs (``job.data``
    arrives as ``Data``). Any type pydantic can validate and dump to JSON works.

    Class attributes:
        name: required; the routing key stored with every job, unique per backend.
        max_attempts: attempts before a failing job is discarded (default 5).
        max_concurrency: jobs of this executor running at once on one node (None: no limit).
        blocking: run ``execute`` in a worker thread so it cannot stall the event loop. A
            thread cannot be stopped: an attempt that times out or is cancelled keeps its
            slot until its thread returns.
        run_in_process: run ``execute`` in a child process (a warm pool per executor, at
            most ``max_concurrency`` or one per CPU) so that a timeout, a cancel or a
            shutdown deadline kills it for real. Only JSON crosses: the child imports the
            class by its module path (define it at a module's top level), builds it with no
            arguments and decodes the job through its types.
        uniqueness_criteria: default uniqueness for every job of this executor.
        result_type: the type of what ``ExecutionResult.Done(result)`` stores (None, the
            default: any JSON value). A pydantic model, a dataclass, or any type pydantic can
            validate and dump to JSON: the result is validated and dumped through it when the
            attempt ends, and ``job.result`` is decoded through it when the job is read
            through this executor (``get_job``, ``query_jobs``). A stored result that no
            longer validates (the type changed since) is read as its raw JSON value, so the
            job stays readable.
        discard_on: exception classes that discard the job at once when an attempt fails
            with one of them (raised, or carried by ``ExecutionResult.Error``): the error is
            recorded, no attempt is retried.
        snooze_on: exception classes mapped to a delay: an attempt failing with one of them
            snoozes the job for that delay, giving its attempt back (like
            ``ExecutionResult.Snooze``, but the error is recorded). The most specific class
            named in either attribute wins; a timeout or a cancel is never matched.
        global_max_concurrency: at most this many jobs executing at once on all nodes of
            the backend together, counted from the stored rows (None: no limit).
        partition_max_concurrency: at most this many executing per partition key (see
            ``JobBuilder.with_partition_key``), on all nodes; other keys keep running.
        rate_limit: a :class:`~rexecutor.RateLimit`: at most ``allowed`` starts in any
            window of ``period``, on all nodes (per partition key with ``per_partition``).

    Jobs held back by a limit stay scheduled and are not charged an attempt. Operators pause,
    resume and scale an executor at run time (:meth:`pause`, :meth:`scale`); see
    :mod:`rexecutor.control`.

    A class meant only as a base for other executors passes ``abstract=True``:
    ``class Base(Executor[D, M], abstract=True)``.

    Example:
        A retry policy: a deleted invoice is discarded, a rate limit snoozed, and any other
        error retried after a backoff that looks at it.

        >>> class SyncInvoice(Executor[int, None]):
        ...     name = "sync_invoice"
        ...     discard_on = (InvoiceDeleted,)
        ...     snooze_on = {RateLimited: timedelta(minutes=1)}
        ...
        ...     async def execute(self, job: Job[int, None]) -> None:
        ...         await sync(job.data)
        ...
        ...     def backoff(
        ...         self, job: Job[int, None], error: BaseException | None = None
        ...     ) -> timedelta:
        ...         if isinstance(error, ConnectionError):
        ...             return timedelta(seconds=5)
        ...         return super().backoff(job, error)
    """

    name: ClassVar[str]
    max_attempts: ClassVar[int] = 5
    max_concurrency: ClassVar[int | None] = None
    blocking: ClassVar[bool] = False
    run_in_process: ClassVar[bool] = False
    uniqueness_criteria: ClassVar[UniquenessCriteria | None] = None
    result_type: ClassVar[Any] = None
    global_max_concurrency: ClassVar[int | None] = None
    partition_max_concurrency: ClassVar[int | None] = None
    rate_limit: ClassVar[RateLimit | None] = None

    # -- retry policy (validated and compiled by _retry.RetryPolicy at class definition) -----
    discard_on: ClassVar[tuple[type[BaseException], ...]] = ()
    snooze_on: ClassVar[Mapping[type[BaseException], timedelta]] = MappingProxyType({})
    _retry_policy: ClassVar[RetryPolicy] = RetryPolicy()

    _adapters: ClassVar[tuple[TypeAdapter[Any], TypeAdapter[Any]] | None] = None
    _result_adapter: ClassVar[TypeAdapter[Any] | None] = None

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._adapters = None
        cls._result_adapter = None
        cls._retry_policy = RetryPolicy.of(cls)
        if abstract:
            return
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise ConfigurationError(
                f"executor class {cls.__qualname__} has no name: add a class attribute such as "
                f'name = "{cls.__name__.lower()}" (the key stored with its jobs)'
            )
        if not isinstance(cls.max_attempts, int) or cls.max_attempts < 1:
            raise ConfigurationError(
                f"executor {name!r}: max_attempts must be an int >= 1, got {cls.max_attempts!r}"
            )
        limit = cls.max_concurrency
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ConfigurationError(
                f"executor {name!r}: max_concurrency must be None or an int >= 1, got {limit!r}"
            )
        try:
            cls.claim_limits()
        except ConfigurationError as exc:
            raise ConfigurationError(f"executor {name!r}: {exc}") from None
        if cls.rate_limit is not None and not isinstance(cls.rate_limit, RateLimit):
            raise ConfigurationError(
                f"executor {name!r}: rate_limit must be a RateLimit or None, got {cls.rate_limit!r}"
            )
        for flag in ("blocking", "run_in_process"):
            if not isinstance(getattr(cls, flag), bool):
                raise ConfigurationError(
                    f"executor {name!r}: {flag} must be True or False, got {getattr(cls, flag)!r}"
                )
        if cls.execute is Executor.execute:
            raise ConfigurationError(f"executor {name!r} must define execute(self, job)")

    async def execute(self, job: Job[D, M]) -> ExecutionResult | None:
        """Run one attempt of ``job``; async or plain ``def``.

        Return ``None`` or ``ExecutionResult.Done()`` to complete (``Done(result)`` to
        store a result, read back as ``job.result``; see ``result_type``), ``Error`` to
        retry (or discard after the last attempt), ``Snooze`` to run again later without
        using an attempt, ``Cancel`` to stop for good. Raising an exception is an error
        attempt, and so is returning any other value.
        """
        raise NotImplementedError

    def backoff(self, job: Job[D, M], error: BaseException | None = None) -> timedelta:
        """The delay before retrying ``job`` after its attempt ``job.attempt`` failed.

        Called after the failed attempt (and only when a retry follows), with the exception it
        failed with: the one raised, or the one an ``ExecutionResult.Error`` carried
        (``None`` for a timeout, or an error that is no exception). In a child process
        (``run_in_process``) the exception is a stand-in with its class name and message.
        An override without ``error``, ``backoff(self, job)``, is still called that way.
        A new override keeps the ``= None`` default: type checkers ask for it, since older
        overrides may call ``super().backoff(job)``.

        Default: ``4^attempt`` seconds, capped at 7 days, ±10 % jitter.

        See the class's example.
        """
        return DEFAULT_BACKOFF.backoff(job.attempt)

    def timeout(self, job: Job[D, M]) -> timedelta | None:
        """The longest this attempt may run (None, the default: no limit)."""
        return None

    # -- typed data -----------------------------------------------------------------------

    @classmethod
    def _types(cls) -> tuple[TypeAdapter[Any], TypeAdapter[Any]]:
        if cls._adapters is None:
            data_type, meta_type = _type_arguments(cls)
            meta: Any = Optional[meta_type]  # noqa: UP045 - meta_type is a runtime value
            try:
                cls._adapters = (_adapter(data_type), _adapter(meta))
            except Exception as exc:
                raise ConfigurationError(
                    f"executor {cls.name!r}: pydantic cannot validate its Data/Metadata types "
                    f"({data_type!r}, {meta_type!r}): {exc}"
                ) from exc
        return cls._adapters

    @classmethod
    def encode_data(cls, data: Any) -> Any:
        """Validate ``data`` as this executor's Data type and return its JSON form."""
        return _encode(cls._types()[0], data, f"data for executor {cls.name!r}")

    @classmethod
    def encode_metadata(cls, metadata: Any) -> Any:
        """Validate ``metadata`` as this executor's Metadata type and return its JSON form."""
        return _encode(cls._types()[1], metadata, f"metadata for executor {cls.name!r}")

    @classmethod
    def _result_type(cls) -> TypeAdapter[Any] | None:
        if cls.result_type is None:
            return None
        if cls._result_adapter is None:
            try:
                cls._result_adapter = _adapter(cls.result_type)
            except Exception as exc:
                raise ConfigurationError(
                    f"executor {cls.name!r}: pydantic cannot validate its result_type "
                    f"({cls.result_type!r}): {exc}"
                ) from exc
        return cls._result_adapter

    @classmethod
    def encode_result(cls, result: Any) -> Any:
        """Validate ``result`` as this executor's ``result_type`` and return its JSON form
        (``result`` itself when there is no ``result_type``; the payload rule checks it)."""
        adapter = cls._result_type()
        if adapter is None:
            return result
        what = f"the ExecutionResult.Done(result) of a job for executor {cls.name!r}"
        return _encode(adapter, result, what)

    @classmethod
    def decode_job(cls, job: Job[Any, Any]) -> Job[D, M]:
        """Turn a stored job (JSON data) into a typed one, or raise ``ValidationError``.

        ``job.result`` is decoded through ``result_type`` when the executor has one; a stored
        result that no longer validates stays its raw JSON value (a result is a record of
        what happened, so it never makes a job unreadable).
        """
        data_adapter, meta_adapter = cls._types()
        try:
            data = data_adapter.validate_python(job.data)
            metadata = meta_adapter.validate_python(job.metadata)
        except PydanticValidationError as exc:
            raise ValidationError(
                f"stored data of job {int(job.id)} no longer validates for executor "
                f"{cls.name!r}: {_summary(exc)}. Fix the job with update_job, or make the "
                "executor's types accept the old shape."
            ) from exc
        result = job.result
        if result is not None and cls.result_type is not None:
            try:
                adapter = cls._result_type()
                assert adapter is not None
                result = adapter.validate_python(result)
            except (PydanticValidationError, ConfigurationError):
                # An unusable result_type is reported where results are stored (the
                # attempt's error); reading stays possible.
                result = job.result
        return with_payload(job, data, metadata, result)

    # -- the class-level API ----------------------------------------------------------------

    @classmethod
    def builder(cls) -> JobBuilder[D, M]:
        """A :class:`JobBuilder` for a new job of this executor."""
        return JobBuilder(cls)

    @classmethod
    def claim_limits(cls) -> ClaimLimits:
        """The cross-node limits this executor's class attributes declare."""
        return ClaimLimits(
            global_max=cls.global_max_concurrency,
            partition_max=cls.partition_max_concurrency,
            rate=cls.rate_limit,
        )

    # -- run-time control (see rexecutor.control) ----------------------------------------

    @classmethod
    async def pause(cls) -> None:
        """Pause this executor on the global backend; see :meth:`pause_on_backend`."""
        await cls.pause_on_backend(_global.get_global_backend())

    @classmethod
    async def pause_on_backend(cls, backend: Backend) -> None:
        """Stop every node claiming this executor's jobs, until :meth:`resume_on_backend`.

        Stored in the backend: it holds for nodes started later and survives restarts.
        Running jobs finish; enqueuing goes on.

        Example:
            >>> await EmailJob.pause_on_backend(backend)   # the mail server is down
            >>> await EmailJob.resume_on_backend(backend)  # it is back
        """
        await _control.pause(backend, cls.name)

    @classmethod
    async def resume(cls) -> None:
        """Resume this executor on the global backend; see :meth:`resume_on_backend`."""
        await cls.resume_on_backend(_global.get_global_backend())

    @classmethod
    async def resume_on_backend(cls, backend: Backend) -> None:
        """Let every node claim this executor's jobs again (at once where the backend wakes
        other processes, else within one poll interval)."""
        await _control.resume(backend, cls.name)

    @classmethod
    async def scale(cls, max_concurrency: int | None) -> None:
        """Scale this executor on the global backend; see :meth:`scale_on_backend`."""
        await cls.scale_on_backend(max_concurrency, _global.get_global_backend())

    @classmethod
    async def scale_on_backend(cls, max_concurrency: int | None, backend: Backend) -> None:
        """Set the per-node limit (``max_concurrency``) on every node at run time; None goes
        back to the class's own. Nodes read it within one poll interval."""
        await _control.scale(backend, cls.name, max_concurrency)

    @classmethod
    async def control(cls) -> ExecutorControl:
        """This executor's run-time state on the global backend; see
        :meth:`control_on_backend`."""
        return await cls.control_on_backend(_global.get_global_backend())

    @classmethod
    async def control_on_backend(cls, backend: Backend) -> ExecutorControl:
        """Whether this executor is paused, its limits, and its jobs running now.

        Example:
            >>> state = await EmailJob.control_on_backend(backend)
            >>> state.paused, state.max_concurrency, state.executing
            (False, 10, 3)
        """
        return await _control.control(backend, cls.name, cls)

    # -- job management ---------------------------------------------------------------------

    @classmethod
    async def cancel_job(cls, job_id: int, reason: object) -> bool:
        """Cancel a job on the global backend; see :meth:`cancel_job_on_backend`."""
        return await cls.cancel_job_on_backend(job_id, reason, _global.get_global_backend())

    @classmethod
    async def cancel_job_on_backend(cls, job_id: int, reason: object, backend: Backend) -> bool:
        """Cancel a job for good, recording ``str(reason)``.

        A running job is stopped on the node that runs it. Returns False when the job had
        already finished (complete, cancelled or discarded), which it leaves alone.
        """
        return await admin.cancel(backend, job_id, reason)

    @classmethod
    async def rerun_job(cls, job_id: int) -> None:
        """Rerun a job on the global backend; see :meth:`rerun_job_on_backend`."""
        await cls.rerun_job_on_backend(job_id, _global.get_global_backend())

    @classmethod
    async def rerun_job_on_backend(cls, job_id: int, backend: Backend) -> None:
        """Run a complete, cancelled or discarded job again now (one more attempt if needed).

        A scheduled or retryable job is moved to now; an executing one is an
        ``InvalidTransition`` error.
        """
        await admin.rerun(backend, job_id)

    @classmethod
    async def query_jobs(cls, where: Where[Any, Any] | None = None) -> list[Job[D, M]]:
        """This executor's jobs matching ``where`` on the global backend, oldest first."""
        return await cls.query_jobs_on_backend(where, _global.get_global_backend())

    @classmethod
    async def query_jobs_on_backend(
        cls, where: Where[Any, Any] | None, backend: Backend
    ) -> list[Job[D, M]]:
        """This executor's jobs matching ``where`` (None: all), oldest first."""
        scope = ExecutorEquals(cls.name)
        node = And((scope,)) if where is None else And((scope, where.node))
        return [cls.decode_job(job) for job in await backend.query(node)]

    @classmethod
    async def update_job(cls, job: Job[D, M]) -> None:
        """Write back a job's data, metadata, max_attempts, priority, tags and scheduled_at."""
        await cls.update_job_on_backend(job, _global.get_global_backend())

    @classmethod
    async def update_job_on_backend(cls, job: Job[D, M], backend: Backend) -> None:
        """Write back a job's data, metadata, max_attempts, priority, tags and scheduled_at."""
        if job.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, got {job.max_attempts}")
        encoded: Job[Any, Any] = replace(
            job,
            data=cls.encode_data(job.data),
            metadata=cls.encode_metadata(job.metadata),
        )
        await backend.update_job(encoded)

    @classmethod
    async def get_job(cls, job_id: int, backend: Backend | None = None) -> Job[D, M]:
        """The job with ``job_id``, typed (global backend unless one is given)."""
        target = backend or _global.get_global_backend()
        return cls.decode_job(await target.get_job(JobId(job_id)))

    # -- waiting for a job to finish ---------------------------------------------------------

    @classmethod
    async def wait_for_job(cls, job_id: int, *, timeout: timedelta | None = None) -> Job[D, M]:
        """Wait on the global backend; see :meth:`wait_for_job_on_backend`."""
        return await cls.wait_for_job_on_backend(
            job_id, _global.get_global_backend(), timeout=timeout
        )

    @classmethod
    async def wait_for_job_on_backend(
        cls, job_id: int, backend: Backend, *, timeout: timedelta | None = None
    ) -> Job[D, M]:
        """The job, typed, once it is complete, discarded or cancelled.

        Woken by the backend's own notifications (also of other processes), never by busy
        polling; any number of callers share one subscription. Raises ``JobNotFound`` at once
        for an unknown id, and the builtin ``TimeoutError`` when ``timeout`` (None: no
        limit) passes first.

        Example:
            >>> job = await EmailJob.wait_for_job(job_id, timeout=timedelta(seconds=30))
            >>> job.status
            <JobStatus.COMPLETE: 'complete'>
        """
        return cls.decode_job(await _waiting.wait_for_job(backend, job_id, timeout))


def _type_arguments(cls: type) -> tuple[Any, Any]:
    """Find the (Data, Metadata) arguments a subclass gave to ``Executor`` or a generic base."""
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            origin = get_origin(base)
            if isinstance(origin, type) and issubclass(origin, Executor):
                args = get_args(base)
                if len(args) == 2 and not any(isinstance(a, TypeVar) for a in args):
                    return args[0], args[1]
    return Any, Any


def _summary(exc: PydanticValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


# pydantic's JSON mode turns NaN and Infinity into None for untyped values (Any, dict, list),
# which would store a different value than the one given; keeping them as floats lets the
# payload rule refuse them the same way for every type.
_KEEP_NAN = ConfigDict(ser_json_inf_nan="constants")


def _adapter(tp: Any) -> TypeAdapter[Any]:
    try:
        return TypeAdapter(tp, config=_KEEP_NAN)
    except PydanticUserError:
        # Models, dataclasses and TypedDicts carry their own config (and keep NaN already).
        return TypeAdapter(tp)


def _encode(adapter: TypeAdapter[Any], value: Any, what: str) -> Any:
    try:
        return adapter.dump_python(adapter.validate_python(value), mode="json")
    except PydanticValidationError as exc:
        raise ValidationError(f"{what} is invalid: {_summary(exc)}") from exc
    except Exception as exc:  # pydantic raises plain errors for values it cannot serialise
        raise ValidationError(f"{what} cannot be stored as JSON: {exc}") from exc


def is_async_execute(executor: Executor[Any, Any]) -> bool:
    """Whether ``execute`` is a coroutine function (else it runs in a worker thread)."""
    return inspect.iscoroutinefunction(executor.execute)
