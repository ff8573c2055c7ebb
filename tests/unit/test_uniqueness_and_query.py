"""Pure parts of uniqueness and queries: stable keys, builders, combinators."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from rexecutor import JobStatus, Replace, UniquenessCriteria, ValidationError, Where
from rexecutor.query import And, IdIn, Not, Or, StatusIn, TagsOneOf


def test_keys_hash_stably_across_processes() -> None:
    code = (
        "from rexecutor import UniquenessCriteria as U; "
        "print(U.by_key({'b': [1, 2], 'a': 'x'}).key)"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = UniquenessCriteria.by_key({"a": "x", "b": [1, 2]}).key
    assert int(other.stdout) == here
    assert UniquenessCriteria.by_key("bob").key != UniquenessCriteria.by_key("alice").key


def test_criteria_constructors_and_chaining() -> None:
    criteria = (
        UniquenessCriteria.by_key("k")
        .and_executor()
        .and_within(timedelta(minutes=-5))
        .and_statuses([JobStatus.SCHEDULED, JobStatus.EXECUTING])
        .on_conflict(Replace.scheduled_at().and_data().for_statuses(JobStatus.ALL))
    )
    assert criteria.executor and criteria.window == timedelta(minutes=5)
    assert criteria.statuses == {JobStatus.SCHEDULED, JobStatus.EXECUTING}
    assert criteria.replace is not None
    assert criteria.replace.fields == {"scheduled_at", "data"}
    assert criteria.replace.statuses == set(JobStatus.ALL)
    assert criteria.on_conflict_do_nothing().replace is None
    assert UniquenessCriteria.by_executor().statuses == {JobStatus.SCHEDULED}


def test_replace_defaults_to_scheduled_jobs_and_needs_a_field() -> None:
    assert Replace.priority().statuses == {JobStatus.SCHEDULED}
    with pytest.raises(ValueError):
        UniquenessCriteria.by_executor().on_conflict(Replace(frozenset()))
    with pytest.raises(ValueError):
        UniquenessCriteria.by_statuses([])
    with pytest.raises(ValueError, match="Replace must name fields among"):
        Replace(frozenset({"tags"}))


def test_the_replace_plan_lists_fields_in_one_order_and_statuses_sorted() -> None:
    assert UniquenessCriteria.by_executor().replace_plan() is None
    action = Replace.max_attempts().and_data().and_scheduled_at()
    plan = (
        UniquenessCriteria.by_executor()
        .on_conflict(
            action.for_statuses([JobStatus.SCHEDULED, JobStatus.RETRYABLE, JobStatus.COMPLETE])
        )
        .replace_plan()
    )
    assert plan is not None
    assert plan.fields == ("scheduled_at", "data", "max_attempts")
    assert plan.statuses == (JobStatus.COMPLETE, JobStatus.RETRYABLE, JobStatus.SCHEDULED)
    assert plan.applies_to(JobStatus.RETRYABLE)
    assert not plan.applies_to(JobStatus.EXECUTING)


def test_where_combinators_group_as_written() -> None:
    a = Where.status_equals(JobStatus.SCHEDULED)
    b = Where.id_in([1, 2])
    c = Where.tagged_by_one_of(["x"])
    assert (a & b & c).node == And((a.node, b.node, c.node))
    assert (a | (b & c)).node == Or((a.node, And((b.node, c.node))))
    assert (~(a & b)).node == Not(And((a.node, b.node)))
    assert a.and_(b).or_(c).node == Or((And((a.node, b.node)), c.node))
    assert b.node == IdIn((1, 2)) and c.node == TagsOneOf(("x",))
    assert a.node == StatusIn((JobStatus.SCHEDULED,))


def test_where_refuses_naive_datetimes() -> None:
    with pytest.raises(ValidationError, match="no timezone"):
        Where.scheduled_at_before(datetime(2030, 1, 1))
    assert Where.scheduled_at_after(datetime(2030, 1, 1, tzinfo=UTC))
