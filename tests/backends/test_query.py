"""Conformance: ``query`` evaluates every ``Where`` node the same way on every backend,
returns jobs oldest first by id, pages, and matches odd strings exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from rexecutor.backend import Backend
from rexecutor.errors import JobNotFound, ValidationError
from rexecutor.job import JobStatus
from rexecutor.query import (
    And,
    DataEquals,
    ExecutorEquals,
    IdIn,
    MetadataEquals,
    Not,
    Or,
    ScheduledAt,
    StatusIn,
    TagsAllOf,
    TagsOneOf,
    Where,
)

from ._helpers import (
    CANCEL,
    enqueue,
    executing,
    find,
    finished,
    ids,
    mark_cancelled,
    retryable,
    utcnow,
)

# -- leaves ----------------------------------------------------------------------------------


async def test_executor_equals(backend: Backend) -> None:
    a1 = await enqueue(backend, "a")
    await enqueue(backend, "b")
    a2 = await enqueue(backend, "a")
    assert await find(backend, Where.executor_equals("a")) == [a1, a2]
    assert len(await find(backend, ExecutorEquals("b"))) == 1
    assert await find(backend, ExecutorEquals("missing")) == []
    assert await find(backend, ExecutorEquals("A")) == []


async def test_data_equals_compares_whole_json_values(backend: Backend) -> None:
    match = await enqueue(backend, data={"user": 1, "opts": {"x": [1, 2]}})
    await enqueue(backend, data={"user": 1, "opts": {"x": [2, 1]}})
    await enqueue(backend, data={"user": 1})
    await enqueue(backend, data={"user": 1, "opts": {"x": [1, 2]}, "extra": None})
    await enqueue(backend, data={"user": 2, "opts": {"x": [1, 2]}})
    assert await find(backend, Where.data_equals({"user": 1, "opts": {"x": [1, 2]}})) == [match]


async def test_data_equals_ignores_key_order_at_every_level(backend: Backend) -> None:
    job_id = await enqueue(backend, data={"a": 1, "b": {"c": 2, "d": [{"e": 3, "f": 4}]}})
    query = DataEquals({"b": {"d": [{"f": 4, "e": 3}], "c": 2}, "a": 1})
    assert await find(backend, query) == [job_id]


async def test_data_equals_is_not_containment(backend: Backend) -> None:
    await enqueue(backend, data={"a": 1, "b": 2})
    await enqueue(backend, data=[1, 2, 3])
    assert await find(backend, Where.data_equals({"a": 1})) == []
    assert await find(backend, Where.data_equals([1, 2])) == []
    assert await find(backend, Where.data_equals([1])) == []


async def test_data_equals_distinguishes_json_types(backend: Backend) -> None:
    flag = await enqueue(backend, data={"v": True})
    one = await enqueue(backend, data={"v": 1})
    text = await enqueue(backend, data={"v": "1"})
    null = await enqueue(backend, data={"v": None})
    assert await find(backend, Where.data_equals({"v": True})) == [flag]
    assert await find(backend, Where.data_equals({"v": 1})) == [one]
    assert await find(backend, Where.data_equals({"v": "1"})) == [text]
    assert await find(backend, Where.data_equals({"v": None})) == [null]
    assert await find(backend, Where.data_equals({"v": False})) == []
    assert await find(backend, Where.data_equals({"v": 0})) == []


async def test_data_equals_on_scalar_and_list_data(backend: Backend) -> None:
    text = await enqueue(backend, data="hello")
    number = await enqueue(backend, data=42)
    listed = await enqueue(backend, data=["hello", 42])
    assert await find(backend, Where.data_equals("hello")) == [text]
    assert await find(backend, Where.data_equals(42)) == [number]
    assert await find(backend, Where.data_equals(["hello", 42])) == [listed]


async def test_metadata_equals(backend: Backend) -> None:
    match = await enqueue(backend, metadata={"trace": "t1", "n": [1]})
    await enqueue(backend, metadata={"trace": "t2", "n": [1]})
    await enqueue(backend)
    assert await find(backend, Where.metadata_equals({"n": [1], "trace": "t1"})) == [match]
    assert await find(backend, MetadataEquals("t1")) == []


async def test_metadata_equals_none_matches_jobs_without_metadata(backend: Backend) -> None:
    bare = await enqueue(backend)
    await enqueue(backend, metadata={"m": 1})
    assert await find(backend, Where.metadata_equals(None)) == [bare]


async def test_not_metadata_equals_includes_jobs_without_metadata(backend: Backend) -> None:
    bare = await enqueue(backend)
    match = await enqueue(backend, metadata={"m": 1})
    other = await enqueue(backend, metadata={"m": 2})
    assert await find(backend, ~Where.metadata_equals({"m": 1})) == [bare, other]
    assert await find(backend, ~Where.metadata_equals(None)) == [match, other]


async def test_id_equals_and_id_in(backend: Backend) -> None:
    first = await enqueue(backend)
    second = await enqueue(backend)
    third = await enqueue(backend)
    assert await find(backend, Where.id_equals(second)) == [second]
    assert await find(backend, Where.id_in([third, first])) == [first, third]
    assert await find(backend, Where.id_in([first, second, third, 987654])) == [
        first,
        second,
        third,
    ]
    assert await find(backend, Where.id_in([987654])) == []


async def test_id_in_of_nothing_matches_nothing(backend: Backend) -> None:
    await enqueue(backend)
    await enqueue(backend)
    assert await find(backend, Where.id_in([])) == []
    assert await find(backend, IdIn(())) == []


async def test_status_equals_and_status_in(backend: Backend) -> None:
    scheduled = await enqueue(backend, "s")
    running, _ = await executing(backend, "e")
    waiting = await retryable(backend, "r", delay=timedelta(hours=1))
    complete = await finished(backend, JobStatus.COMPLETE, "c")
    cancelled = await finished(backend, JobStatus.CANCELLED, "x")
    discarded = await finished(backend, JobStatus.DISCARDED, "d")
    by_status = {
        JobStatus.SCHEDULED: scheduled,
        JobStatus.EXECUTING: running.id,
        JobStatus.RETRYABLE: waiting,
        JobStatus.COMPLETE: complete,
        JobStatus.CANCELLED: cancelled,
        JobStatus.DISCARDED: discarded,
    }
    for status, job_id in by_status.items():
        assert await find(backend, Where.status_equals(status)) == [job_id]
    terminal = StatusIn((JobStatus.DISCARDED, JobStatus.COMPLETE))
    assert await find(backend, terminal) == [complete, discarded]
    assert await find(backend, StatusIn(JobStatus.ALL)) == sorted(by_status.values())


async def test_tagged_by_all_of(backend: Backend) -> None:
    both = await enqueue(backend, tags=("red", "blue"))
    more = await enqueue(backend, tags=("blue", "green", "red"))
    await enqueue(backend, tags=("red",))
    await enqueue(backend)
    assert await find(backend, Where.tagged_by_all_of(["red", "blue"])) == [both, more]
    assert await find(backend, Where.tagged_by_all_of(["blue", "red", "green"])) == [more]
    assert await find(backend, TagsAllOf(("purple",))) == []


async def test_tagged_by_all_of_nothing_matches_every_job(backend: Backend) -> None:
    tagged = await enqueue(backend, tags=("red",))
    bare = await enqueue(backend)
    assert await find(backend, Where.tagged_by_all_of([])) == [tagged, bare]


async def test_tagged_by_one_of(backend: Backend) -> None:
    red = await enqueue(backend, tags=("red",))
    blue = await enqueue(backend, tags=("x", "blue"))
    await enqueue(backend, tags=("green",))
    await enqueue(backend)
    assert await find(backend, Where.tagged_by_one_of(["blue", "red"])) == [red, blue]
    assert await find(backend, TagsOneOf(("purple",))) == []


async def test_tagged_by_one_of_nothing_matches_nothing(backend: Backend) -> None:
    await enqueue(backend, tags=("red",))
    await enqueue(backend)
    assert await find(backend, Where.tagged_by_one_of([])) == []


async def test_tags_match_whole_tags_only(backend: Backend) -> None:
    job_id = await enqueue(backend, tags=("reddish", "a,b"))
    assert await find(backend, Where.tagged_by_one_of(["red"])) == []
    assert await find(backend, Where.tagged_by_one_of(["a"])) == []
    assert await find(backend, Where.tagged_by_all_of(["a", "b"])) == []
    assert await find(backend, Where.tagged_by_one_of(["a,b"])) == [job_id]


async def test_scheduled_at_before_after_and_equals(backend: Backend) -> None:
    moment = datetime(2031, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    earlier = await enqueue(backend, scheduled_at=moment - timedelta(microseconds=1))
    exact = await enqueue(backend, scheduled_at=moment)
    later = await enqueue(backend, scheduled_at=moment + timedelta(microseconds=1))
    assert await find(backend, Where.scheduled_at_before(moment)) == [earlier]
    assert await find(backend, Where.scheduled_at_after(moment)) == [later]
    assert await find(backend, Where.scheduled_at_equals(moment)) == [exact]
    assert await find(backend, ScheduledAt("<", moment + timedelta(hours=1))) == [
        earlier,
        exact,
        later,
    ]


async def test_scheduled_at_older_than_and_within_the_last(backend: Backend) -> None:
    now = datetime.now(UTC)
    old = await enqueue(backend, scheduled_at=now - timedelta(days=2))
    recent = await enqueue(backend, scheduled_at=now - timedelta(minutes=5))
    future = await enqueue(backend, scheduled_at=now + timedelta(days=2))
    assert await find(backend, Where.scheduled_at_older_than(timedelta(days=1))) == [old]
    within = Where.scheduled_at_within_the_last(timedelta(days=1))
    assert await find(backend, within) == [recent, future]


async def test_scheduled_at_comparisons_work_across_timezones(backend: Backend) -> None:
    moment = datetime(2031, 3, 4, 5, 0, tzinfo=UTC)
    job_id = await enqueue(backend, scheduled_at=moment)
    same_in_tokyo = moment.astimezone(timezone(timedelta(hours=9)))
    assert await find(backend, Where.scheduled_at_equals(same_in_tokyo)) == [job_id]
    assert await find(backend, Where.scheduled_at_before(same_in_tokyo)) == []


# -- combinations ----------------------------------------------------------------------------


async def test_and_requires_every_part(backend: Backend) -> None:
    match = await enqueue(backend, "a", tags=("t",), data={"k": 1})
    await enqueue(backend, "a", tags=("t",), data={"k": 2})
    await enqueue(backend, "b", tags=("t",), data={"k": 1})
    await enqueue(backend, "a", data={"k": 1})
    where = Where.executor_equals("a") & Where.tagged_by_all_of(["t"]) & Where.data_equals({"k": 1})
    assert await find(backend, where) == [match]


async def test_or_requires_one_part(backend: Backend) -> None:
    a = await enqueue(backend, "a")
    await enqueue(backend, "b")
    c = await enqueue(backend, "c")
    assert await find(backend, Where.executor_equals("a") | Where.executor_equals("c")) == [a, c]


async def test_or_inside_and_groups_correctly(backend: Backend) -> None:
    mine_x = await enqueue(backend, "mine", data={"v": "x"})
    mine_y = await enqueue(backend, "mine", data={"v": "y"})
    await enqueue(backend, "mine", data={"v": "z"})
    await enqueue(backend, "theirs", data={"v": "x"})
    await enqueue(backend, "theirs", data={"v": "y"})
    where = Where.executor_equals("mine") & (
        Where.data_equals({"v": "x"}) | Where.data_equals({"v": "y"})
    )
    assert await find(backend, where) == [mine_x, mine_y]
    flipped = (Where.data_equals({"v": "x"}) | Where.data_equals({"v": "y"})) & (
        Where.executor_equals("mine")
    )
    assert await find(backend, flipped) == [mine_x, mine_y]


async def test_and_inside_or_groups_correctly(backend: Backend) -> None:
    a_red = await enqueue(backend, "a", tags=("red",))
    await enqueue(backend, "a", tags=("blue",))
    await enqueue(backend, "b", tags=("red",))
    b_blue = await enqueue(backend, "b", tags=("blue",))
    where = (Where.executor_equals("a") & Where.tagged_by_one_of(["red"])) | (
        Where.executor_equals("b") & Where.tagged_by_one_of(["blue"])
    )
    assert await find(backend, where) == [a_red, b_blue]


async def test_not_negates_a_leaf(backend: Backend) -> None:
    a = await enqueue(backend, "a")
    b = await enqueue(backend, "b")
    assert await find(backend, ~Where.executor_equals("a")) == [b]
    assert await find(backend, Not(ExecutorEquals("b"))) == [a]


async def test_not_of_and_negates_the_whole_conjunction(backend: Backend) -> None:
    a_red = await enqueue(backend, "a", tags=("red",))
    a_blue = await enqueue(backend, "a", tags=("blue",))
    b_red = await enqueue(backend, "b", tags=("red",))
    b_blue = await enqueue(backend, "b", tags=("blue",))
    where = ~(Where.executor_equals("a") & Where.tagged_by_one_of(["red"]))
    assert await find(backend, where) == [a_blue, b_red, b_blue]
    assert a_red not in await find(backend, where)


async def test_not_of_or_negates_the_whole_disjunction(backend: Backend) -> None:
    await enqueue(backend, "a")
    await enqueue(backend, "b")
    c = await enqueue(backend, "c")
    where = ~(Where.executor_equals("a") | Where.executor_equals("b"))
    assert await find(backend, where) == [c]


async def test_double_negation_and_negation_inside_and(backend: Backend) -> None:
    a = await enqueue(backend, "a", tags=("red",))
    a_plain = await enqueue(backend, "a")
    await enqueue(backend, "b")
    assert await find(backend, ~~Where.executor_equals("a")) == [a, a_plain]
    where = Where.executor_equals("a") & ~Where.tagged_by_one_of(["red"])
    assert await find(backend, where) == [a_plain]


async def test_raw_nodes_nest_deeply(backend: Backend) -> None:
    hit = await enqueue(backend, "a", data={"n": 1}, tags=("t",))
    await enqueue(backend, "a", data={"n": 2}, tags=("t",))
    await enqueue(backend, "b", data={"n": 1}, tags=("t",))
    node = And(
        (
            Or(
                (ExecutorEquals("a"), And((ExecutorEquals("c"), Not(And(()))))),
            ),
            Not(Or((DataEquals({"n": 2}), TagsOneOf(("nope",))))),
            TagsAllOf(("t",)),
        )
    )
    assert await find(backend, node) == [hit]


async def test_empty_and_matches_everything_and_empty_or_nothing(backend: Backend) -> None:
    first = await enqueue(backend, "a")
    second = await enqueue(backend, "b")
    assert await find(backend, Where.everything()) == [first, second]
    assert await find(backend, And(())) == [first, second]
    assert await find(backend, Or(())) == []
    assert await find(backend, Not(Or(()))) == [first, second]
    assert await find(backend, Not(And(()))) == []
    assert await find(backend, Or((And(()),))) == [first, second]
    assert await find(backend, And((Or(()),))) == []


async def test_empty_id_list_inside_or_and_not(backend: Backend) -> None:
    first = await enqueue(backend, "a")
    second = await enqueue(backend, "b")
    assert await find(backend, Where.id_in([]) | Where.executor_equals("b")) == [second]
    assert await find(backend, ~Where.id_in([])) == [first, second]


async def test_empty_lists_match_nothing_except_all_of_which_matches_everything(
    backend: Backend,
) -> None:
    first = await enqueue(backend, "a", tags=("t",))
    second = await enqueue(backend, "b")
    everyone = [first, second]
    for nothing in (IdIn(()), StatusIn(()), TagsOneOf(())):
        assert await find(backend, nothing) == []
        assert await find(backend, Not(nothing)) == everyone
        assert await find(backend, Or((nothing, ExecutorEquals("b")))) == [second]
        assert await find(backend, And((nothing, ExecutorEquals("b")))) == []
    assert await find(backend, TagsAllOf(())) == everyone
    assert await find(backend, Not(TagsAllOf(()))) == []
    assert await find(backend, And((TagsAllOf(()), ExecutorEquals("a")))) == [first]


async def test_ids_no_backend_can_store_match_nothing_even_negated(backend: Backend) -> None:
    first = await enqueue(backend)
    assert await find(backend, IdIn((2**63,))) == []
    assert await find(backend, Not(IdIn((2**63, -(2**63) - 1)))) == [first]


@pytest.mark.parametrize("op", ["!=", "<=", "==", ""])
async def test_an_unknown_scheduled_at_comparison_is_refused(backend: Backend, op: str) -> None:
    await enqueue(backend)
    message = f"unknown scheduled_at comparison {op!r}; use one of '<', '>', '='"
    for node in (
        ScheduledAt(op, utcnow()),
        Not(ScheduledAt(op, utcnow())),
        Or((ExecutorEquals("ex"), ScheduledAt(op, utcnow()))),
    ):
        with pytest.raises(ValidationError) as raised:
            await backend.query(node)
        assert str(raised.value) == message


async def test_a_scheduled_at_without_a_timezone_is_refused(backend: Backend) -> None:
    await enqueue(backend)
    with pytest.raises(ValidationError, match=r"query datetime .* has no timezone"):
        await backend.query(ScheduledAt("<", datetime(2030, 1, 1)))


# -- ordering and paging ---------------------------------------------------------------------


async def test_results_are_oldest_first_by_id(backend: Backend) -> None:
    now = datetime.now(UTC)
    first = await enqueue(backend, scheduled_at=now + timedelta(hours=3), priority=5)
    second = await enqueue(backend, scheduled_at=now - timedelta(hours=3), priority=0)
    third = await enqueue(backend, scheduled_at=now)
    assert await find(backend, Where.everything()) == [first, second, third]
    assert await find(backend, Where.everything(), newest_first=True) == [third, second, first]


async def test_limit_and_offset_page_through_results(backend: Backend) -> None:
    job_ids = [await enqueue(backend, data={"i": i}) for i in range(7)]
    everything = Where.everything()
    assert await find(backend, everything, limit=3) == job_ids[:3]
    assert await find(backend, everything, limit=3, offset=3) == job_ids[3:6]
    assert await find(backend, everything, limit=3, offset=6) == job_ids[6:]
    assert await find(backend, everything, offset=5) == job_ids[5:]
    assert await find(backend, everything, offset=7) == []
    assert await find(backend, everything, limit=0) == []
    newest = list(reversed(job_ids))
    assert await find(backend, everything, limit=2, offset=1, newest_first=True) == newest[1:3]


async def test_paging_applies_after_filtering(backend: Backend) -> None:
    wanted = []
    for i in range(6):
        wanted.append(await enqueue(backend, "a", data={"i": i}))
        await enqueue(backend, "b", data={"i": i})
    where = Where.executor_equals("a")
    assert await find(backend, where, limit=2, offset=2) == wanted[2:4]
    assert await find(backend, where, limit=2, newest_first=True) == [wanted[5], wanted[4]]


async def test_query_returns_complete_jobs(backend: Backend) -> None:
    job_id = await retryable(backend, data={"d": 1}, tags=("t",), metadata={"m": 2})
    [job] = await backend.query(IdIn((job_id,)))
    stored = await backend.get_job(job_id)
    assert job == stored
    assert job.status is JobStatus.RETRYABLE
    assert job.data == {"d": 1}
    assert job.metadata == {"m": 2}
    assert job.tags == ["t"]
    assert len(job.errors) == 1


async def test_get_job_of_an_unknown_id_raises_job_not_found(backend: Backend) -> None:
    await enqueue(backend)
    with pytest.raises(JobNotFound):
        await backend.get_job(987654)


async def test_cancelled_job_is_found_by_status(backend: Backend) -> None:
    job_id = await enqueue(backend)
    assert await mark_cancelled(backend, job_id, None, CANCEL)
    assert await find(backend, Where.status_equals(JobStatus.CANCELLED)) == [job_id]
    assert ids(await backend.query(StatusIn((JobStatus.SCHEDULED,)))) == []


# -- odd strings -----------------------------------------------------------------------------

ODD_STRINGS = [
    "it's",
    'say "hi"',
    "100% sure",
    "under_score",
    "'; DROP TABLE rexecutor_jobs; --",
    "back\\slash",
    "{curly,braces}",
    "[1, 2]",
    "ünïcödé ✓ 日本語 🚀",
    "line\nbreak\ttab",
    " padded ",
    "",
    "$1",
    "?",
    "NULL",
]


@pytest.mark.parametrize("text", ODD_STRINGS)
async def test_odd_strings_round_trip_and_match_exactly(backend: Backend, text: str) -> None:
    executor = f"ex-{text}"
    job_id = await enqueue(
        backend, executor, data={text: text, "list": [text]}, metadata=text, tags=(text, "plain")
    )
    decoy = await enqueue(backend, "ex-decoy", data={"x": "y"}, metadata="other", tags=("p",))

    job = await backend.get_job(job_id)
    assert job.executor == executor
    assert job.data == {text: text, "list": [text]}
    assert job.metadata == text
    assert job.tags == [text, "plain"]

    assert await find(backend, Where.executor_equals(executor)) == [job_id]
    assert await find(backend, Where.data_equals({"list": [text], text: text})) == [job_id]
    assert await find(backend, Where.metadata_equals(text)) == [job_id]
    assert await find(backend, Where.tagged_by_one_of([text])) == [job_id]
    assert await find(backend, Where.tagged_by_all_of([text, "plain"])) == [job_id]
    assert await find(backend, ~Where.executor_equals(executor)) == [decoy]
    assert ids(await backend.claim_ready_jobs(executor, 10, f"node-{text}")) == [job_id]
    assert (await backend.get_job(job_id)).attempted_by == f"node-{text}"


async def test_wildcard_characters_are_not_patterns(backend: Backend) -> None:
    await enqueue(backend, "axb", data="axb", tags=("axb",))
    await enqueue(backend, "abc", data="abc", tags=("abc",))
    for pattern in ["a_b", "a%", "%", "_", "a.*", "*"]:
        assert await find(backend, Where.executor_equals(pattern)) == []
        assert await find(backend, Where.data_equals(pattern)) == []
        assert await find(backend, Where.tagged_by_one_of([pattern])) == []


async def test_string_comparison_is_exact(backend: Backend) -> None:
    await enqueue(backend, "Mixed", data="Text", tags=("Tag",))
    assert await find(backend, Where.executor_equals("mixed")) == []
    assert await find(backend, Where.executor_equals("Mixed ")) == []
    assert await find(backend, Where.data_equals("text")) == []
    assert await find(backend, Where.tagged_by_one_of(["tag"])) == []
