"""The partitioned layout: converting a populated table keeps every job, finished jobs live in
day partitions, and pruning drops whole old days (read from the catalog) and keeps recent
ones. Each test has a schema of its own; together they take about 3 s."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from rexecutor.backend import PruneSpec
from rexecutor.backends.postgres import PostgresBackend
from rexecutor.errors import BackendError, ConfigurationError
from rexecutor.job import JobStatus
from rexecutor.lifecycle import Fence, Transition
from rexecutor.query import IdIn
from rexecutor.testing import FakeClock

from ..backends._helpers import claim_one, enqueue, finished, rerun

pytestmark = pytest.mark.postgres

Admin = psycopg.AsyncConnection[Any]
START = datetime(2031, 3, 10, 12, 0, tzinfo=UTC)


async def _children(admin: Admin, schema: str) -> dict[str, int]:
    """Each partition of the schema's jobs table and how many jobs it holds, from the
    catalog (pg_inherits) and the partitions themselves."""
    cur = await admin.execute(
        "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s)",
        [f"{schema}.rexecutor_jobs"],
    )
    found = {}
    for (name,) in await cur.fetchall():
        count = await admin.execute(
            psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(schema, name))
        )
        row = await count.fetchone()
        assert row is not None
        found[name] = int(row[0])
    return found


async def test_converting_a_populated_table_keeps_every_job(
    postgres_url: str, new_schema: Callable[[str], str], admin: Admin
) -> None:
    schema = new_schema("part")
    with FakeClock(START) as clock:
        async with PostgresBackend(postgres_url, schema=schema) as plain:
            done = [await finished(plain, JobStatus.COMPLETE) for _ in range(3)]
            clock.set(START - timedelta(days=2))
            old = await finished(plain, JobStatus.COMPLETE)
            clock.set(START)
            live = [await enqueue(plain, data={"n": n}) for n in range(4)]
            before = {job.id: job for job in await plain.query(IdIn((*done, old, *live)))}
        async with PostgresBackend(postgres_url, schema=schema, layout="partitioned") as part:
            after = {job.id: job for job in await part.query(IdIn(tuple(before)))}
            assert after == before
            fresh = await enqueue(part)
            assert fresh > max(before)  # the id sequence goes on where it was
        children = await _children(admin, schema)
        assert children["rexecutor_jobs_live"] == len(live) + 1
        assert children["rexecutor_jobs_f20310310"] == len(done)
        assert children["rexecutor_jobs_f20310308"] == 1
        # Partitions are made ahead for the coming days, empty.
        assert children["rexecutor_jobs_f20310313"] == 0
        # Connecting again converts nothing and keeps everything.
        async with PostgresBackend(postgres_url, schema=schema, layout="partitioned") as again:
            assert len(await again.query(IdIn((*before, fresh)))) == len(before) + 1


async def test_prune_drops_whole_old_days_and_keeps_recent_ones(
    postgres_url: str, new_schema: Callable[[str], str], admin: Admin
) -> None:
    schema = new_schema("part")
    with FakeClock(START) as clock:
        async with PostgresBackend(postgres_url, schema=schema, layout="partitioned") as part:
            ids: dict[str, list[int]] = {}
            for day in (10, 11, 12, 13):
                clock.advance(days=1)  # March 11 .. 14
                ids[f"rexecutor_jobs_f203103{day + 1}"] = [
                    await finished(part, JobStatus.COMPLETE) for _ in range(2)
                ]
            # March 12 also holds a discarded job, which a complete-only spec must keep.
            clock.set(START + timedelta(days=2))
            kept_discarded = await finished(part, JobStatus.DISCARDED)
            clock.set(START + timedelta(days=4))
            assert (await _children(admin, schema))["rexecutor_jobs_f20310312"] == 3
            # Days wholly before March 13 14:00 minus 36 h = March 13 02:00 end by then.
            clock.advance(hours=2)  # March 14 14:00
            pruned = await part.prune_jobs(
                PruneSpec(JobStatus.COMPLETE, max_age=timedelta(hours=36))
            )
            children = await _children(admin, schema)
            assert "rexecutor_jobs_f20310311" not in children  # dropped whole
            assert children["rexecutor_jobs_f20310312"] == 1  # deleted row by row
            assert children["rexecutor_jobs_f20310313"] == 2  # recent days kept
            assert children["rexecutor_jobs_f20310314"] == 2
            assert children["rexecutor_jobs_f20310317"] == 0  # three days ahead
            assert pruned == 4
            remaining = {
                j.id for j in await part.query(IdIn(tuple(i for day in ids.values() for i in day)))
            }
            assert remaining == set(
                ids["rexecutor_jobs_f20310313"] + ids["rexecutor_jobs_f20310314"]
            )
            assert (await part.get_job(kept_discarded)).status is JobStatus.DISCARDED
            # Pruning the discarded one too empties March 12, which goes next time.
            assert await part.prune_jobs(PruneSpec(JobStatus.DISCARDED, max_age=timedelta(0))) == 1
            assert (
                await part.prune_jobs(PruneSpec(JobStatus.COMPLETE, max_age=timedelta(hours=36)))
                == 0
            )
            assert "rexecutor_jobs_f20310312" not in await _children(admin, schema)


async def test_finished_jobs_move_between_partitions(
    postgres_url: str, new_schema: Callable[[str], str], admin: Admin
) -> None:
    schema = new_schema("part")
    with FakeClock(START) as clock:
        async with PostgresBackend(postgres_url, schema=schema, layout="partitioned") as part:
            job_id = await finished(part, JobStatus.COMPLETE)
            assert (await _children(admin, schema))["rexecutor_jobs_f20310310"] == 1
            await rerun(part, job_id)  # no finished time: back in the live partition
            children = await _children(admin, schema)
            assert (children["rexecutor_jobs_f20310310"], children["rexecutor_jobs_live"]) == (0, 1)
            clock.advance(days=1)
            job, lease = await claim_one(part)
            assert job.id == job_id
            assert await part.complete_jobs([(job.id, lease)]) == [True]
            children = await _children(admin, schema)
            assert (children["rexecutor_jobs_f20310311"], children["rexecutor_jobs_live"]) == (1, 0)


async def test_a_bad_layout_is_a_clear_error(postgres_url: str) -> None:
    with pytest.raises(ConfigurationError, match="layout must be"):
        PostgresBackend(postgres_url, layout="sharded")


async def test_requiring_the_layout_without_migrating_says_how(
    postgres_url: str, new_schema: Callable[[str], str]
) -> None:
    schema = new_schema("part")
    async with PostgresBackend(postgres_url, schema=schema):
        pass
    with pytest.raises(BackendError, match="does not have the partitioned layout"):
        async with PostgresBackend(
            postgres_url, schema=schema, migrate=False, layout="partitioned"
        ):
            pass


async def test_a_write_racing_a_finish_that_moved_the_row_is_fenced_not_failed(
    postgres_url: str, new_schema: Callable[[str], str], admin: Admin
) -> None:
    """A concurrent finish moves the row to another partition while a fenced write waits
    on its lock; PostgreSQL then fails the write (a serialization failure) where the plain
    table would re-check it, so the backend runs it again and the fence answers."""
    schema = new_schema("part")
    async with PostgresBackend(postgres_url, schema=schema, layout="partitioned") as part:
        job_id = await enqueue(part)
        job, lease = await claim_one(part)
        async with await psycopg.AsyncConnection.connect(postgres_url) as other:
            await other.execute(
                psycopg.sql.SQL(
                    "UPDATE {} SET status = 'complete', completed_at = now() WHERE id = %s"
                ).format(psycopg.sql.Identifier(schema, "rexecutor_jobs")),
                [job_id],
            )  # holds the row, moved, until the commit below
            cancel = asyncio.ensure_future(
                part.apply_transition(
                    job_id,
                    Fence(JobStatus.EXECUTING, lease.attempt, lease.node_id),
                    Transition(JobStatus.CANCELLED),
                )
            )
            await asyncio.sleep(0.3)  # the cancel now waits on the row's lock
            assert not cancel.done()
            await other.commit()
        assert await cancel is False
        assert (await part.get_job(job.id)).status is JobStatus.COMPLETE


async def test_the_hot_statements_read_the_live_partition_alone(
    postgres_url: str, new_schema: Callable[[str], str], admin: Admin
) -> None:
    """The claim, the completion of a batch and the next scheduled time are planned on
    ``rexecutor_jobs_live`` only: without the live condition each probe by id visits every
    day partition's index, which a month of history makes 30 probes a job."""
    schema = new_schema("part")
    with FakeClock(START):
        async with PostgresBackend(postgres_url, schema=schema, layout="partitioned") as part:
            await finished(part, JobStatus.COMPLETE)  # a day partition holds a job
            params = {
                "executor": "ex",
                "executors": ["ex"],
                "limit": 10,
                "node": "n",
                "now": None,
                "ids": [1, 2],
                "attempts": [1, 1],
                "channel": "c",
                "waiters": 1,
                "cap": 10,
            }
            for name in ("claim", "complete_many_one_node", "next_scheduled_at", "waiting"):
                cur = await admin.execute(b"EXPLAIN " + part._q[name], params)
                plan = "\n".join(row[0] for row in await cur.fetchall())
                assert "rexecutor_jobs_live" in plan, (name, plan)
                if name.startswith("complete"):
                    # The update; the existence probe of an id that is not live may look in
                    # every partition.
                    updated = [line for line in plan.split("\n") if "Update on " in line]
                    assert updated and not any("_f2031" in line for line in updated), plan
                else:
                    assert "rexecutor_jobs_f2031" not in plan, (name, plan)
            # What the condition saves: a lookup by id alone visits the day partitions.
            cur = await admin.execute(
                psycopg.sql.SQL("EXPLAIN SELECT * FROM {} WHERE id = 1").format(
                    psycopg.sql.Identifier(schema, "rexecutor_jobs")
                )
            )
            assert "rexecutor_jobs_f2031" in "\n".join(row[0] for row in await cur.fetchall())
