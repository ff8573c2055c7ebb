"""The README's quick start, verbatim (tests/test_examples.py runs it)."""

import asyncio

from rexecutor import ExecutionResult, Executor, Job, Rexecutor
from rexecutor.backends import InMemoryBackend


class EmailJob(Executor[str, None]):  # Executor[Data, Metadata]
    name = "email_job"  # stored with every job: keep it stable
    max_attempts = 3

    async def execute(self, job: Job[str, None]) -> ExecutionResult | None:
        print(f"sending to {job.data}")
        return ExecutionResult.Done()  # or None; raising an exception retries


async def main() -> None:
    rex = Rexecutor(InMemoryBackend()).with_executor(EmailJob).set_global_backend()
    async with rex:  # on exit: graceful shutdown
        await EmailJob.builder().with_data("bob@example.com").enqueue()
        await asyncio.sleep(0.1)


asyncio.run(main())
