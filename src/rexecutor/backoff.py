"""Backoff strategies: how long a failed job waits before its next attempt.

Every strategy maps the number of the attempt that failed (1 for the first) to a delay, then
applies, in order: the strategy's own ``max``, an ``offset``, jitter, and a ``min``.

Example:
    >>> from datetime import timedelta
    >>> strategy = BackoffStrategy.exponential(timedelta(seconds=2)).with_max(timedelta(minutes=1))
    >>> [strategy.backoff(n).total_seconds() for n in (1, 2, 3, 10)]
    [2.0, 4.0, 8.0, 60.0]
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

__all__ = ["DEFAULT_BACKOFF", "BackoffStrategy", "Jitter"]

_MAX_DELAY = timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class Jitter:
    """Random spread added to a delay: absolute (± a duration) or relative (± a fraction)."""

    spread: timedelta | None = None
    fraction: float | None = None

    @classmethod
    def absolute(cls, delta: timedelta) -> Jitter:
        """Spread uniformly over ``[-delta, +delta]``."""
        return cls(spread=abs(delta))

    @classmethod
    def relative(cls, fraction: float) -> Jitter:
        """Spread uniformly over ``± fraction × delay``."""
        if not 0 <= fraction <= 1:
            raise ValueError(f"relative jitter must be between 0 and 1, got {fraction}")
        return cls(fraction=fraction)

    def apply(self, delay: timedelta, rng: Callable[[float, float], float]) -> timedelta:
        """Return ``delay`` moved by a random amount within this jitter."""
        spread = self.spread if self.spread is not None else delay * (self.fraction or 0.0)
        seconds = spread.total_seconds()
        return delay + timedelta(seconds=rng(-seconds, seconds))


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=min(value, _MAX_DELAY.total_seconds()))


@dataclass(frozen=True, slots=True)
class BackoffStrategy:
    """A backoff formula plus its modifiers; build one with a class method.

    Unlike the Rust original, exponential growth is ``base × 2^(n-1)`` (so sub-second and
    one-second bases grow) unless a ``factor`` says otherwise, and huge attempt numbers never
    overflow: every delay is capped at ten years before ``max`` applies.
    """

    kind: str
    base: timedelta
    factor: float = 2.0
    power: float = 1.0
    max: timedelta | None = None
    min: timedelta = timedelta(0)
    offset: timedelta = timedelta(0)
    jitter: Jitter | None = None

    @classmethod
    def constant(cls, delay: timedelta) -> BackoffStrategy:
        """Always ``delay``."""
        return cls("constant", delay)

    @classmethod
    def linear(cls, step: timedelta) -> BackoffStrategy:
        """``step × n``."""
        return cls("linear", step)

    @classmethod
    def polynomial(cls, step: timedelta, power: float) -> BackoffStrategy:
        """``step × n^power``."""
        return cls("polynomial", step, power=power)

    @classmethod
    def exponential(cls, base: timedelta, factor: float = 2.0) -> BackoffStrategy:
        """``base × factor^(n-1)``: 1, 2, 4, 8 × base with the default factor."""
        if factor < 1:
            raise ValueError(f"exponential factor must be at least 1, got {factor}")
        return cls("exponential", base, factor=factor)

    @classmethod
    def power_of_base(cls, base_seconds: float) -> BackoffStrategy:
        """``base_seconds^n`` seconds: the seed's exponential (4, 16, 64 s for base 4)."""
        return cls("power", timedelta(seconds=base_seconds))

    def with_max(self, maximum: timedelta) -> BackoffStrategy:
        """Cap the formula's value (jitter may still add to it)."""
        return replace(self, max=maximum)

    def with_min(self, minimum: timedelta) -> BackoffStrategy:
        """Never return less than ``minimum`` (applied last)."""
        return replace(self, min=minimum)

    def with_offset(self, offset: timedelta) -> BackoffStrategy:
        """Add a fixed ``offset`` after the formula and its max."""
        return replace(self, offset=offset)

    def with_jitter(self, jitter: Jitter) -> BackoffStrategy:
        """Spread delays randomly so that failing jobs do not retry in lockstep."""
        return replace(self, jitter=jitter)

    def nominal(self, attempt: int) -> timedelta:
        """The delay after failed attempt ``attempt`` before offset, jitter and min."""
        n = max(attempt, 1)
        base = self.base.total_seconds()
        try:
            if self.kind == "constant":
                value = base
            elif self.kind == "linear":
                value = base * n
            elif self.kind == "polynomial":
                value = base * float(n) ** self.power
            elif self.kind == "power":
                value = base**n
            else:
                value = base * self.factor ** (n - 1)
        except OverflowError:
            value = _MAX_DELAY.total_seconds()
        delay = _seconds(value)
        return delay if self.max is None else min(delay, self.max)

    def backoff(
        self, attempt: int, rng: Callable[[float, float], float] = random.uniform
    ) -> timedelta:
        """The delay to wait after failed attempt number ``attempt``."""
        delay = self.nominal(attempt) + self.offset
        if self.jitter is not None:
            delay = self.jitter.apply(delay, rng)
        return max(delay, self.min)


DEFAULT_BACKOFF = (
    BackoffStrategy.power_of_base(4).with_max(timedelta(days=7)).with_jitter(Jitter.relative(0.1))
)
"""The default: ``4^n`` seconds (4 s, 16 s, 64 s, ...), capped at 7 days, ±10 % jitter."""
