"""Backoff strategies: formulas, caps, jitter and the default."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rexecutor import BackoffStrategy, Jitter
from rexecutor.backoff import DEFAULT_BACKOFF

S = timedelta(seconds=1)


def no_jitter(low: float, high: float) -> float:
    return 0.0


def test_the_default_is_four_to_the_attempt_capped_at_seven_days() -> None:
    values = [DEFAULT_BACKOFF.nominal(n).total_seconds() for n in (1, 2, 3, 4, 10, 1000)]
    assert values == [4, 16, 64, 256, 604_800, 604_800]


def test_the_default_jitter_stays_within_ten_percent() -> None:
    for attempt in (1, 3, 12):
        nominal = DEFAULT_BACKOFF.nominal(attempt)
        for _ in range(200):
            assert nominal * 0.9 <= DEFAULT_BACKOFF.backoff(attempt) <= nominal * 1.1
    assert DEFAULT_BACKOFF.backoff(2, rng=lambda lo, hi: hi) == timedelta(seconds=17.6)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (BackoffStrategy.constant(3 * S), [3, 3, 3]),
        (BackoffStrategy.linear(2 * S), [2, 4, 6]),
        (BackoffStrategy.polynomial(S, 2), [1, 4, 9]),
        (BackoffStrategy.exponential(S / 2), [0.5, 1, 2]),
        (BackoffStrategy.exponential(S, factor=3), [1, 3, 9]),
        (BackoffStrategy.power_of_base(2), [2, 4, 8]),
        (BackoffStrategy.linear(10 * S).with_max(15 * S), [10, 15, 15]),
        (BackoffStrategy.constant(S).with_offset(2 * S), [3, 3, 3]),
        (BackoffStrategy.constant(S).with_min(5 * S), [5, 5, 5]),
    ],
)
def test_strategies(strategy: BackoffStrategy, expected: list[float]) -> None:
    assert [strategy.backoff(n, rng=no_jitter).total_seconds() for n in (1, 2, 3)] == expected


def test_absolute_jitter_bounds() -> None:
    strategy = BackoffStrategy.constant(10 * S).with_jitter(Jitter.absolute(2 * S))
    assert strategy.backoff(1, rng=lambda lo, hi: lo) == 8 * S
    assert strategy.backoff(1, rng=lambda lo, hi: hi) == 12 * S


def test_min_applies_after_jitter() -> None:
    strategy = BackoffStrategy.constant(S).with_jitter(Jitter.relative(1.0)).with_min(S)
    assert strategy.backoff(1, rng=lambda lo, hi: lo) == S


def test_huge_attempts_never_overflow() -> None:
    assert BackoffStrategy.exponential(S).backoff(10_000, rng=no_jitter) == timedelta(days=3650)
    assert BackoffStrategy.power_of_base(4).backoff(10_000, rng=no_jitter) == timedelta(days=3650)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        Jitter.relative(1.5)
    with pytest.raises(ValueError):
        BackoffStrategy.exponential(S, factor=0.5)
