"""How an executor's run-time state reads for people and in JSON (CLI and dashboard alike)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rexecutor import ExecutorControl, RateLimit, _views


@pytest.mark.parametrize(
    ("period", "text"),
    [
        (timedelta(minutes=1), "1m"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(seconds=1.5), "1.5s"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=1, seconds=5), "1d5s"),
    ],
)
def test_format_period(period: timedelta, text: str) -> None:
    assert _views.format_period(period) == text


def test_format_rate() -> None:
    assert _views.format_rate(None) == "-"
    assert _views.format_rate(RateLimit(100, timedelta(minutes=1))) == "100 per 1m"
    partitioned = RateLimit(5, timedelta(seconds=1), per_partition=True)
    assert _views.format_rate(partitioned) == "5 per 1s per partition"


def test_control_to_json() -> None:
    state = ExecutorControl(
        name="email",
        paused=True,
        max_concurrency=4,
        scaled=True,
        global_max_concurrency=10,
        partition_max_concurrency=None,
        rate_limit=RateLimit(30, timedelta(seconds=90)),
        executing=2,
        scheduled=7,
        failed=1,
        started_in_window=12,
    )
    assert _views.control_to_json(state) == {
        "name": "email",
        "paused": True,
        "max_concurrency": 4,
        "scaled": True,
        "global_max_concurrency": 10,
        "partition_max_concurrency": None,
        "rate_limit": {"allowed": 30, "period_seconds": 90.0, "per_partition": False},
        "started_in_window": 12,
        "rate_headroom": 18,
        "scheduled": 7,
        "executing": 2,
        "failed": 1,
    }
