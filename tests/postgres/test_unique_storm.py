"""Unique enqueues under real concurrency: many connections (and processes) racing on the same
keys, some inside transactions that roll back, leave exactly one job per key."""

from __future__ import annotations

import asyncio
import random
import sys
import textwrap
from typing import Any

import psycopg
import pytest

from rexecutor.backends.postgres import PostgresBackend
from rexecutor.job import JobStatus
from rexecutor.query import And, ExecutorEquals
from rexecutor.uniqueness import UniquenessCriteria

from ..backends._helpers import new_job

pytestmark = pytest.mark.postgres

KEYS = [f"key-{i}" for i in range(50)]
WORKERS = 20
ROUNDS = 3


class Rollback(Exception):
    pass


async def _stored_keys(admin: psycopg.AsyncConnection[Any]) -> dict[int, list[int]]:
    cur = await admin.execute(
        "SELECT uniqueness_key, array_agg(id ORDER BY id) FROM public.rexecutor_jobs "
        "GROUP BY uniqueness_key"
    )
    return {int(key): list(ids) for key, ids in await cur.fetchall()}


async def test_twenty_connections_racing_on_fifty_keys_store_one_job_per_key(
    pg: PostgresBackend, postgres_url: str, admin: psycopg.AsyncConnection[Any]
) -> None:
    committed: dict[int, set[int]] = {}  # key hash -> ids reported by committed enqueues
    rolled_back: set[int] = set()  # ids created, then rolled back
    criteria = {key: UniquenessCriteria.by_key(key).and_executor() for key in KEYS}

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            for _ in range(ROUNDS):
                keys = KEYS[:]
                rng.shuffle(keys)
                for key in keys:
                    job = new_job(data={"worker": seed}, uniqueness=criteria[key])
                    mode = rng.choice(["commit", "rollback", "implicit"])
                    if mode == "rollback":
                        try:
                            async with conn.transaction():
                                result = await pg.enqueue(job, connection=conn)
                                raise Rollback
                        except Rollback:
                            if not result.duplicate:
                                rolled_back.add(result.job_id)
                        continue
                    if mode == "commit":
                        async with conn.transaction():
                            result = await pg.enqueue(job, connection=conn)
                    else:  # manual-commit connection, committed afterwards
                        result = await pg.enqueue(job, connection=conn)
                        await conn.commit()
                    hashed = criteria[key].key
                    assert hashed is not None
                    committed.setdefault(hashed, set()).add(result.job_id)

    await asyncio.gather(*(worker(seed) for seed in range(WORKERS)))
    # Make sure every key was committed at least once, through the backend's own pool.
    finals = await pg.enqueue_many([new_job(uniqueness=criteria[key]) for key in KEYS])

    stored = await _stored_keys(admin)
    assert set(stored) == {criteria[key].key for key in KEYS}
    for key, result in zip(KEYS, finals, strict=True):
        hashed = criteria[key].key
        assert hashed is not None
        assert len(stored[hashed]) == 1, f"{key}: {stored[hashed]}"
        [job_id] = stored[hashed]
        assert result.job_id == job_id
        # Every committed enqueue of the key reported the one stored job.
        assert committed.get(hashed, {job_id}) == {job_id}
    assert not rolled_back & {ids[0] for ids in stored.values()}
    jobs = await pg.query(And(()))
    assert all(job.status is JobStatus.SCHEDULED for job in jobs)


async def test_keyless_criteria_race_too(pg: PostgresBackend, postgres_url: str) -> None:
    criteria = UniquenessCriteria.by_executor()
    executors = [f"ex-{i}" for i in range(10)]

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
            for _ in range(5):
                names = executors[:]
                rng.shuffle(names)
                for name in names:
                    await pg.enqueue(new_job(name, uniqueness=criteria), connection=conn)
                    # interleave plain and key-only jobs, which take other locks
                    await pg.enqueue(new_job(f"plain-{name}"), connection=conn)

    await asyncio.gather(*(worker(seed) for seed in range(WORKERS)))
    for name in executors:
        jobs = await pg.query(ExecutorEquals(name))
        assert len(jobs) == 1, name


SCRIPT = textwrap.dedent(
    """
    import asyncio, random, sys
    from rexecutor.backend import EnqueuableJob
    from rexecutor.backends.postgres import PostgresBackend
    from rexecutor.uniqueness import UniquenessCriteria

    async def main(url, seed):
        rng = random.Random(seed)
        keys = [f"key-{i}" for i in range(50)]
        async with PostgresBackend(url, migrate=False, max_size=4) as backend:
            for _ in range(2):
                rng.shuffle(keys)
                jobs = [
                    EnqueuableJob("ex", {"p": seed}, uniqueness=UniquenessCriteria.by_key(k))
                    for k in keys
                ]
                await asyncio.gather(*(backend.enqueue(j) for j in jobs[:25]))
                await backend.enqueue_many(jobs[25:])

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


async def test_several_processes_racing_on_the_same_keys(
    pg: PostgresBackend, postgres_url: str, admin: psycopg.AsyncConnection[Any]
) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SCRIPT,
            postgres_url,
            str(seed),
            stderr=asyncio.subprocess.PIPE,
        )
        for seed in range(4)
    ]
    for proc in procs:
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
    stored = await _stored_keys(admin)
    assert len(stored) == 50
    assert all(len(ids) == 1 for ids in stored.values())
