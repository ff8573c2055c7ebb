"""SQLite only: commits by other connections wake local subscribers through the watcher."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from rexecutor._notify import Subscription
from rexecutor.backend import EnqueuableJob, FailureRecord, Lease, NodeInfo
from rexecutor.backends.sqlite import SqliteBackend
from rexecutor.job import ErrorType
from tests.backends._helpers import mark_retryable

POLL = 0.02


async def _waited(sub: Subscription, timeout: float) -> float:
    started = time.monotonic()
    await sub.wait(timeout)
    return time.monotonic() - started


async def test_poll_interval_is_taken_from_the_constructor(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "jobs.db", poll_interval=0.25)
    assert backend.poll_interval == 0.25
    assert SqliteBackend(tmp_path / "other.db").poll_interval == 0.05


async def test_an_enqueue_by_another_instance_wakes_a_subscriber(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path, poll_interval=POLL) as local, SqliteBackend(path) as remote:
        sub = local.subscribe(["ex"])
        try:
            await sub.wait(0)  # start from a clean slate
            assert await _waited(sub, 0.3) >= 0.25, "woken although nothing happened"
            await remote.enqueue(EnqueuableJob("ex", {}))
            assert await _waited(sub, 5) < 1.0
        finally:
            sub.close()


async def test_other_kinds_of_foreign_writes_wake_too(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path, poll_interval=POLL) as local, SqliteBackend(path) as remote:
        await remote.enqueue(EnqueuableJob("ex", {}))
        [job] = await remote.claim_ready_jobs("ex", 1, "remote")
        sub = local.subscribe(["ex"])
        try:
            await sub.wait(0)
            await mark_retryable(
                remote,
                job.id,
                Lease("remote", job.attempt),
                timedelta(0),
                FailureRecord(ErrorType.EXCEPTION, "boom"),
            )
            assert await _waited(sub, 5) < 1.0
        finally:
            sub.close()


async def test_the_backends_own_writes_do_not_wake_through_the_watcher(tmp_path: Path) -> None:
    async with SqliteBackend(tmp_path / "jobs.db", poll_interval=POLL) as backend:
        sub = backend.subscribe(["ex"])
        try:
            await sub.wait(0)
            await backend.record_heartbeat(NodeInfo("n"))
            await backend.enqueue(EnqueuableJob("other", {}))
            assert await _waited(sub, 0.3) >= 0.25
        finally:
            sub.close()


async def test_the_watcher_is_idle_without_subscribers(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path, poll_interval=POLL) as local, SqliteBackend(path) as remote:
        asked = 0
        original = local._foreign_commits

        def counting() -> bool:
            nonlocal asked
            asked += 1
            return original()

        local._foreign_commits = counting  # type: ignore[method-assign]
        await remote.enqueue(EnqueuableJob("ex", {}))
        await asyncio.sleep(0.2)
        assert asked == 0
        sub = local.subscribe(None)
        try:
            await remote.enqueue(EnqueuableJob("ex", {}))
            assert await _waited(sub, 5) < 1.0
            assert asked >= 1
        finally:
            sub.close()


async def test_a_commit_right_after_subscribing_is_never_missed(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteBackend(path) as remote:
        for _ in range(10):
            async with SqliteBackend(path, poll_interval=POLL) as local:
                sub = local.subscribe(["ex"])
                try:
                    await remote.enqueue(EnqueuableJob("ex", {}))  # before the watcher's 1st poll
                    assert await _waited(sub, 5) < 1.0
                finally:
                    sub.close()
