"""Process mode: jobs of ``run_in_process`` executors run in child processes that can be killed.

A thread cannot be stopped; a process can. Each such executor has a pool of warm children
(started with ``python -c``, never forked from the running event loop) reused from job to job.
Only JSON crosses: the parent sends the executor's import path and the stored job, the child
imports the class, decodes the job through the executor's types, runs ``execute`` (async or
plain) and answers with the outcome. A timeout or a stop kills the child (SIGTERM, then SIGKILL
after ``KILL_GRACE`` seconds), and the attempt's slot is held until the child is gone. A child
that dies by itself is an error outcome, never a hang.

The protocol is one JSON document per line. On the child's stdin: first ``{"sys_path",
"max_error_bytes", "parent"}``, then one request per job, ``{"executor": [module, qualname],
"job": {...}}``. On its stdout, per request: ``{"started": true}`` when ``execute`` is called
(the time limit counts from then), any number of ``{"progress": [percent, message]}`` (the
job's ``report_progress`` calls, handed to the node's reporter of the attempt), then the reply,
``{"outcome": "done" | "error" | "snooze" | "cancel" | "returned" | "raised", ...}``; a failure
before ``execute`` is a reply with no ``started`` before it. The child's own ``print`` output
goes to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rexecutor import _text, progress
from rexecutor._payload import check_result
from rexecutor.errors import ConfigurationError, ValidationError
from rexecutor.job import Job, JobError, JobId, JobStatus
from rexecutor.result import ExecutionResult

#: Seconds a child has to exit after SIGTERM before it is killed with SIGKILL.
KILL_GRACE = 1.0

#: What a time-limited call returns when its limit ran out.
TIMED_OUT: Any = object()

_BOOT = "from rexecutor._process import child_main; child_main()"
_STARTED = {"started": True}


class RemoteException(Exception):
    """An exception raised in a child process, as the child described it.

    Also stands for the error object of an ``ExecutionResult.Error`` returned there:
    ``error_type`` is the name the child gave. ``classes`` are the :func:`class_path` of the
    exception's classes, most specific first (empty when it was no exception), which the
    executor's retry policy matches, since the exception itself stayed in the child.
    """

    def __init__(
        self,
        type_name: str,
        message: str,
        traceback_text: str | None = None,
        classes: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text
        self.classes = classes

    @property
    def error_type(self) -> str:
        """The error's name (its class, or its ``error_type`` in the child)."""
        return self.type_name

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class ReturnedValue:
    """A value ``execute`` returned in a child that is not an ``ExecutionResult``: its repr."""

    text: str


@dataclass(frozen=True, slots=True)
class EncodedResult:
    """The result of a child's ``ExecutionResult.Done(result)``, dumped through the executor's
    ``result_type`` and checked by the payload rule there: its canonical JSON text (the
    parent checks its size against the backend's limit)."""

    text: str


@dataclass(frozen=True, slots=True)
class RefusedResult:
    """A child's ``ExecutionResult.Done(result)`` whose result could not be encoded there:
    ``message`` says why; ``unusable_type`` when the executor's ``result_type`` is unusable
    (a ``ConfigurationError``), not the result."""

    message: str
    unusable_type: bool = False


async def within(call: Any, seconds: float | None) -> Any:
    """Await ``call``, or give up after ``seconds`` and return ``TIMED_OUT``."""
    if seconds is None:
        return await call
    try:
        async with asyncio.timeout(seconds) as deadline:
            return await call
    except TimeoutError:
        if deadline.expired():
            return TIMED_OUT
        raise


def class_path(cls: type) -> str:
    """``module.qualname`` of ``cls``: the same in the node and in its child processes."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _class_paths(obj: object) -> list[str]:
    return [class_path(k) for k in type(obj).__mro__] if isinstance(obj, BaseException) else []


def import_path(cls: type) -> tuple[str, str]:
    """Where a child process finds ``cls``: ``(module, qualname)``.

    Raises ``ConfigurationError`` when the class cannot be imported by that path, e.g. when it
    is defined inside a function, or in the script being run (``__main__``): a child would
    have to run that script again, with whatever it does at the top level.
    """
    module, qualname = cls.__module__, cls.__qualname__
    if module == "__main__":
        raise ConfigurationError(
            f"executor {qualname!r} runs in a process (run_in_process = True) and is defined "
            "in the script being run (__main__); a child process imports executors by module "
            "path, so define it in a module the script imports"
        )
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if "<locals>" in qualname or found is not cls:
        raise ConfigurationError(
            f"executor {qualname!r} runs in a process (run_in_process = True), so a child "
            f"process must import it as {module}.{qualname}, which does not find it; define "
            "the class at the top level of a module"
        )
    return module, qualname


def job_to_json(job: Job[Any, Any]) -> dict[str, Any]:
    """A stored job (JSON data) as one JSON object."""

    def at(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "id": int(job.id),
        "status": str(job.status),
        "executor": job.executor,
        "data": job.data,
        "metadata": job.metadata,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "priority": job.priority,
        "tags": list(job.tags),
        "errors": [error.to_json() for error in job.errors],
        "inserted_at": at(job.inserted_at),
        "scheduled_at": at(job.scheduled_at),
        "attempted_at": at(job.attempted_at),
        "completed_at": at(job.completed_at),
        "cancelled_at": at(job.cancelled_at),
        "discarded_at": at(job.discarded_at),
        "attempted_by": job.attempted_by,
    }


def job_from_json(value: dict[str, Any]) -> Job[Any, Any]:
    """The job :func:`job_to_json` encoded."""

    def at(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text)

    inserted, scheduled = at(value["inserted_at"]), at(value["scheduled_at"])
    assert inserted is not None and scheduled is not None
    return Job(
        id=JobId(value["id"]),
        status=JobStatus(value["status"]),
        executor=value["executor"],
        data=value["data"],
        metadata=value["metadata"],
        attempt=value["attempt"],
        max_attempts=value["max_attempts"],
        priority=value["priority"],
        tags=list(value["tags"]),
        errors=[JobError.from_json(error) for error in value["errors"]],
        inserted_at=inserted,
        scheduled_at=scheduled,
        attempted_at=at(value["attempted_at"]),
        completed_at=at(value["completed_at"]),
        cancelled_at=at(value["cancelled_at"]),
        discarded_at=at(value["discarded_at"]),
        attempted_by=value["attempted_by"],
    )


def _dumps(value: Any) -> bytes:
    # ASCII only: a lone surrogate in a text travels as an escape, and a line stays a line.
    return json.dumps(value, ensure_ascii=True).encode("ascii") + b"\n"


# -- the parent side ---------------------------------------------------------------------------


class _Child:
    """One child process and its pipes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self._stdin = proc.stdin
        self._stdout = proc.stdout

    async def send(self, message: Any) -> None:
        self._stdin.write(_dumps(message))
        await self._stdin.drain()

    async def receive(self) -> Any:
        """The next reply, or None when the child closed its output (it died)."""
        line = await self._stdout.readline()
        return json.loads(line) if line else None

    async def kill(self) -> None:
        """Stop the child for good: SIGTERM, then SIGKILL after ``KILL_GRACE`` seconds."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), KILL_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()

    async def close(self) -> None:
        """Let an idle child end by itself (end of its input), killing it if it lingers."""
        with contextlib.suppress(Exception):
            self._stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), KILL_GRACE)
        except TimeoutError:
            await self.kill()


class ProcessPool:
    """Warm child processes for one executor, at most ``size`` at once."""

    def __init__(self, size: int, max_error_bytes: int = _text.DEFAULT_MAX_ERROR_BYTES) -> None:
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Child] = []
        self._max_error_bytes = max_error_bytes
        self._closed = False
        #: Pids of the children alive now (busy or idle).
        self.pids: set[int] = set()

    async def run(self, executor: Any, raw: Job[Any, Any], seconds: float | None) -> Any:
        """Run one attempt of ``raw`` in a child; returns what the runner makes an outcome of.

        The time limit counts from when the job is handed to a child. ``TIMED_OUT`` when it
        ran out (the child is killed first); a cancel of the caller kills the child too.
        """
        request = {"executor": list(import_path(type(executor))), "job": job_to_json(raw)}
        async with self._slots:
            child = self._idle.pop() if self._idle else await self._spawn()
            healthy = False
            try:
                await child.send(request)
                # The child says when execute starts: importing the executor's module and
                # decoding the job do not count against the job's time limit.
                reply = await child.receive()
                if reply == _STARTED:
                    reply = await within(_reply_after_progress(child), seconds)
                if reply is TIMED_OUT:
                    return TIMED_OUT
                if reply is None:
                    return RemoteException("ChildProcessDied", await self._death(child))
                outcome = _outcome(reply)
                healthy = True
                return outcome
            finally:
                if healthy and not self._closed:
                    self._idle.append(child)
                else:
                    await asyncio.shield(self._end(child, kill=not healthy))

    async def _spawn(self) -> _Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _BOOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            # A terminal's Ctrl-C goes to the node, which decides what happens to its children.
            start_new_session=True,
            # The boot line imports rexecutor from wherever this process found it.
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p or os.curdir for p in sys.path)},
            # Replies carry capped texts, escaped to ASCII (up to 12 bytes a character).
            limit=16 * self._max_error_bytes + (1 << 20),
        )
        child = _Child(proc)
        self.pids.add(proc.pid)
        await child.send(
            {
                "sys_path": sys.path,
                "max_error_bytes": self._max_error_bytes,
                "parent": os.getpid(),
            }
        )
        return child

    async def _death(self, child: _Child) -> str:
        code = await child.proc.wait()
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return f"the job's process (pid {child.proc.pid}) {how} before reporting an outcome"

    async def _end(self, child: _Child, *, kill: bool) -> None:
        try:
            await (child.kill() if kill else child.close())
        finally:
            self.pids.discard(child.proc.pid)

    async def close(self) -> None:
        """End the idle children; busy ones end when their job does."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._end(child, kill=False) for child in idle))


async def _reply_after_progress(child: _Child) -> Any:
    """The child's reply to the job, its progress reports before it handed to the attempt's
    reporter (see :mod:`rexecutor.progress`)."""
    sink = progress.current()
    while True:
        reply = await child.receive()
        if not (isinstance(reply, dict) and "progress" in reply):
            return reply
        try:
            percent, message = reply["progress"]
            checked = progress.check_progress(percent, message)
        except (TypeError, ValueError, ValidationError):
            continue  # checked in the child already: a garbled report is only a report
        if sink is not None:
            sink.offer(*checked)


def _outcome(reply: dict[str, Any]) -> Any:
    """What the runner makes of a child's reply."""
    kind = reply.get("outcome")
    if kind == "done":
        if "result" in reply:
            return ExecutionResult.Done(EncodedResult(str(reply["result"])))
        if "refused" in reply:
            unusable = reply.get("refused_type") == ConfigurationError.__name__
            return ExecutionResult.Done(RefusedResult(str(reply["refused"]), unusable))
        return ExecutionResult.Done()
    classes = tuple(str(name) for name in reply.get("classes", ()))
    if kind == "error":
        error = RemoteException(str(reply["name"]), str(reply["message"]), classes=classes)
        return ExecutionResult.Error(error)
    if kind == "snooze":
        return ExecutionResult.Snooze(timedelta(seconds=float(reply["seconds"])))
    if kind == "cancel":
        return ExecutionResult.Cancel(str(reply["reason"]))
    if kind == "returned":
        return ReturnedValue(str(reply["repr"]))
    if kind == "raised":
        return RemoteException(
            str(reply["type"]), str(reply["message"]), reply.get("traceback"), classes
        )
    return RemoteException("ProtocolError", f"the job's process sent an unknown reply {kind!r}")


# -- the child side ----------------------------------------------------------------------------


def child_main() -> None:
    """The child process: answer requests from the parent until its input ends."""
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(1), "wb")
    # The job's own output must not mix with the replies.
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the child's stdin for its whole life
    init = json.loads(requests.readline())
    _watch_parent(int(init["parent"]))
    sys.path[:] = init["sys_path"]
    max_bytes = int(init["max_error_bytes"])
    for line in requests:
        _send(replies, _perform(json.loads(line), replies, max_bytes))


_send_lock = threading.Lock()


def _send(replies: Any, message: Any) -> None:
    # Whole lines only: the job may report progress from a thread of its own.
    line = _dumps(message)
    with _send_lock:
        replies.write(line)
        replies.flush()


class _PipeSink:
    """The child's side of ``report_progress``: each report goes to the node as a line."""

    def __init__(self, replies: Any) -> None:
        self._replies = replies

    def offer(self, percent: float, message: str | None) -> None:
        _send(self._replies, {"progress": [percent, message]})


def _watch_parent(parent: int) -> None:
    """Exit when the node is gone, even in the middle of a job that never returns."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="rexecutor-parent-watch", daemon=True).start()


def _perform(request: dict[str, Any], replies: Any, max_bytes: int) -> dict[str, Any]:
    def clean(text: str) -> str:
        return _text.clean(text, max_bytes)

    try:
        module, qualname = request["executor"]
        cls: Any = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        job = cls.decode_job(job_from_json(request["job"]))
        executor = cls()
        _send(replies, _STARTED)
        with progress.installed(_PipeSink(replies)):
            result = executor.execute(job)
            if inspect.iscoroutine(result):
                result = asyncio.run(result)
        return _reply(result, clean, cls)
    except BaseException as exc:
        return {
            "outcome": "raised",
            "type": _text.type_name(exc),
            "message": clean(_text.describe(exc) or _text.type_name(exc)),
            "traceback": clean(_text.format_traceback(exc)),
            "classes": _class_paths(exc),
        }


def _reply(result: Any, clean: Any, cls: Any) -> dict[str, Any]:
    if result is None or isinstance(result, ExecutionResult.Done):
        if result is None or result.result is None:
            return {"outcome": "done"}
        # Only JSON crosses: the result is dumped and checked here, its size in the parent.
        try:
            text = check_result(cls.encode_result(result.result), cls.name, None)
        except Exception as exc:
            return {
                "outcome": "done",
                "refused": clean(_text.describe(exc)),
                "refused_type": _text.type_name(exc),
            }
        return {"outcome": "done", "result": text}
    if isinstance(result, ExecutionResult.Error):
        err = result.error
        name = getattr(err, "error_type", None) or _text.type_name(err)
        return {
            "outcome": "error",
            "name": clean(_text.describe(name)),
            "message": clean(_text.describe(err)),
            "classes": _class_paths(err),
        }
    if isinstance(result, ExecutionResult.Snooze):
        return {"outcome": "snooze", "seconds": result.delay.total_seconds()}
    if isinstance(result, ExecutionResult.Cancel):
        return {"outcome": "cancel", "reason": clean(_text.describe(result.reason))}
    return {"outcome": "returned", "repr": clean(_text.safe_repr(result))}
