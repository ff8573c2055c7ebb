"""Unique jobs: :class:`UniquenessCriteria` says when a new job duplicates a stored one, and
:class:`Replace` says which fields of the stored job a duplicate overwrites.

A new job conflicts with a stored job when every part of the criteria matches: the same key
(criteria without a key match any key), the same executor (when ``executor`` is set), a
status in ``statuses`` (default: scheduled) and, with a window, ``scheduled_at`` values at most
``window`` apart. The earliest stored match (lowest id) wins and its id is returned.

Example:
    >>> from datetime import timedelta
    >>> criteria = (
    ...     UniquenessCriteria.by_executor()
    ...     .and_within(timedelta(minutes=5))
    ...     .on_conflict(Replace.priority().for_statuses(JobStatus.ALL))
    ... )
    >>> criteria.executor, criteria.window
    (True, datetime.timedelta(seconds=300))
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta

from rexecutor._json import stable_hash
from rexecutor.job import JobStatus

__all__ = ["Replace", "UniquenessCriteria"]

_DEFAULT_STATUSES = frozenset({JobStatus.SCHEDULED})
_REPLACEABLE = ("scheduled_at", "data", "metadata", "priority", "max_attempts")


def _statuses(statuses: Iterable[JobStatus]) -> frozenset[JobStatus]:
    result = frozenset(JobStatus(s) for s in statuses)
    if not result:
        raise ValueError("a uniqueness status list must name at least one status")
    return result


@dataclass(frozen=True, slots=True)
class Replace:
    """Which fields of a conflicting stored job are overwritten by the new job's values.

    ``fields`` holds names among scheduled_at, data, metadata, priority and max_attempts;
    the replacement applies only while the stored job's status is in ``statuses``
    (default: scheduled).
    """

    fields: frozenset[str]
    statuses: frozenset[JobStatus] = _DEFAULT_STATUSES

    def __post_init__(self) -> None:
        # Checked here, so no backend ever meets a Replace it would have to interpret.
        if not self.fields or not self.fields <= set(_REPLACEABLE):
            raise ValueError(f"Replace must name fields among {', '.join(_REPLACEABLE)}")

    @classmethod
    def scheduled_at(cls) -> Replace:
        """Overwrite ``scheduled_at``."""
        return cls(frozenset({"scheduled_at"}))

    @classmethod
    def data(cls) -> Replace:
        """Overwrite ``data``."""
        return cls(frozenset({"data"}))

    @classmethod
    def metadata(cls) -> Replace:
        """Overwrite ``metadata``."""
        return cls(frozenset({"metadata"}))

    @classmethod
    def priority(cls) -> Replace:
        """Overwrite ``priority``."""
        return cls(frozenset({"priority"}))

    @classmethod
    def max_attempts(cls) -> Replace:
        """Overwrite ``max_attempts``."""
        return cls(frozenset({"max_attempts"}))

    def _and(self, name: str) -> Replace:
        return replace(self, fields=self.fields | {name})

    def and_scheduled_at(self) -> Replace:
        """Also overwrite ``scheduled_at``."""
        return self._and("scheduled_at")

    def and_data(self) -> Replace:
        """Also overwrite ``data``."""
        return self._and("data")

    def and_metadata(self) -> Replace:
        """Also overwrite ``metadata``."""
        return self._and("metadata")

    def and_priority(self) -> Replace:
        """Also overwrite ``priority``."""
        return self._and("priority")

    def and_max_attempts(self) -> Replace:
        """Also overwrite ``max_attempts``."""
        return self._and("max_attempts")

    def for_statuses(self, statuses: Iterable[JobStatus]) -> Replace:
        """Replace only while the stored job has one of ``statuses``."""
        return replace(self, statuses=_statuses(statuses))


@dataclass(frozen=True, slots=True)
class ReplacePlan:
    """The decided replacement of :meth:`UniquenessCriteria.replace_plan`: a backend only
    writes it.

    Attributes:
        fields: the fields to overwrite with the new job's values, never empty, in the order
            scheduled_at, data, metadata, priority, max_attempts.
        statuses: the stored job is overwritten only while its status is one of these (sorted
            by value).
    """

    fields: tuple[str, ...]
    statuses: tuple[JobStatus, ...]

    def applies_to(self, status: JobStatus) -> bool:
        """Whether a stored job with ``status`` is overwritten."""
        return status in self.statuses


@dataclass(frozen=True, slots=True)
class UniquenessCriteria:
    """When a new job counts as a duplicate of a stored one; build with a class method.

    Attributes:
        key: the stable 64-bit hash of the value given to ``by_key``/``and_key``, or None.
        executor: only jobs of the same executor conflict.
        window: conflicting ``scheduled_at`` values are at most this far apart (None: any).
        statuses: the statuses a stored job must have to conflict.
        replace: what to overwrite on a conflict (None: do nothing).
    """

    key: int | None = None
    executor: bool = False
    window: timedelta | None = None
    statuses: frozenset[JobStatus] = _DEFAULT_STATUSES
    replace: Replace | None = None

    @classmethod
    def by_executor(cls) -> UniquenessCriteria:
        """Conflict with stored jobs of the same executor."""
        return cls(executor=True)

    @classmethod
    def by_key(cls, value: object) -> UniquenessCriteria:
        """Conflict with stored jobs enqueued with the same key (any JSON-able value)."""
        return cls(key=stable_hash(value))

    @classmethod
    def by_statuses(cls, statuses: Iterable[JobStatus]) -> UniquenessCriteria:
        """Conflict with stored jobs in any of ``statuses``."""
        return cls(statuses=_statuses(statuses))

    @classmethod
    def within(cls, window: timedelta) -> UniquenessCriteria:
        """Conflict with stored jobs scheduled at most ``window`` from the new one."""
        return cls(window=abs(window))

    def and_executor(self) -> UniquenessCriteria:
        """Also require the same executor."""
        return replace(self, executor=True)

    def and_key(self, value: object) -> UniquenessCriteria:
        """Also require the same key."""
        return replace(self, key=stable_hash(value))

    def and_statuses(self, statuses: Iterable[JobStatus]) -> UniquenessCriteria:
        """Replace the status list."""
        return replace(self, statuses=_statuses(statuses))

    def and_within(self, window: timedelta) -> UniquenessCriteria:
        """Also require scheduled_at values at most ``window`` apart."""
        return replace(self, window=abs(window))

    def on_conflict(self, action: Replace) -> UniquenessCriteria:
        """Overwrite the stored job's fields as ``action`` says."""
        return replace(self, replace=action)

    def on_conflict_do_nothing(self) -> UniquenessCriteria:
        """Leave the stored job as it is (the default)."""
        return replace(self, replace=None)

    def replace_plan(self) -> ReplacePlan | None:
        """What a duplicate overwrites, as every backend applies it; None when it overwrites
        nothing.
        """
        if self.replace is None:
            return None
        return ReplacePlan(
            fields=tuple(name for name in _REPLACEABLE if name in self.replace.fields),
            statuses=tuple(sorted(self.replace.statuses, key=lambda s: JobStatus(s).value)),
        )

    def lock_names(self, executor: str) -> list[tuple[str, bool]]:
        """The locks (name, exclusive) that serialise enqueues which could conflict.

        Enqueues that can match each other always share one lock held exclusively by at
        least one of them: a key locks the key, a key-less executor criteria locks the
        executor, and criteria that match every job lock everything.
        """
        if self.key is None and not self.executor:
            return [("*", True)]
        locks: list[tuple[str, bool]] = [("*", False)]
        if self.key is None:
            locks.append((f"executor:{executor}", True))
        else:
            locks.append((f"executor:{executor}", False))
            locks.append((f"key:{self.key}", True))
        return locks
