"""rexecutor.sync: the async API, called from plain threads, on every backend."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rexecutor import (
    ExecutionResult,
    Executor,
    Job,
    JobNotFound,
    JobStatus,
    Rexecutor,
    UniquenessCriteria,
    Where,
    sync,
)
from rexecutor.backend import Backend
from rexecutor.backends.postgres import PostgresBackend
from tests.postgres._util import listening
from tests.support.waiting import wait_for_status


class Email(Executor[str, dict[str, int]]):
    name = "email"

    async def execute(self, job: Job[str, dict[str, int]]) -> ExecutionResult | None:
        return None


@pytest.fixture(autouse=True)
def _close_facade() -> Iterator[None]:
    yield
    sync.close()


def in_thread(fn: object) -> object:
    """Run ``fn`` in a plain thread, as a WSGI worker or a script would call."""
    return asyncio.to_thread(fn)  # type: ignore[arg-type]


async def test_enqueue_query_update_cancel_rerun_from_a_thread(backend: Backend) -> None:
    def caller() -> None:
        job_id = sync.enqueue(Email.builder().with_data("a@example.com"), backend)
        job = sync.get_job(Email, job_id, backend)
        assert (job.data, job.status) == ("a@example.com", JobStatus.SCHEDULED)
        job.metadata = {"tries": 1}
        sync.update_job(Email, job, backend)
        assert sync.get_job(Email, job_id, backend).metadata == {"tries": 1}
        unique = UniquenessCriteria.by_key("once")
        first = sync.enqueue_with_result(Email.builder().with_data("b").unique(unique), backend)
        again = sync.enqueue_with_result(Email.builder().with_data("b").unique(unique), backend)
        assert (again.job_id, again.duplicate, first.duplicate) == (first.job_id, True, False)
        many = sync.enqueue_many([Email.builder().with_data(f"{n}") for n in range(3)], backend)
        assert len({r.job_id for r in many}) == 3
        found = sync.query_jobs(Email, Where.data_equals("1"), backend)
        assert [j.id for j in found] == [many[1].job_id]
        assert len(sync.query_jobs(Email, None, backend)) == 5
        assert sync.cancel_job(job_id, "changed my mind", backend) is True
        assert sync.cancel_job(job_id, "again", backend) is False
        assert sync.get_job(Email, job_id, backend).status is JobStatus.CANCELLED
        sync.rerun_job(job_id, backend)
        assert sync.get_job(Email, job_id, backend).status is JobStatus.SCHEDULED
        counts = sync.call(lambda b: b.count_jobs(), backend)
        assert counts == {("email", JobStatus.SCHEDULED): 5}
        with pytest.raises(JobNotFound):
            sync.get_job(Email, 999_999, backend)

    await in_thread(caller)


async def test_the_global_backend_is_the_default(rexecutor_backend: Backend) -> None:
    def caller() -> int:
        return int(sync.enqueue(Email.builder().with_data("g")))

    job_id = await in_thread(caller)
    assert (await rexecutor_backend.get_job(job_id)).data == "g"  # type: ignore[arg-type]


async def test_many_threads_at_once(backend: Backend) -> None:
    ids: list[int] = []
    lock = threading.Lock()

    def caller(n: int) -> None:
        for i in range(10):
            job_id = sync.enqueue(Email.builder().with_data(f"{n}-{i}"), backend)
            with lock:
                ids.append(int(job_id))

    await asyncio.gather(*(asyncio.to_thread(caller, n) for n in range(6)))
    assert len(set(ids)) == 60
    assert len(await Email.query_jobs_on_backend(None, backend)) == 60


async def test_a_running_node_is_woken_by_a_sync_enqueue(backend: Backend) -> None:
    async with Rexecutor(backend, poll_interval=60).with_executor(Email):
        if isinstance(backend, PostgresBackend):
            await listening(backend)  # the wake-up arrives through LISTEN/NOTIFY

        def caller() -> int:
            return int(sync.enqueue(Email.builder().with_data("wake"), backend))

        job_id = await asyncio.to_thread(caller)
        await wait_for_status(backend, job_id, JobStatus.COMPLETE, timeout=5)


async def test_a_connection_is_refused_by_backends_that_cannot_join_one(
    rexecutor_backend: Backend,
) -> None:
    with pytest.raises(Exception, match="cannot enqueue inside a caller's transaction"):
        sync.enqueue(Email.builder().with_data("x"), connection=object())


def test_the_facade_thread_cannot_wait_on_itself(rexecutor_backend: Backend) -> None:
    async def inner(b: Backend) -> None:
        sync.enqueue(Email.builder().with_data("x"), b)

    with pytest.raises(RuntimeError, match="its own event loop thread"):
        sync.call(inner)


def test_close_then_use_again(rexecutor_backend: Backend) -> None:
    first = sync.enqueue(Email.builder().with_data("1"))
    sync.close()
    sync.close()
    second = sync.enqueue(Email.builder().with_data("2"))
    assert int(second) == int(first) + 1


def test_a_plain_script_on_sqlite(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        from rexecutor import Executor, Job, JobStatus, sync
        from rexecutor.backends import SqliteBackend


        class Report(Executor[int, None]):
            name = "report"

            async def execute(self, job: Job[int, None]) -> None:
                return None


        def main() -> None:
            backend = SqliteBackend("jobs.db")
            job_id = sync.enqueue(Report.builder().with_data(7), backend)
            job = sync.get_job(Report, job_id, backend)
            assert job.status is JobStatus.SCHEDULED
            print("enqueued", int(job_id), job.data)


        main()
        """
    )
    (tmp_path / "script.py").write_text(script)
    for expected in ("enqueued 1 7", "enqueued 2 7"):
        out = subprocess.run(
            [sys.executable, "script.py"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == expected


def test_a_collected_backend_is_forgotten_without_waiting_for_the_facades_lock() -> None:
    # The finalizer of a collected backend runs wherever the garbage collector runs: CI
    # caught it on the facade's own thread while that thread was starting, with the thread
    # starting it holding the lock and waiting for it. Reporting a twin must never wait.
    facade = sync._Facade()
    url = "postgresql://postgres@127.0.0.1:5432/postgres"  # never connected
    original = PostgresBackend(url)
    twin = facade._twin(original)
    assert twin is not original
    with facade._lock:
        reporter = threading.Thread(target=facade._forget, args=(id(original), twin))
        reporter.start()
        reporter.join(timeout=5)
        assert not reporter.is_alive(), "the finalizer waited for the facade's lock"
    del original
    facade._twin(PostgresBackend(url))  # drops the forgotten twin
    assert twin not in [entry[1] for entry in facade._twins.values()]
