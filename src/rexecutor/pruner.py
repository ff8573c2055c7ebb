"""Pruning finished jobs: :class:`Pruner` rules grouped in a scheduled :class:`PrunerConfig`.

Example:
    >>> from datetime import timedelta
    >>> config = (
    ...     PrunerConfig("0 * * * *")
    ...     .with_max_concurrency(2)
    ...     .with_pruner(Pruner.max_age(timedelta(days=31), JobStatus.COMPLETE))
    ...     .with_pruner(Pruner.max_length(200, JobStatus.DISCARDED).except_("email_job"))
    ... )
    >>> len(config.pruners)
    2
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from rexecutor.backend import PruneSpec, check_batch_size
from rexecutor.cron import CronSchedule
from rexecutor.errors import ConfigurationError
from rexecutor.job import JobStatus

if TYPE_CHECKING:
    from rexecutor.executor import Executor

__all__ = ["Pruner", "PrunerConfig"]


def _names(executors: tuple[Any, ...]) -> frozenset[str]:
    names = set()
    for item in executors:
        name = item if isinstance(item, str) else getattr(item, "name", None)
        if not isinstance(name, str):
            raise ConfigurationError(f"expected an executor class, instance or name, got {item!r}")
        names.add(name)
    return frozenset(names)


@dataclass(frozen=True, slots=True)
class Pruner:
    """One pruning rule: which finished jobs of one terminal status to delete.

    Ages are measured from when a job finished. ``max_length(n)`` keeps the n most recently
    finished jobs. Only complete, cancelled and discarded jobs can be pruned.
    """

    spec: PruneSpec

    @classmethod
    def max_age(cls, age: timedelta, status: JobStatus) -> Pruner:
        """Delete ``status`` jobs that finished more than ``age`` ago."""
        return cls(PruneSpec(JobStatus(status), max_age=age))

    @classmethod
    def max_length(cls, length: int, status: JobStatus) -> Pruner:
        """Keep the ``length`` most recently finished ``status`` jobs; delete the rest."""
        return cls(PruneSpec(JobStatus(status), max_length=length))

    def only(self, *executors: type[Executor[Any, Any]] | Executor[Any, Any] | str) -> Pruner:
        """Apply only to these executors (classes, instances or names)."""
        current = self.spec.only or frozenset()
        return replace(self, spec=replace(self.spec, only=current | _names(executors)))

    def except_(self, *executors: type[Executor[Any, Any]] | Executor[Any, Any] | str) -> Pruner:
        """Apply to every executor but these."""
        return replace(self, spec=replace(self.spec, exclude=self.spec.exclude | _names(executors)))


@dataclass(frozen=True, slots=True)
class PrunerConfig:
    """When to prune (a cron expression and timezone) and with which rules.

    ``max_concurrency`` (default 10) bounds how many rules run at once.
    """

    schedule: CronSchedule
    max_concurrency: int = 10
    pruners: tuple[Pruner, ...] = field(default=())
    batch_size: int = 1000

    def __init__(
        self,
        schedule: str | CronSchedule,
        *,
        timezone: str = "UTC",
        max_concurrency: int = 10,
        pruners: tuple[Pruner, ...] = (),
        batch_size: int = 1000,
    ) -> None:
        parsed = (
            schedule
            if isinstance(schedule, CronSchedule)
            else CronSchedule.parse(schedule, timezone)
        )
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be >= 1, got {max_concurrency}")
        object.__setattr__(self, "schedule", parsed)
        object.__setattr__(self, "max_concurrency", max_concurrency)
        object.__setattr__(self, "pruners", tuple(pruners))
        object.__setattr__(self, "batch_size", check_batch_size(batch_size))

    def _copy(self, **changes: Any) -> PrunerConfig:
        values: dict[str, Any] = {
            "max_concurrency": self.max_concurrency,
            "pruners": self.pruners,
            "batch_size": self.batch_size,
        }
        values.update(changes)
        return PrunerConfig(self.schedule, **values)

    def with_max_concurrency(self, limit: int) -> PrunerConfig:
        """Run at most ``limit`` rules at once."""
        return self._copy(max_concurrency=limit)

    def with_pruner(self, pruner: Pruner) -> PrunerConfig:
        """Add a rule."""
        return self._copy(pruners=(*self.pruners, pruner))

    def with_pruners(self, pruners: tuple[Pruner, ...] | list[Pruner]) -> PrunerConfig:
        """Add several rules."""
        return self._copy(pruners=(*self.pruners, *pruners))

    def with_batch_size(self, size: int) -> PrunerConfig:
        """Delete at most ``size`` rows per statement."""
        return self._copy(batch_size=size)
