"""Defining executors and building jobs: validation, defaults, the global backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typing_extensions import TypedDict

from rexecutor import (
    ConfigurationError,
    Executor,
    GlobalBackendNotSet,
    InvalidTransition,
    Job,
    JobNotFound,
    JobStatus,
    Rexecutor,
    RexecutorError,
    UniquenessCriteria,
    ValidationError,
    Where,
)
from rexecutor.backends import InMemoryBackend
from rexecutor.testing import reset_global_backend


class Email(TypedDict):
    to: str
    subject: str


class EmailJob(Executor[Email, str]):
    name = "email"
    max_attempts = 3

    async def execute(self, job: Job[Email, str]) -> None:
        return None


class NoData(Executor[None, None]):
    name = "no_data"

    async def execute(self, job: Job[None, None]) -> None:
        return None


class Unique(Executor[int, None]):
    name = "unique"
    uniqueness_criteria = UniquenessCriteria.by_executor()

    async def execute(self, job: Job[int, None]) -> None:
        return None


@pytest.fixture
async def backend() -> Any:
    backend = InMemoryBackend()
    Rexecutor(backend).set_global_backend()
    yield backend
    reset_global_backend()


def test_an_executor_without_a_name_fails_at_definition() -> None:
    with pytest.raises(ConfigurationError, match="has no name"):

        class Nameless(Executor[int, None]):
            async def execute(self, job: Job[int, None]) -> None:
                return None


def test_an_abstract_base_needs_no_name() -> None:
    class Base(Executor[int, None], abstract=True):
        pass

    class Concrete(Base):
        name = "concrete"

        async def execute(self, job: Job[int, None]) -> None:
            return None

    assert Concrete.encode_data("5") == 5


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be an int >= 1"),
        ({"max_concurrency": 0}, "max_concurrency must be None or an int >= 1"),
    ],
)
def test_bad_limits_fail_at_definition(attrs: dict[str, Any], message: str) -> None:
    async def execute(self: Any, job: Any) -> None:
        return None

    with pytest.raises(ConfigurationError, match=message):
        type("Bad", (Executor,), {"name": "bad", "execute": execute, **attrs})


def test_an_executor_without_execute_fails_at_definition() -> None:
    with pytest.raises(ConfigurationError, match="must define execute"):

        class Lazy(Executor[int, None]):
            name = "lazy"


async def test_defaults_come_from_the_executor(backend: InMemoryBackend) -> None:
    job_id = await EmailJob.builder().with_data({"to": "a@b.c", "subject": "hi"}).enqueue()
    job = await EmailJob.get_job(job_id)
    assert (job.max_attempts, job.priority, job.tags, job.metadata) == (3, 0, [], None)
    assert job.data == {"to": "a@b.c", "subject": "hi"}


async def test_every_builder_setting_is_stored(backend: InMemoryBackend) -> None:
    when = datetime(2030, 1, 1, tzinfo=UTC)
    job_id = await (
        EmailJob.builder()
        .with_data({"to": "a@b.c", "subject": "hi"})
        .with_metadata("signup")
        .with_max_attempts(7)
        .with_tags(["a", "b"])
        .add_tag("c")
        .with_priority(4)
        .schedule_at(when)
        .enqueue()
    )
    job = await EmailJob.get_job(job_id)
    assert (job.metadata, job.max_attempts, job.tags, job.priority, job.scheduled_at) == (
        "signup",
        7,
        ["a", "b", "c"],
        4,
        when,
    )


async def test_builders_are_immutable_templates(backend: InMemoryBackend) -> None:
    base = EmailJob.builder().with_tags(["x"])
    one = base.add_tag("y").with_data({"to": "1", "subject": "s"})
    await one.enqueue()
    with pytest.raises(ValidationError, match="needs data"):
        await base.enqueue()


async def test_bad_data_is_refused_with_a_clear_error_and_nothing_is_stored(
    backend: InMemoryBackend,
) -> None:
    with pytest.raises(ValidationError, match=r"data for executor 'email' is invalid: subject"):
        await EmailJob.builder().with_data({"to": "x"}).enqueue()  # type: ignore[typeddict-item]
    with pytest.raises(ValidationError, match="metadata for executor 'email'"):
        await (
            EmailJob.builder()
            .with_data({"to": "x", "subject": "s"})
            .with_metadata(
                object()  # type: ignore[arg-type]
            )
            .enqueue()
        )
    assert await backend.query(Where.everything().node) == []


async def test_executors_whose_data_is_none_need_no_data(backend: InMemoryBackend) -> None:
    job_id = await NoData.builder().enqueue()
    assert (await NoData.get_job(job_id)).data is None


@pytest.mark.parametrize(
    "build",
    [
        lambda b: b.with_max_attempts(0),
        lambda b: b.with_priority(-1),
        lambda b: b.schedule_at(datetime(2030, 1, 1)),
    ],
)
def test_bad_builder_settings_fail_at_once(build: Any) -> None:
    with pytest.raises(ConfigurationError):
        build(EmailJob.builder())


async def test_the_executor_default_uniqueness_applies_and_can_be_switched_off(
    backend: InMemoryBackend,
) -> None:
    first = await Unique.builder().with_data(1).enqueue_with_result()
    second = await Unique.builder().with_data(2).enqueue_with_result()
    assert (first.duplicate, second.duplicate, second.job_id) == (False, True, first.job_id)
    third = await Unique.builder().with_data(3).unique(None).enqueue_with_result()
    assert not third.duplicate and third.job_id != first.job_id


async def test_query_jobs_sees_only_its_executor(backend: InMemoryBackend) -> None:
    await NoData.builder().enqueue()
    email_id = await EmailJob.builder().with_data({"to": "t", "subject": "s"}).enqueue()
    found = await EmailJob.query_jobs(Where.status_equals(JobStatus.SCHEDULED))
    assert [j.id for j in found] == [email_id]
    assert await EmailJob.query_jobs(Where.data_equals({"to": "t", "subject": "s"})) == found


async def test_update_job_writes_back_the_editable_fields(backend: InMemoryBackend) -> None:
    job_id = await EmailJob.builder().with_data({"to": "t", "subject": "s"}).enqueue()
    job = await EmailJob.get_job(job_id)
    job.max_attempts = 9
    job.data = {"to": "u", "subject": "s"}
    job.tags = ["edited"]
    await EmailJob.update_job(job)
    stored = await EmailJob.get_job(job_id)
    assert (stored.max_attempts, stored.data, stored.tags) == (
        9,
        {"to": "u", "subject": "s"},
        ["edited"],
    )
    job.data = {"nope": 1}  # type: ignore[typeddict-unknown-key]
    with pytest.raises(ValidationError):
        await EmailJob.update_job(job)


async def test_cancel_and_rerun_through_the_executor(backend: InMemoryBackend) -> None:
    job_id = await NoData.builder().enqueue()
    assert await NoData.cancel_job(job_id, "no longer needed")
    assert not await NoData.cancel_job(job_id, "again")
    await NoData.rerun_job(job_id)
    job = await NoData.get_job(job_id)
    assert job.status is JobStatus.SCHEDULED
    assert job.cancelled_at is None
    with pytest.raises(JobNotFound):
        await NoData.rerun_job(999)
    [claimed] = await backend.claim_ready_jobs("no_data", 1, "n")
    with pytest.raises(InvalidTransition, match="executing"):
        await NoData.rerun_job(claimed.id)


async def test_the_global_backend_must_be_set_and_says_how() -> None:
    reset_global_backend()
    with pytest.raises(GlobalBackendNotSet, match="set_global_backend") as info:
        await NoData.builder().enqueue()
    assert isinstance(info.value, RexecutorError)
    for call in (NoData.query_jobs(), NoData.cancel_job(1, "x"), NoData.rerun_job(1)):
        with pytest.raises(GlobalBackendNotSet):
            await call


async def test_the_last_set_global_backend_wins() -> None:
    first, second = InMemoryBackend(), InMemoryBackend()
    Rexecutor(first).set_global_backend()
    Rexecutor(second).set_global_backend()
    await NoData.builder().enqueue()
    assert len(await second.query(Where.everything().node)) == 1
    assert await first.query(Where.everything().node) == []
    reset_global_backend()


async def test_schedule_in_is_relative_to_now(backend: InMemoryBackend) -> None:
    job_id = await NoData.builder().schedule_in(timedelta(hours=3)).enqueue()
    delta = (await NoData.get_job(job_id)).scheduled_at - datetime.now(UTC)
    assert timedelta(hours=2, minutes=59) < delta <= timedelta(hours=3)


def test_types_pydantic_cannot_handle_give_a_configuration_error() -> None:
    import typing

    class Old(typing.TypedDict):
        x: int

    class Bad(Executor[Old, None]):
        name = "bad_types"

        async def execute(self, job: Job[Old, None]) -> None:
            return None

    with pytest.raises(ConfigurationError, match="pydantic cannot validate"):
        Bad.builder().with_data({"x": 1}).build()


async def test_enqueue_many_validates_everything_first(backend: InMemoryBackend) -> None:
    from rexecutor import enqueue_many

    good = [NoData.builder(), EmailJob.builder().with_data({"to": "a", "subject": "s"})]
    results = await enqueue_many(good)
    assert [r.duplicate for r in results] == [False, False]
    with pytest.raises(ValidationError):
        await enqueue_many([NoData.builder(), EmailJob.builder()])
    assert len(await backend.query(Where.everything().node)) == 2


# -- the retry policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        (
            {"discard_on": ValueError},
            r"discard_on must be a tuple of exception classes.*ValueError",
        ),
        ({"discard_on": (ValueError, int)}, "discard_on names <class 'int'>, which is not an exc"),
        ({"discard_on": ("ValueError",)}, "discard_on names 'ValueError', which is not an exc"),
        ({"snooze_on": (ValueError,)}, "snooze_on must be a mapping of exception classes"),
        ({"snooze_on": {str: timedelta(1)}}, "snooze_on names <class 'str'>, which is not an"),
        ({"snooze_on": {OSError: 30}}, "snooze_on delay for OSError must be a timedelta, got 30"),
        ({"snooze_on": {OSError: timedelta(seconds=-1)}}, "OSError must not be negative"),
        ({"snooze_on": {OSError: timedelta.max}}, "OSError is too long to schedule a job by"),
        (
            {"discard_on": (KeyError,), "snooze_on": {KeyError: timedelta(1)}},
            "KeyError is in both discard_on and snooze_on",
        ),
    ],
)
def test_a_bad_retry_policy_fails_at_definition(attrs: dict[str, Any], message: str) -> None:
    async def execute(self: Any, job: Any) -> None:
        return None

    with pytest.raises(ConfigurationError, match=message) as raised:
        type("Bad", (Executor,), {"name": "bad", "execute": execute, **attrs})
    assert "executor 'bad'" in str(raised.value)


def test_an_abstract_base_has_its_retry_policy_checked_too() -> None:
    with pytest.raises(ConfigurationError, match="executor class Base: discard_on names 1"):

        class Base(Executor[int, None], abstract=True):
            discard_on = (1,)  # type: ignore[assignment]


def test_a_subclass_inherits_the_retry_policy_and_may_extend_it() -> None:
    class Base(Executor[int, None], abstract=True):
        discard_on = (KeyError,)

    class Child(Base):
        name = "child"
        snooze_on = {OSError: timedelta(minutes=1)}

        async def execute(self, job: Job[int, None]) -> None:
            return None

    policy = Child._retry_policy
    assert policy.reaction(KeyError("k")) is not None
    assert policy.reaction(FileNotFoundError()) == timedelta(minutes=1)
    assert policy.reaction(ValueError()) is None


def _backoff_takes_error(backoff: Any) -> bool:
    attrs = {"name": "b", "execute": lambda self, job: None, "backoff": backoff}
    executor: Any = type("B", (Executor,), attrs)
    return bool(executor._retry_policy.backoff_takes_error)


def test_the_backoff_form_is_read_once_from_its_signature() -> None:
    assert _backoff_takes_error(lambda self, job, error: timedelta(0))
    assert _backoff_takes_error(lambda self, job, error=None: timedelta(0))
    assert _backoff_takes_error(lambda self, *args: timedelta(0))
    assert not _backoff_takes_error(lambda self, job: timedelta(0))
    assert not _backoff_takes_error(lambda self, job, *, error=None: timedelta(0))
    assert EmailJob._retry_policy.backoff_takes_error  # the default backoff takes it
