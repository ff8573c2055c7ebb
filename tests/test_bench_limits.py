"""The sweep bench/limits.py checks its limits with: the most jobs executing at one instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bench.limits import Variant, peak, peaks

from rexecutor import RateLimit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def test_peak_counts_the_intervals_open_at_once() -> None:
    assert peak([]) == 0
    assert peak([(at(0), at(10))]) == 1
    assert peak([(at(0), at(10)), (at(5), at(15)), (at(12), at(20))]) == 2
    assert peak([(at(0), at(10)), (at(11), at(20)), (at(21), at(30))]) == 1


def test_a_start_at_the_instant_of_an_end_counts_as_overlapping() -> None:
    # The sweep may overstate a peak, never understate it.
    assert peak([(at(0), at(10)), (at(10), at(20))]) == 2


def test_peaks_are_counted_overall_and_in_the_busiest_key() -> None:
    rows = [
        (at(0), at(10), "a", 1),
        (at(1), at(10), "a", 1),
        (at(2), at(10), "b", 1),
        (at(20), at(30), None, 1),
    ]
    assert peaks(rows) == {"global": 3, "per_key": 2}


@pytest.mark.parametrize("row", [(at(0), None, "a", 1), (at(0), at(1), "a", 2)])
def test_a_row_that_hides_an_attempt_is_refused(row: tuple[datetime, None, str, int]) -> None:
    # A retried job keeps only its last attempt's times, so the sweep would miss one.
    with pytest.raises(RuntimeError):
        peaks([row])


def test_a_variant_gives_its_limits_to_the_workers_through_the_environment() -> None:
    variant = Variant(
        "x", "x", global_max=5, rate=RateLimit(allowed=7, period=timedelta(seconds=2))
    )
    assert variant.env() == {
        "BENCH_GLOBAL_MAX": "5",
        "BENCH_PARTITION_MAX": "",
        "BENCH_RATE": "7/2.0",
    }
