"""Hostile ids and query values: a clear error or an empty answer, never a driver error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rexecutor import JobNotFound, ValidationError, Where
from rexecutor.backend import Backend

from ._helpers import (
    CANCEL,
    enqueue,
    find,
    mark_cancelled,
    rerun,
)

HUGE_IDS = [2**63, -(2**63) - 1, 10**30]


@pytest.mark.parametrize("job_id", HUGE_IDS, ids=["2^63", "-2^63-1", "10^30"])
async def test_a_huge_job_id_is_not_found(backend: Backend, job_id: int) -> None:
    with pytest.raises(JobNotFound):
        await backend.get_job(job_id)
    with pytest.raises(JobNotFound):
        await mark_cancelled(backend, job_id, None, CANCEL)
    with pytest.raises(JobNotFound):
        await rerun(backend, job_id)
    stored = await backend.get_job(await enqueue(backend))
    assert await find(backend, Where.id_in([job_id])) == []
    assert await find(backend, Where.id_in([job_id, int(stored.id)])) == [stored.id]
    stored.id = job_id  # type: ignore[assignment]
    with pytest.raises(JobNotFound):
        await backend.update_job(stored)


async def test_filters_with_thousands_of_tags_and_ids_work(backend: Backend) -> None:
    tags = [f"tag-{i}" for i in range(5_000)]
    everything = await enqueue(backend, tags=tuple(tags))
    some = await enqueue(backend, tags=("tag-1", "tag-4999"))
    none = await enqueue(backend, tags=("other",))
    assert await find(backend, Where.tagged_by_all_of(tags)) == [everything]
    assert await find(backend, Where.tagged_by_one_of(tags)) == [everything, some]
    assert await find(backend, ~Where.tagged_by_one_of(tags)) == [none]
    ids = [*range(10_000, 15_000), int(some)]
    assert await find(backend, Where.id_in(ids)) == [some]


@pytest.mark.parametrize("text", ["a\x00b", "\ud800"], ids=["nul", "surrogate"])
def test_query_values_that_no_job_can_hold_are_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="executor"):
        Where.executor_equals(text)
    with pytest.raises(ValidationError, match=r"tag\[1\]"):
        Where.tagged_by_all_of(["fine", text])
    with pytest.raises(ValidationError, match="tag"):
        Where.tagged_by_one_of([text])
    with pytest.raises(ValidationError, match="query data"):
        Where.data_equals({"k": text})
    with pytest.raises(ValidationError, match="query metadata"):
        Where.metadata_equals([text])


def test_nan_is_refused_in_a_query_value() -> None:
    with pytest.raises(ValidationError, match="NaN"):
        Where.data_equals(float("nan"))


def test_the_backends_import_from_rexecutor_without_loading_psycopg() -> None:
    script = (
        "import sys, asyncio, tempfile, os\n"
        "import rexecutor\n"
        "from rexecutor import SqliteBackend, InMemoryBackend\n"
        "assert 'PostgresBackend' in rexecutor.__all__\n"
        "async def main():\n"
        "    path = os.path.join(tempfile.mkdtemp(), 'jobs.db')\n"
        "    async with SqliteBackend(path) as backend:\n"
        "        await backend.enqueue(rexecutor.backend.EnqueuableJob('ex', {}))\n"
        "        assert len(await backend.query(rexecutor.Where.everything().node)) == 1\n"
        "asyncio.run(main())\n"
        "assert InMemoryBackend is rexecutor.backends.memory.InMemoryBackend\n"
        "assert not any(m.split('.')[0] in ('psycopg', 'psycopg_pool') for m in sys.modules), "
        "'psycopg was imported'\n"
        "from rexecutor import PostgresBackend\n"
        "assert PostgresBackend.__module__ == 'rexecutor.backends.postgres'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_bad_ids_and_statuses_in_a_query_are_refused_clearly() -> None:
    with pytest.raises(ValidationError, match="job id"):
        Where.id_in(["seven"])
    with pytest.raises(ValidationError, match="job id"):
        Where.id_equals(None)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not a job status"):
        Where.status_equals("done")  # type: ignore[arg-type]
