"""Issue 11's hostile-input suite: generated bad values and failures go through enqueue,
claim, execute, record, ``rexecutor jobs show`` and the dashboard, on every backend.

Invariants: a job is refused at enqueue with a ``ValidationError`` naming the field at fault,
or it reaches a settled state with what it carried intact; whatever a job holds, every page
renders (200 with well-formed HTML, API and ``--json`` output strict JSON); and after every
example an ordinary job still completes, so no runner stopped. The command line runs on the
SQL backends only: an in-memory backend cannot be opened by ``rexecutor``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from rexecutor import (
    ConfigurationError,
    ErrorType,
    Executor,
    JobStatus,
    PayloadTooLarge,
    ValidationError,
    Where,
    enqueue_many,
)
from rexecutor.backend import EnqueuableJob
from tests.hostile.checks import check_cli, check_page, check_pages, cli, dashboard, strict_json
from tests.hostile.conftest import (
    SETTLED,
    Echo,
    FloatEcho,
    Node,
    Raises,
    RaisesInThread,
    ReturnsCancel,
    ReturnsError,
    healthy_job_completes,
)
from tests.hostile.values import (
    ACCEPT,
    REFUSE,
    TEXT_CAP,
    Failure,
    Moment,
    Tags,
    Value,
    bad_text,
    failures,
    hostile_text,
    moments,
    size_verdict,
    tag_lists,
    value_verdict,
    values,
    worst,
)
from tests.support.waiting import wait_for_status

#: Generation only: the recipes are already minimal, and a failing example (a job stuck in
#: ``executing``) costs a full wait, so shrinking would take minutes and say little more.
HOSTILE = settings(
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: How each field is named in a refusal.
FIELD_NAMES = {
    "data": r"\bdata\b",
    "metadata": r"\bmetadata\b",
    "tags": r"\btags?\b",
    "scheduled_at": r"schedul",
    "size": r"\blimit\b|\bbytes\b|too large",
}


def same(a: Any, b: Any) -> bool:
    """JSON equality, with numbers compared by value (jsonb may give back 1e308 as an int).
    Iterative: values nest 500 deep."""
    pairs = [(a, b)]
    while pairs:
        x, y = pairs.pop()
        if isinstance(x, bool) or isinstance(y, bool):
            if x is not y:
                return False
        elif isinstance(x, int | float) and isinstance(y, int | float):
            if x != y and not _same_float(x, y):
                return False
        elif isinstance(x, dict) and isinstance(y, dict):
            if x.keys() != y.keys():
                return False
            pairs.extend((x[k], y[k]) for k in x)
        elif isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                return False
            pairs.extend(zip(x, y, strict=True))
        elif type(x) is not type(y) or x != y:
            return False
    return True


def _same_float(x: float, y: float) -> bool:
    try:
        return float(x) == float(y)
    except OverflowError:
        return False


def check_refusal(exc: ValidationError, at_fault: list[str]) -> None:
    """A refusal says which field is wrong, briefly and printably."""
    message = str(exc)
    assert len(message) < 10_000, f"the refusal quotes the value: {len(message)} characters"
    assert not bad_text(message), f"the refusal itself holds NUL or a lone surrogate: {message!r}"
    named = [f for f in at_fault if re.search(FIELD_NAMES[f], message)]
    assert named, f"refusal {message!r} names none of the fields at fault {at_fault}"


# -- hostile payloads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """One job: its data, metadata, tags and schedule, and the path that enqueues it."""

    data: Value
    metadata: Value
    tags: Tags
    scheduled: Moment | None
    path: str

    def faults(self) -> dict[str, str]:
        """Each field's verdict."""
        data, metadata, tags = self.data.build(), self.metadata.build(), self.tags.build()
        return {
            "data": value_verdict(data),
            "metadata": value_verdict(metadata),
            "tags": self.tags.verdict(),
            "scheduled_at": self.scheduled.verdict() if self.scheduled else ACCEPT,
            "size": size_verdict(data, metadata, tags),
        }


payloads = st.builds(
    Payload,
    data=values,
    metadata=values | st.just(Value("json", None)),
    tags=tag_lists,
    scheduled=st.none() | moments,
    path=st.sampled_from(["builder", "enqueue_many", "backend.enqueue", "update_job"]),
)

PLAIN = Value("json", {"plain": True})
NO_TAGS = Tags("none")
UTC_YEAR_10000 = Moment(datetime(9999, 12, 31, 23, 0), -14 * 60)
UTC_YEAR_0 = Moment(datetime(1, 1, 1), 14 * 60)


async def enqueue(payload: Payload, node: Node) -> int:
    """Enqueue ``payload`` by its path; returns the job id or raises ``ValidationError``."""
    backend = node.backend
    data, metadata, tags = payload.data.build(), payload.metadata.build(), payload.tags.build()
    moment = payload.scheduled.build() if payload.scheduled else None
    if payload.path == "backend.enqueue":
        job = EnqueuableJob(
            Echo.name, data, metadata=metadata, max_attempts=1, scheduled_at=moment, tags=(*tags,)
        )
        return int((await backend.enqueue(job)).job_id)
    if payload.path == "update_job":
        return await update_into(payload, node)
    builder = Echo.builder().with_data(data).with_metadata(metadata).with_tags(tags)
    if moment is not None:
        builder = builder.schedule_at(moment)
    if payload.path == "enqueue_many":
        [result] = await enqueue_many([builder], backend)
        return int(result.job_id)
    return int(await builder.enqueue_to_backend(backend))


async def update_into(payload: Payload, node: Node) -> int:
    """Enqueue a plain job due in an hour, then ``update_job`` it to ``payload``. A refused
    update leaves the stored job as it was; it is then cancelled, so that it ends."""
    backend = node.backend
    later = datetime.now(UTC) + timedelta(hours=1)
    job_id = int(await Echo.builder().with_data(0).schedule_at(later).enqueue_to_backend(backend))
    job = await Echo.get_job(job_id, backend)
    job.data = payload.data.build()
    job.metadata = payload.metadata.build()
    job.tags = payload.tags.build()
    job.scheduled_at = payload.scheduled.build() if payload.scheduled else datetime.now(UTC)
    try:
        await Echo.update_job_on_backend(job, backend)
    except ValidationError:
        stored = await backend.get_job(job_id)
        assert (stored.status, stored.data, stored.tags) == (JobStatus.SCHEDULED, 0, [])
        assert stored.scheduled_at == later, "a refused update changed the job"
        await Echo.cancel_job_on_backend(job_id, "refused update", backend)
        raise
    return job_id


@settings(HOSTILE, max_examples=30)
@given(payload=payloads)
@example(Payload(PLAIN, PLAIN, NO_TAGS, UTC_YEAR_10000, "builder"))
@example(Payload(PLAIN, PLAIN, NO_TAGS, UTC_YEAR_0, "builder"))
@example(Payload(PLAIN, PLAIN, NO_TAGS, UTC_YEAR_10000, "backend.enqueue"))
@example(Payload(PLAIN, PLAIN, NO_TAGS, UTC_YEAR_0, "update_job"))
@example(Payload(PLAIN, PLAIN, NO_TAGS, Moment(datetime(1, 1, 1), -(14 * 60)), "builder"))
@example(Payload(PLAIN, PLAIN, NO_TAGS, Moment(datetime(9999, 12, 31), 14 * 60), "builder"))
@example(Payload(Value("number", math.nan), PLAIN, NO_TAGS, None, "builder"))
@example(Payload(PLAIN, Value("nested_float", math.inf), NO_TAGS, None, "enqueue_many"))
@example(Payload(Value("surrogate"), PLAIN, NO_TAGS, None, "builder"))
@example(Payload(Value("nul"), PLAIN, NO_TAGS, None, "backend.enqueue"))
@example(Payload(Value("string", 5_000_000), PLAIN, NO_TAGS, None, "backend.enqueue"))
@example(Payload(PLAIN, PLAIN, Tags("huge", 5 * 1024 * 1024), None, "builder"))
@example(Payload(PLAIN, PLAIN, Tags("texts", ("bad\udc80tag",)), None, "update_job"))
@example(Payload(Value("string", 1_000_000), PLAIN, Tags("many", 2_000), None, "builder"))
@example(Payload(Value("number", 2**64 + 1), Value("deep", 500), NO_TAGS, None, "builder"))
async def test_hostile_payloads_are_refused_clearly_or_run_intact(
    node: Node, capsys: pytest.CaptureFixture[str], payload: Payload
) -> None:
    faults = payload.faults()
    verdict = worst(*faults.values())
    try:
        job_id = await enqueue(payload, node)
    except ValidationError as exc:
        assert verdict != ACCEPT, f"refused a job that every backend can store: {exc}"
        check_refusal(exc, [f for f, v in faults.items() if v != ACCEPT])
        await healthy_job_completes(node)
        return
    assert verdict != REFUSE, f"accepted a job that must be refused: {faults}"

    due = payload.scheduled is None or payload.scheduled.due()
    if due:
        job = await wait_for_status(node.backend, job_id, *SETTLED, timeout=15)
        assert job.status is JobStatus.COMPLETE, (job.status, job.errors)
        seen_data, seen_metadata = node.plan.seen[job_id]
        assert same(seen_data, payload.data.build()), "execute got other data"
        assert same(seen_metadata, payload.metadata.build()), "execute got other metadata"
    else:
        job = await node.backend.get_job(job_id)
        assert job.status is JobStatus.SCHEDULED
    assert same(job.data, payload.data.build()) and same(job.metadata, payload.metadata.build())
    assert job.tags == payload.tags.build()
    if payload.scheduled is not None:
        assert job.scheduled_at == payload.scheduled.build(), "scheduled_at came back different"

    async with dashboard(node.backend) as web:
        await check_pages(web, job_id)
    if node.url is not None:
        await check_cli(node.url, capsys, job_id)
    await healthy_job_completes(node)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
async def test_typed_float_data_refuses_nan_and_infinity(node: Node, value: float) -> None:
    with pytest.raises(ValidationError, match=FIELD_NAMES["data"]):
        await FloatEcho.builder().with_data(value).enqueue_to_backend(node.backend)
    job_id = await FloatEcho.builder().with_data(1e308).enqueue_to_backend(node.backend)
    job = await wait_for_status(node.backend, job_id, *SETTLED)
    assert job.status is JobStatus.COMPLETE and node.plan.seen[job_id] == (1e308, None)
    async with dashboard(node.backend) as web:
        await check_pages(web, job_id)


async def test_the_payload_limit_holds_on_every_path_and_counts_tags(node: Node) -> None:
    huge_tag = ["t" * (2 * 1024 * 1024)]
    with pytest.raises(PayloadTooLarge):
        await Echo.builder().with_data(0).with_tags(huge_tag).enqueue_to_backend(node.backend)
    with pytest.raises(PayloadTooLarge):
        await node.backend.enqueue(EnqueuableJob(Echo.name, 0, tags=tuple(huge_tag)))
    with pytest.raises(PayloadTooLarge):
        await node.backend.enqueue(EnqueuableJob(Echo.name, "x" * (2 * 1024 * 1024)))
    assert await node.backend.query(Where.everything().node) == [], "a refused job was stored"
    await healthy_job_completes(node)


async def test_update_job_refuses_what_the_builder_refuses(node: Node) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    job_id = await Echo.builder().with_data(0).schedule_at(later).enqueue_to_backend(node.backend)
    for change in ({"priority": -1}, {"max_attempts": 0}):
        job = await node.backend.get_job(job_id)
        for name, value in change.items():
            setattr(job, name, value)
        with pytest.raises((ConfigurationError, ValidationError), match=name):
            await Echo.update_job_on_backend(job, node.backend)
        with pytest.raises((ConfigurationError, ValidationError), match=name):
            await node.backend.update_job(job)
        stored = await node.backend.get_job(job_id)
        assert (stored.priority, stored.max_attempts) == (0, 1), f"{change} was stored"
    await healthy_job_completes(node)


# -- failures that are hard to record -----------------------------------------------------------

MODES: dict[str, tuple[type[Executor[Any, Any]], JobStatus, ErrorType]] = {
    "raise": (Raises, JobStatus.DISCARDED, ErrorType.EXCEPTION),
    "raise in a thread": (RaisesInThread, JobStatus.DISCARDED, ErrorType.EXCEPTION),
    "return Error": (ReturnsError, JobStatus.DISCARDED, ErrorType.USER),
    "return Cancel": (ReturnsCancel, JobStatus.CANCELLED, ErrorType.CANCELLED),
}


@settings(HOSTILE, max_examples=15)
@given(failure=failures, mode=st.sampled_from(sorted(MODES)))
@example(Failure("text", "disk \udcff full"), "raise")
@example(Failure("text", "disk \x00 full"), "raise")
@example(Failure("str_raises"), "raise")
@example(Failure("str_raises"), "raise in a thread")
@example(Failure("str_raises"), "return Error")
@example(Failure("huge"), "raise")
@example(Failure("huge_unicode"), "return Cancel")
@example(Failure("huge_cause"), "raise in a thread")
async def test_every_failure_is_recorded_readably_and_within_bounds(
    node: Node, capsys: pytest.CaptureFixture[str], failure: Failure, mode: str
) -> None:
    executor, status, error_type = MODES[mode]
    node.plan.failure = failure
    job_id = int(await executor.builder().with_data(0).enqueue_to_backend(node.backend))
    job = await wait_for_status(node.backend, job_id, *SETTLED, timeout=15)
    assert job.status is status, f"{mode} with {failure} ended {job.status}: {job.errors}"
    [error] = job.errors
    assert error.error_type is error_type
    for text in (error.details, error.traceback or "", error.name or ""):
        assert not bad_text(text), f"stored text holds NUL or a lone surrogate: {text[:200]!r}"
        assert len(text) <= TEXT_CAP, f"stored text is {len(text)} characters, uncapped"
    if failure.kind != "text":
        assert error.details.strip(), "an error without details"
    if failure.kind == "str_raises":
        assert "UnprintableError" in f"{error.name} {error.details}"
    clean = failure.clean_text()
    if clean and clean.strip():
        assert clean.strip() in error.details

    async with dashboard(node.backend) as web:
        await check_pages(web, job_id)
    if node.url is not None:
        await check_cli(node.url, capsys, job_id)
    await healthy_job_completes(node)


# -- hostile requests ---------------------------------------------------------------------------


def raw_query(name: str, value: str) -> str:
    """``name=value`` percent-encoded as a client would send it, lone surrogates included
    (as the invalid UTF-8 bytes they become)."""
    return f"{name}={quote(value.encode('utf-8', 'surrogatepass'), safe='')}"


request_values = hostile_text | st.sampled_from(
    [
        str(10**30),
        str(-(10**30)),
        "-1",
        "1e9",
        ",".join(f"t{i}" for i in range(1_500)),
        "é" * 10_000,
    ]
)


@settings(HOSTILE, max_examples=40)
@given(
    name=st.sampled_from(["executor", "status", "tag", "limit", "offset", "token"]),
    value=request_values,
)
@example("executor", "\x00")
@example("tag", ",".join(f"t{i}" for i in range(1_500)))
@example("token", "é")
@example("limit", str(10**30))
@example("status", "\udc80")
async def test_hostile_query_parameters_get_an_answer_never_a_server_error(
    node: Node, name: str, value: str
) -> None:
    async with dashboard(node.backend) as web:
        for path in ("/", "/jobs", "/api/jobs"):
            await check_page(web, f"{path}?{raw_query(name, value)}")


async def test_hostile_job_ids_and_cookies_get_an_answer_never_a_server_error(
    node: Node, capsys: pytest.CaptureFixture[str]
) -> None:
    async with dashboard(node.backend) as web:
        for job_id in (0, 2**63, 10**30):
            for path in (f"/jobs/{job_id}", f"/api/jobs/{job_id}"):
                response = await check_page(web, path)
                assert response.status_code == 404, (path, response.status_code)
        # A cookie and a bearer token that are not ASCII (sent as raw UTF-8 bytes).
        web.headers.pop("Authorization")
        for header, value in (("cookie", "rexecutor_token=é"), ("authorization", "Bearer é")):
            response = await web.get("/jobs", headers={header: value.encode()})
            assert response.status_code == 401, (header, response.status_code, response.text)
    if node.url is not None:
        for job_id in (2**63, 10**30):
            shown = await cli(node.url, capsys, "jobs", "show", str(job_id), "--json")
            assert shown.code == 1 and "not found" in shown.err, shown.err
            assert "Traceback" not in shown.err
        many_tags = [arg for i in range(1_500) for arg in ("-t", f"t{i}")]
        listed = await cli(node.url, capsys, "jobs", "list", *many_tags, "--json")
        # Either answered (nothing matches) or refused as a usage error naming the tags; never
        # "backend unavailable".
        if listed.code == 0:
            assert strict_json(listed.out) == []
        else:
            assert listed.code == 2 and re.search(r"\btags?\b", listed.err), listed.err
