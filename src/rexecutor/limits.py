"""Limits across the cluster: how many jobs of an executor may start, decided in one place.

An executor may declare ``global_max_concurrency`` (at most N of its jobs executing at once on
all nodes together), ``partition_max_concurrency`` (at most N executing per partition key,
see :meth:`~rexecutor.builder.JobBuilder.with_partition_key`) and a :class:`RateLimit` (at most
N starts in any window of a period). A backend enforces them inside its claim: it serialises
the claims of a limited executor (a row lock on PostgreSQL, the write lock on SQLite, the
event loop in memory), counts what the rows say is executing and what started in the window,
and asks this module which ready jobs may start (:func:`plan`, then :func:`admit`). Jobs held
back stay ``scheduled`` or ``retryable`` and are not charged an attempt.

Jobs without a partition key share one partition (the key ``None``).

Example:
    >>> from datetime import timedelta
    >>> class Charge(Executor[str, None]):
    ...     name = "charge"
    ...     global_max_concurrency = 5
    ...     partition_max_concurrency = 2
    ...     rate_limit = RateLimit(allowed=100, period=timedelta(minutes=1))
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from rexecutor.errors import ConfigurationError, ValidationError

__all__ = ["ClaimLimits", "ClaimReport", "Plan", "RateLimit", "Usage", "admit", "plan"]

T = TypeVar("T", bound=Hashable)

#: The largest limit (concurrency, scale, allowed starts) any backend stores.
MAX_LIMIT = 1_000_000
#: Due jobs left behind by a limited claim are counted up to this many (for telemetry).
WAITING_COUNT_CAP = 1000
#: The longest partition key, in characters: a key names a tenant or a resource, not data.
MAX_PARTITION_KEY_CHARS = 200


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``allowed`` jobs of an executor start in any window of ``period``.

    The window slides: a claim at time *t* counts the starts recorded in ``(t - period, t]``,
    and admits only as many as keep that count at or below ``allowed``. It is exact across
    nodes: the starts are rows in the backend, counted under the same lock that serialises the
    executor's claims, so no window of ``period``, wherever it is placed, holds more than
    ``allowed`` starts (a retry is a new start). A start is counted when the job is claimed,
    by the backend's clock. With ``per_partition=True`` each partition key has its own window.

    Example:
        >>> from datetime import timedelta
        >>> RateLimit(allowed=100, period=timedelta(minutes=1))
        RateLimit(allowed=100, period=datetime.timedelta(seconds=60), per_partition=False)
    """

    allowed: int
    period: timedelta
    per_partition: bool = False

    def __post_init__(self) -> None:
        if type(self.allowed) is not int or not 1 <= self.allowed <= MAX_LIMIT:
            raise ConfigurationError(
                f"RateLimit(allowed=...) must be an int from 1 to {MAX_LIMIT}, got "
                f"{self.allowed!r}; "
                "to stop an executor's jobs altogether, pause it"
            )
        if not isinstance(self.period, timedelta) or self.period <= timedelta(0):
            raise ConfigurationError(
                f"RateLimit(period=...) must be a positive timedelta, got {self.period!r}"
            )
        if self.period < timedelta(milliseconds=1):
            raise ConfigurationError(
                f"RateLimit(period=...) must be at least 1 ms, got {self.period!r}"
            )
        if type(self.per_partition) is not bool:
            raise ConfigurationError(
                f"RateLimit(per_partition=...) must be a bool, got {self.per_partition!r}"
            )


@dataclass(frozen=True, slots=True)
class ClaimLimits:
    """The cross-node limits one executor's claims obey (all None: none)."""

    global_max: int | None = None
    partition_max: int | None = None
    rate: RateLimit | None = None

    def __post_init__(self) -> None:
        for name, attribute in (
            ("global_max", "global_max_concurrency"),
            ("partition_max", "partition_max_concurrency"),
        ):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or not 1 <= value <= MAX_LIMIT):
                raise ConfigurationError(
                    f"{attribute} must be None or an int from 1 to {MAX_LIMIT}, got "
                    f"{value!r}; to stop the executor's jobs altogether, pause it"
                )

    @classmethod
    def read(
        cls,
        global_max: Any,
        partition_max: Any,
        rate_allowed: Any,
        rate_period: Any,
        rate_per_partition: Any,
    ) -> ClaimLimits:
        """The limits a backend stored for an executor, read leniently: a row no node could
        have written (edited by hand) reads as no limits rather than breaking its readers.
        ``rate_period`` is a ``timedelta`` or integer microseconds."""
        try:
            if isinstance(rate_period, int):
                rate_period = timedelta(microseconds=rate_period)
            rate = (
                None
                if rate_allowed is None
                else RateLimit(rate_allowed, rate_period, bool(rate_per_partition))
            )
            return cls(global_max=global_max, partition_max=partition_max, rate=rate)
        except (ConfigurationError, TypeError, ValueError, OverflowError):
            return cls()

    @property
    def any(self) -> bool:
        """Whether there is a limit at all (claims without one take the fast path)."""
        return self.global_max is not None or self.partition_max is not None or bool(self.rate)

    @property
    def partitioned(self) -> bool:
        """Whether a limit is counted per partition key."""
        return self.partition_max is not None or (self.rate is not None and self.rate.per_partition)

    def window_start(self, now: datetime) -> datetime | None:
        """The start of the rate window ending at ``now`` (exclusive), or None without one."""
        return None if self.rate is None else now - self.rate.period


@dataclass(slots=True)
class ClaimReport:
    """What a claim tells its caller besides the jobs: filled in by the backend.

    ``paused``: the executor is paused (nothing was claimed). ``limited``: a limit left due
    jobs unclaimed (the caller should wait for a poll interval rather than claim again at
    once). ``held``: how many due jobs were left waiting (counted up to
    ``WAITING_COUNT_CAP``).
    """

    paused: bool = False
    limited: bool = False
    held: int = 0


@dataclass(frozen=True, slots=True)
class Usage:
    """What the rows say, counted by the backend under the claim's lock.

    ``executing``: executing jobs of the executor by partition key (all under ``None`` when
    no limit is partitioned). ``started``: starts recorded in the rate window, by key the
    same way (empty without a rate limit).
    """

    executing: Mapping[str | None, int] = field(default_factory=dict)
    started: Mapping[str | None, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Plan:
    """How many jobs a limited claim may take, and which candidates to read for it.

    ``total``: the most this claim may start (0: read nothing). ``per_key``: read at most this
    many candidates per partition key (None: not partitioned, read the first ``total``).
    ``exclude``: partition keys with no room, left out of the read so that a saturated key
    never fills the candidates (no head-of-line blocking). ``fetch``: how many candidates to
    read at most.
    """

    total: int
    per_key: int | None = None
    exclude: frozenset[str | None] = frozenset()
    fetch: int = 0


def _room(limits: ClaimLimits, usage: Usage, key: str | None) -> int | None:
    """Free places in partition ``key`` (None: no per-key limit)."""
    free: int | None = None
    if limits.partition_max is not None:
        free = limits.partition_max - usage.executing.get(key, 0)
    if limits.rate is not None and limits.rate.per_partition:
        left = limits.rate.allowed - usage.started.get(key, 0)
        free = left if free is None else min(free, left)
    return free


def plan(limits: ClaimLimits, want: int, usage: Usage) -> Plan:
    """How much a claim of up to ``want`` jobs may take, given what is executing and started."""
    total = want
    if limits.global_max is not None:
        total = min(total, limits.global_max - sum(usage.executing.values()))
    if limits.rate is not None and not limits.rate.per_partition:
        total = min(total, limits.rate.allowed - sum(usage.started.values()))
    total = max(total, 0)
    if not limits.partitioned or total == 0:
        return Plan(total=total, fetch=total)
    per_key = total
    if limits.partition_max is not None:
        per_key = min(per_key, limits.partition_max)
    if limits.rate is not None and limits.rate.per_partition:
        per_key = min(per_key, limits.rate.allowed)
    keys = set(usage.executing) | set(usage.started)
    full = frozenset(key for key in keys if (_room(limits, usage, key) or 0) <= 0)
    # Each key read has room for at least one job, so ``total`` keys are enough to fill the
    # claim whatever the room of each.
    return Plan(total=total, per_key=per_key, exclude=full, fetch=total * per_key)


def admit(
    limits: ClaimLimits, plan: Plan, usage: Usage, candidates: Iterable[tuple[T, str | None]]
) -> tuple[list[T], int]:
    """The candidates (in claim order) that may start now, and how many were held back.

    ``candidates`` are ``(id, partition key)`` pairs of ready jobs, in the order the claim
    would take them.
    """
    taken: list[T] = []
    held = 0
    room: dict[str | None, int | None] = {}
    for job_id, key in candidates:
        if len(taken) >= plan.total:
            held += 1
            continue
        if key not in room:
            room[key] = _room(limits, usage, key)
        free = room[key]
        if free is not None and free <= 0:
            held += 1
            continue
        taken.append(job_id)
        if free is not None:
            room[key] = free - 1
    return taken, held


def check_partition_key(key: object) -> str:
    """``key`` if it is a valid partition key, else ``ValidationError`` saying why."""
    if not isinstance(key, str):
        raise ValidationError(
            f"a partition key must be a str, got {type(key).__name__} {key!r:.80}; "
            "pass the tenant or resource name as text"
        )
    if not key:
        raise ValidationError("a partition key must not be empty; omit it for no partition")
    if len(key) > MAX_PARTITION_KEY_CHARS:
        raise ValidationError(
            f"a partition key must be at most {MAX_PARTITION_KEY_CHARS} characters, got "
            f"{len(key)}; use a short name or an id for the partition, not data"
        )
    if "\x00" in key or any("\ud800" <= ch <= "\udfff" for ch in key):
        raise ValidationError(
            "a partition key must not hold NUL or lone surrogate characters: no backend can "
            f"store it ({key[:40]!r})"
        )
    return key
