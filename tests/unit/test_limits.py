"""The limit rules (rexecutor.limits), the control checks, and how executors declare limits."""

from __future__ import annotations

import types
from datetime import timedelta
from typing import Any

import pytest

from rexecutor import ConfigurationError, Executor, Job, RateLimit, ValidationError
from rexecutor.control import ExecutorControl, check_name, check_scale
from rexecutor.limits import ClaimLimits, Plan, Usage, admit, check_partition_key, plan


def test_plan_without_partitions_takes_what_the_global_and_rate_limits_leave() -> None:
    limits = ClaimLimits(global_max=10, rate=RateLimit(5, timedelta(seconds=1)))
    assert plan(limits, 100, Usage(executing={None: 4}, started={None: 2})) == Plan(3, fetch=3)
    assert plan(limits, 2, Usage()) == Plan(2, fetch=2)
    assert plan(limits, 100, Usage(executing={None: 12})).total == 0


def test_plan_with_partitions_excludes_full_keys_and_caps_each_key() -> None:
    limits = ClaimLimits(partition_max=2)
    chosen = plan(limits, 10, Usage(executing={"a": 2, "b": 1}))
    assert chosen.exclude == frozenset({"a"})
    assert chosen.per_key == 2
    assert chosen.fetch == 20


def test_admit_gives_each_key_its_room_in_claim_order() -> None:
    limits = ClaimLimits(global_max=4, partition_max=2)
    usage = Usage(executing={"b": 1})
    chosen = plan(limits, 10, usage)
    candidates = [(1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "b"), (6, None), (7, "c")]
    taken, held = admit(limits, chosen, usage, candidates)
    assert taken == [1, 2, 4]  # global room is 3 (one b executing)
    assert held == 4


def test_per_partition_rate_counts_each_key_alone() -> None:
    limits = ClaimLimits(rate=RateLimit(2, timedelta(minutes=1), per_partition=True))
    usage = Usage(started={"a": 2, None: 1})
    chosen = plan(limits, 10, usage)
    taken, _ = admit(limits, chosen, usage, [(1, "a"), (2, None), (3, None), (4, "b")])
    assert taken == [2, 4]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((0, timedelta(seconds=1)), "allowed"),
        ((-3, timedelta(seconds=1)), "allowed"),
        ((True, timedelta(seconds=1)), "allowed"),
        ((1.5, timedelta(seconds=1)), "allowed"),
        ((1, timedelta(0)), "period"),
        ((1, 60), "period"),
        ((1, timedelta(microseconds=10)), "at least 1 ms"),
    ],
)
def test_bad_rate_limits_are_refused(arguments: tuple[Any, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RateLimit(*arguments)


def test_a_rate_limits_docstring_example_holds() -> None:
    assert RateLimit(allowed=100, period=timedelta(minutes=1)).per_partition is False


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("global_max_concurrency", 0),
        ("global_max_concurrency", -1),
        ("global_max_concurrency", "5"),
        ("partition_max_concurrency", 0),
        ("partition_max_concurrency", True),
        ("rate_limit", 100),
    ],
)
def test_executors_with_bad_limits_are_refused_at_definition(attribute: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"executor 'bad'.*(concurrency|rate_limit)"):
        types.new_class(
            "Bad",
            (Executor[int, None],),
            exec_body=lambda ns: ns.update({"name": "bad", attribute: value, "execute": _noop}),
        )


async def _noop(self: Any, job: Job[int, None]) -> None:
    return None


def test_an_executor_declares_its_limits() -> None:
    class Charge(Executor[int, None]):
        name = "charge"
        global_max_concurrency = 5
        partition_max_concurrency = 2
        rate_limit = RateLimit(allowed=100, period=timedelta(minutes=1))

        async def execute(self, job: Job[int, None]) -> None:
            return None

    assert Charge.claim_limits() == ClaimLimits(5, 2, RateLimit(100, timedelta(minutes=1)))
    assert Charge.claim_limits().partitioned


@pytest.mark.parametrize("key", ["", "x" * 201, "a\x00", "\udc80", 7, None, b"k"])
def test_bad_partition_keys(key: Any) -> None:
    with pytest.raises(ValidationError, match="partition key"):
        check_partition_key(key)
    if key is not None:
        with pytest.raises(ValidationError, match="partition key"):
            _Any.builder().with_partition_key(key)


class _Any(Executor[int, None]):
    name = "any"

    async def execute(self, job: Job[int, None]) -> None:
        return None


def test_the_builder_stores_the_partition_key() -> None:
    assert _Any.builder().with_data(1).with_partition_key("tenant-42").build().partition_key == (
        "tenant-42"
    )
    assert _Any.builder().with_data(1).with_partition_key(None).build().partition_key is None


@pytest.mark.parametrize("value", [0, -1, 2.0, "3", True])
def test_bad_scales(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="scale takes"):
        check_scale(value)
    assert check_scale(None) is None


@pytest.mark.parametrize("name", ["", None, 5, "x" * 1001, "a\x00"])
def test_bad_executor_names(name: Any) -> None:
    with pytest.raises(ValidationError, match="executor name"):
        check_name(name)


def test_rate_headroom() -> None:
    def control(rate: RateLimit | None, started: int) -> ExecutorControl:
        return ExecutorControl("x", False, None, False, None, None, rate, 0, 0, 0, started)

    assert control(None, 0).rate_headroom is None
    assert control(RateLimit(10, timedelta(seconds=1)), 4).rate_headroom == 6
    assert control(RateLimit(10, timedelta(seconds=1)), 12).rate_headroom == 0
    assert control(RateLimit(10, timedelta(seconds=1), per_partition=True), 12).rate_headroom == 10
