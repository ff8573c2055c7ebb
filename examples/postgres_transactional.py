"""Transactional enqueue: the job exists only if the caller's transaction commits.

Run with a database URL: ``python examples/postgres_transactional.py postgresql://.../db``.
"""

from __future__ import annotations

import asyncio
import sys

import psycopg

from rexecutor import Executor, Job
from rexecutor.backends import PostgresBackend


class WelcomeEmail(Executor[int, None]):
    """Sends the welcome email of a new user (by id)."""

    name = "welcome_email"

    async def execute(self, job: Job[int, None]) -> None:
        print(f"welcome, user {job.data}")


async def sign_up(conn: psycopg.AsyncConnection, backend: PostgresBackend, name: str) -> int:
    """Insert a user and enqueue its welcome email in one transaction."""
    async with conn.transaction():
        row = await (
            await conn.execute("INSERT INTO users (name) VALUES (%s) RETURNING id", (name,))
        ).fetchone()
        assert row is not None
        await WelcomeEmail.builder().with_data(row[0]).enqueue_to_backend(backend, connection=conn)
        if name == "mallory":
            raise ValueError("rejected sign-up: the user row and the job both roll back")
    return int(row[0])


async def main(url: str) -> None:
    async with PostgresBackend(url) as backend:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS users (id serial PRIMARY KEY, name text)"
            )
            await conn.commit()
            await sign_up(conn, backend, "alice")
            try:
                await sign_up(conn, backend, "mallory")
            except ValueError as exc:
                print(exc)
        jobs = await WelcomeEmail.query_jobs_on_backend(None, backend)
        print(f"{len(jobs)} welcome job(s) enqueued")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
