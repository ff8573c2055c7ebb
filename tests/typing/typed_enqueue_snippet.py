"""Checked by mypy in test_typed_enqueue.py; never imported. The marked lines must be errors."""

from __future__ import annotations

from pydantic import BaseModel

from rexecutor import ExecutionResult, Executor, Job, sync
from rexecutor.testing import perform


class EmailJob(Executor[str, None]):
    name = "email_job"

    async def execute(self, job: Job[str, None]) -> ExecutionResult | None:
        return None


class Order(BaseModel):
    order_id: int


class ShipOrder(Executor[Order, dict[str, str]]):
    name = "ship_order"

    async def execute(self, job: Job[Order, dict[str, str]]) -> ExecutionResult | None:
        return None


async def right() -> None:
    await EmailJob.builder().with_data("bob@example.com").enqueue()
    await ShipOrder.builder().with_data(Order(order_id=1)).with_metadata({"a": "b"}).enqueue()
    jobs = await EmailJob.query_jobs()
    address: str = jobs[0].data
    orders = sync.query_jobs(ShipOrder)
    order_id: int = orders[0].data.order_id
    result = await perform(EmailJob, "bob@example.com")
    data: str = result.job.data
    print(address, order_id, data)


async def wrong() -> None:
    EmailJob.builder().with_data(123)  # error: int is not str
    ShipOrder.builder().with_data({"order_id": 1})  # error: dict is not Order
    ShipOrder.builder().with_metadata({"a": 1})  # error: int values
    jobs = await EmailJob.query_jobs()
    number: int = jobs[0].data  # error: str is not int
    await perform(EmailJob, 123)  # error: int is not str
    print(number)
