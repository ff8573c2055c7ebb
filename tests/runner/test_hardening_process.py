"""Process mode (``run_in_process = True``): jobs run in warm child processes that a timeout,
a cancel or a shutdown deadline kills for real; outcomes cross back as JSON; a child that dies
by itself is an error, never a hang. Real processes and signals throughout."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pydantic
import pytest

from rexecutor import (
    ConfigurationError,
    ErrorType,
    ExecutionResult,
    Executor,
    Job,
    JobStatus,
    Rexecutor,
)
from rexecutor.backend import Backend
from rexecutor.backends import InMemoryBackend
from tests.support.waiting import eventually, wait_for_status


class Order(pydantic.BaseModel):
    action: str
    pid_file: str = ""


class InProcess(Executor[Order, None]):
    """Does what its data says, in a child process."""

    name = "in_process"
    run_in_process = True
    max_attempts = 1

    def execute(self, job: Job[Order, None]) -> ExecutionResult | None:
        order = job.data
        assert isinstance(order, Order)  # decoded through the executor's types in the child
        if order.pid_file:
            _write_pid(order.pid_file)
        match order.action:
            case "snooze":
                return ExecutionResult.Snooze(timedelta(hours=1))
            case "error":
                return ExecutionResult.Error(Quota("over \x00 quota"))
            case "raise":
                raise ValueError("broke \ud800 in the child")
            case "cancel":
                return ExecutionResult.Cancel("no longer wanted")
            case "exit":
                os._exit(3)
            case "spin" | "forever":
                while True:
                    pass
            case "weird":
                return 42  # type: ignore[return-value]
        return None

    def timeout(self, job: Job[Order, None]) -> timedelta | None:
        return timedelta(milliseconds=500) if job.data.action == "spin" else None


class AsyncInProcess(Executor[str, None]):
    name = "async_in_process"
    run_in_process = True

    async def execute(self, job: Job[str, None]) -> ExecutionResult | None:
        _write_pid(job.data)
        return None


class Quota(Exception):
    error_type = "quota"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _enqueue(backend: Backend, action: str, pid_file: Path | None = None) -> int:
    order = Order(action=action, pid_file=str(pid_file or ""))
    return int(await InProcess.builder().with_data(order).enqueue_to_backend(backend))


def _write_pid(path: str) -> None:
    Path(path).write_text(str(os.getpid()))


def _read_pid(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def _pid(path: Path) -> int:
    await eventually(lambda: _read_pid(path) != "")
    return int(_read_pid(path))


async def test_outcomes_come_back_from_the_child(backend: Backend, tmp_path: Path) -> None:
    async with Rexecutor(backend).with_executor(InProcess):
        done = await _enqueue(backend, "done", tmp_path / "pid")
        await wait_for_status(backend, done, JobStatus.COMPLETE, timeout=30)
        assert await _pid(tmp_path / "pid") != os.getpid()

        before = datetime.now(UTC)
        snoozed = await wait_for_status(
            backend, await _enqueue(backend, "snooze"), JobStatus.SCHEDULED
        )
        assert snoozed.attempt == 0 and snoozed.scheduled_at > before + timedelta(minutes=59)

        user = await wait_for_status(backend, await _enqueue(backend, "error"), JobStatus.DISCARDED)
        assert (user.errors[0].error_type, user.errors[0].name, user.errors[0].details) == (
            ErrorType.USER,
            "quota",
            "over \\x00 quota",
        )

        raised = await wait_for_status(
            backend, await _enqueue(backend, "raise"), JobStatus.DISCARDED
        )
        [error] = raised.errors
        assert (error.error_type, error.name) == (ErrorType.EXCEPTION, "ValueError")
        assert error.details == "broke \ufffd in the child"
        assert error.traceback is not None and "in execute" in error.traceback

        cancelled = await wait_for_status(
            backend, await _enqueue(backend, "cancel"), JobStatus.CANCELLED
        )
        assert cancelled.errors[0].details == "no longer wanted"

        weird = await wait_for_status(
            backend, await _enqueue(backend, "weird"), JobStatus.DISCARDED
        )
        assert weird.errors[0].details.startswith("execute returned 42;")


async def test_a_cpu_loop_past_its_timeout_is_killed_and_recorded_as_timeout(
    backend: Backend, tmp_path: Path
) -> None:
    async with Rexecutor(backend).with_executor(InProcess):
        job_id = await _enqueue(backend, "spin", tmp_path / "pid")
        pid = await _pid(tmp_path / "pid")
        job = await wait_for_status(backend, job_id, JobStatus.DISCARDED, timeout=30)
        assert not _alive(pid)
        [error] = job.errors
        assert error.error_type is ErrorType.TIMEOUT
        healthy = await _enqueue(backend, "done")
        await wait_for_status(backend, healthy, JobStatus.COMPLETE, timeout=30)


async def test_a_cancel_kills_the_child(tmp_path: Path) -> None:
    backend = InMemoryBackend()
    async with Rexecutor(backend, cancel_check_interval=0.05).with_executor(InProcess) as rex:
        job_id = await _enqueue(backend, "forever", tmp_path / "pid")
        pid = await _pid(tmp_path / "pid")
        assert await InProcess.cancel_job_on_backend(job_id, "stop it", backend)
        await eventually(lambda: not _alive(pid))
        await eventually(lambda: rex.running_jobs == 0)
    job = await backend.get_job(job_id)
    assert job.status is JobStatus.CANCELLED
    assert [e.error_type for e in job.errors] == [ErrorType.CANCELLED]


def test_a_class_a_child_cannot_import_is_refused_at_registration() -> None:
    class Local(InProcess):
        name = "in_process_local"

    with pytest.raises(ConfigurationError, match="define the class at the top level"):
        Rexecutor(InMemoryBackend()).with_executor(Local)

    class Scripted(InProcess):
        name = "in_process_script"

    Scripted.__module__ = "__main__"  # as if defined in the script being run
    with pytest.raises(ConfigurationError, match="define it in a module the script imports"):
        Rexecutor(InMemoryBackend()).with_executor(Scripted)


@pytest.mark.parametrize("how", ["exit", "sigkill"])
async def test_a_child_that_dies_is_an_error_not_a_hang(tmp_path: Path, how: str) -> None:
    backend = InMemoryBackend()
    async with Rexecutor(backend).with_executor(InProcess):
        action = "exit" if how == "exit" else "forever"
        job_id = await _enqueue(backend, action, tmp_path / "pid")
        if how == "sigkill":
            os.kill(await _pid(tmp_path / "pid"), signal.SIGKILL)
        job = await wait_for_status(backend, job_id, JobStatus.DISCARDED, timeout=30)
        [error] = job.errors
        assert error.error_type is ErrorType.EXCEPTION
        assert error.name == "ChildProcessDied"
        expected = "exited with code 3" if how == "exit" else "was killed by signal 9"
        assert expected in error.details
        healthy = await _enqueue(backend, "done")
        await wait_for_status(backend, healthy, JobStatus.COMPLETE, timeout=30)


async def test_children_are_warm_and_reused_and_async_execute_works(tmp_path: Path) -> None:
    backend = InMemoryBackend()
    async with Rexecutor(backend).with_executor(AsyncInProcess):
        pids = []
        for n in range(3):
            path = tmp_path / f"pid{n}"
            job_id = await AsyncInProcess.builder().with_data(str(path)).enqueue_to_backend(backend)
            await wait_for_status(backend, job_id, JobStatus.COMPLETE, timeout=30)
            pids.append(await _pid(path))
    assert len(set(pids)) == 1 and pids[0] != os.getpid()
    await eventually(lambda: not _alive(pids[0]))  # closed with the node


async def test_a_shutdown_deadline_kills_the_child_and_hands_the_job_back(
    tmp_path: Path,
) -> None:
    backend = InMemoryBackend()
    rex = Rexecutor(backend).with_executor(InProcess)
    await rex.start()
    job_id = await _enqueue(backend, "forever", tmp_path / "pid")
    pid = await _pid(tmp_path / "pid")
    await rex.graceful_shutdown(timeout=0.1)
    assert not _alive(pid)
    job = await backend.get_job(job_id)
    assert job.status is JobStatus.SCHEDULED
    assert job.errors[-1].error_type is ErrorType.SHUTDOWN


def test_run_in_process_must_be_a_bool() -> None:
    with pytest.raises(ConfigurationError, match="run_in_process must be True or False"):

        class Bad(Executor[None, None]):
            name = "bad_flag"
            run_in_process = "yes"  # type: ignore[assignment]

            async def execute(self, job: Job[None, None]) -> None:
                return None


def test_an_instance_of_a_process_executor_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="register its class"):
        Rexecutor(InMemoryBackend()).with_executor(InProcess())
