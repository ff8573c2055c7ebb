"""Enqueuing: :class:`JobBuilder` collects a job's settings, then stores it.

Example:
    >>> from datetime import timedelta
    >>> builder = (
    ...     EmailJob.builder()
    ...     .with_data("bob@example.com")
    ...     .with_tags(["signup"])
    ...     .schedule_in(timedelta(hours=3))
    ... )
    >>> job_id = await builder.enqueue()
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from rexecutor import _clock, _global
from rexecutor._payload import check_moment
from rexecutor.backend import Backend, EnqueuableJob, EnqueueResult
from rexecutor.errors import ConfigurationError, ValidationError
from rexecutor.job import JobId
from rexecutor.limits import check_partition_key
from rexecutor.uniqueness import UniquenessCriteria

if TYPE_CHECKING:
    from rexecutor.executor import Executor

__all__ = ["JobBuilder", "enqueue_many"]

D = TypeVar("D")
M = TypeVar("M")

_UNSET: Any = object()


class JobBuilder(Generic[D, M]):
    """Settings for one new job of an executor; every ``with_*`` returns a new builder.

    Defaults: no metadata, the executor's ``max_attempts`` and ``uniqueness_criteria``, no
    tags, priority 0 (lower runs first), scheduled now.
    """

    __slots__ = (
        "_data",
        "_executor",
        "_max_attempts",
        "_metadata",
        "_partition_key",
        "_priority",
        "_scheduled_at",
        "_tags",
        "_unique",
    )

    def __init__(self, executor: type[Executor[D, M]]) -> None:
        self._executor = executor
        self._data: Any = _UNSET
        self._metadata: M | None = None
        self._max_attempts: int | None = None
        self._tags: tuple[str, ...] = ()
        self._priority = 0
        self._scheduled_at: datetime | None = None
        self._unique: UniquenessCriteria | None = _UNSET
        self._partition_key: str | None = None

    def _with(self, **changes: Any) -> Self:
        clone = copy.copy(self)
        for name, value in changes.items():
            setattr(clone, f"_{name}", value)
        return clone

    def with_data(self, data: D) -> Self:
        """Set the job's data (validated against the executor's Data type on enqueue)."""
        return self._with(data=data)

    def with_metadata(self, metadata: M) -> Self:
        """Set the job's metadata."""
        return self._with(metadata=metadata)

    def with_max_attempts(self, max_attempts: int) -> Self:
        """Override the executor's ``max_attempts`` for this job (at least 1)."""
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        return self._with(max_attempts=max_attempts)

    def with_tags(self, tags: Iterable[str]) -> Self:
        """Replace the job's tags."""
        values = tuple(tags)
        if not all(isinstance(t, str) for t in values):
            raise ValidationError(f"tags must be strings, got {values!r}")
        return self._with(tags=values)

    def add_tag(self, tag: str) -> Self:
        """Add one tag."""
        if not isinstance(tag, str):
            raise ValidationError(f"a tag must be a string, got {tag!r}")
        return self._with(tags=(*self._tags, tag))

    def with_priority(self, priority: int) -> Self:
        """Set the priority: lower numbers run first (0 is the default and the highest)."""
        if not isinstance(priority, int) or priority < 0:
            raise ConfigurationError(f"priority must be an int >= 0, got {priority!r}")
        return self._with(priority=priority)

    def schedule_at(self, moment: datetime) -> Self:
        """Run no earlier than ``moment`` (timezone-aware; past times run at once)."""
        if moment.tzinfo is None:
            raise ConfigurationError(
                f"schedule_at needs a timezone-aware datetime, got {moment!r}; "
                "use datetime.now(UTC) or attach tzinfo"
            )
        check_moment(moment, "schedule_at")
        return self._with(scheduled_at=moment)

    def schedule_in(self, delay: timedelta) -> Self:
        """Run no earlier than ``delay`` from now."""
        return self._with(scheduled_at=_clock.now() + delay)

    def unique(self, criteria: UniquenessCriteria | None) -> Self:
        """Use ``criteria`` for this job instead of the executor's; None turns uniqueness off."""
        return self._with(unique=criteria)

    def with_partition_key(self, key: str | None) -> Self:
        """Group the job under ``key`` (a tenant, an account, a resource) for the executor's
        partitioned limits: ``partition_max_concurrency`` and a per-partition ``RateLimit``.

        A key is a non-empty ``str`` of at most 200 characters (None: no partition; jobs
        without a key share one partition). Jobs of other keys run while one key is at its
        limit.

        Example:
            >>> await Sync.builder().with_data(account).with_partition_key("tenant-42").enqueue()
        """
        return self._with(partition_key=None if key is None else check_partition_key(key))

    def build(self) -> EnqueuableJob:
        """Validate and encode the job without storing it (``enqueue`` calls this)."""
        executor = self._executor
        if self._data is _UNSET:
            try:
                data = executor.encode_data(None)
            except ValidationError:
                raise ValidationError(
                    f"executor {executor.name!r} needs data: call .with_data(...) before enqueue"
                ) from None
        else:
            data = executor.encode_data(self._data)
        unique = executor.uniqueness_criteria if self._unique is _UNSET else self._unique
        return EnqueuableJob(
            executor=executor.name,
            data=data,
            # Metadata is Optional[...]: None validates and dumps as itself, so it skips pydantic.
            metadata=None if self._metadata is None else executor.encode_metadata(self._metadata),
            max_attempts=self._max_attempts or executor.max_attempts,
            scheduled_at=self._scheduled_at,
            tags=self._tags,
            priority=self._priority,
            uniqueness=unique,
            partition_key=self._partition_key,
        )

    async def enqueue(self) -> JobId:
        """Store the job on the global backend; returns its id (the existing one if a duplicate)."""
        return (await self.enqueue_with_result()).job_id

    async def enqueue_to_backend(self, backend: Backend, *, connection: Any = None) -> JobId:
        """Store the job on ``backend``; returns its id (the existing one if a duplicate).

        With PostgreSQL, ``connection`` (a psycopg ``AsyncConnection``, a SQLAlchemy
        ``AsyncSession`` or ``AsyncConnection``, or an asyncpg ``Connection``) makes the insert
        part of the caller's open transaction: if the caller rolls back, no job exists.
        """
        return (await self.enqueue_with_result(backend, connection=connection)).job_id

    async def enqueue_with_result(
        self, backend: Backend | None = None, *, connection: Any = None
    ) -> EnqueueResult:
        """Store the job and report whether it was a duplicate of a stored job.

        Example:
            >>> result = await Email.builder().with_data("x").enqueue_with_result()
            >>> result.duplicate
            False
        """
        job = self.build()
        target = backend if backend is not None else _global.get_global_backend()
        return await target.enqueue(job, connection=connection)


async def enqueue_many(
    builders: Iterable[JobBuilder[Any, Any]],
    backend: Backend | None = None,
    *,
    connection: Any = None,
) -> list[EnqueueResult]:
    """Store many jobs, of any executors, in one round trip where the backend allows it.

    A job that fails validation stores none of them (``ValidationError``). Results come in
    the order given.
    ``connection`` joins the caller's PostgreSQL transaction, as in
    :meth:`JobBuilder.enqueue_to_backend`.

    Example:
        >>> builders = [EmailJob.builder().with_data(a) for a in addresses]
        >>> results = await enqueue_many(builders)
    """
    jobs = [builder.build() for builder in builders]
    target = backend if backend is not None else _global.get_global_backend()
    return await target.enqueue_many(jobs, connection=connection)
