"""assert_enqueued, refute_enqueued and all_enqueued: the same filters, partial data matching."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from rexecutor import Executor, Job
from rexecutor.backends import InMemoryBackend
from rexecutor.testing import all_enqueued, assert_enqueued, refute_enqueued


class Address(BaseModel):
    city: str
    zip: str


class Order(BaseModel):
    order_id: int
    email: str
    address: Address
    items: list[str]


class ShipOrder(Executor[Order, dict[str, Any]]):
    name = "ship_order"

    async def execute(self, job: Job[Order, dict[str, Any]]) -> None:
        return None


class Ping(Executor[str, None]):
    name = "ping"

    async def execute(self, job: Job[str, None]) -> None:
        return None


def order(order_id: int, city: str = "Lyon") -> Order:
    return Order(
        order_id=order_id,
        email=f"{order_id}@example.com",
        address=Address(city=city, zip="69001"),
        items=["a", "b"],
    )


@pytest.fixture
async def enqueued(rexecutor_backend: InMemoryBackend) -> InMemoryBackend:
    await ShipOrder.builder().with_data(order(1)).with_metadata({"source": "web", "n": 1}).enqueue()
    await ShipOrder.builder().with_data(order(2, "Paris")).enqueue()
    await Ping.builder().with_data("hello").enqueue()
    return rexecutor_backend


async def test_a_dict_matches_a_subset_of_the_models_fields(enqueued: InMemoryBackend) -> None:
    [job] = await assert_enqueued(for_executor=ShipOrder, with_data={"order_id": 1})
    assert job.data["email"] == "1@example.com"
    await assert_enqueued(for_executor=ShipOrder, with_data={"address": {"city": "Paris"}})
    await assert_enqueued(count=2, for_executor=ShipOrder, with_data={"items": ["a", "b"]})
    await refute_enqueued(for_executor=ShipOrder, with_data={"order_id": 3})
    await refute_enqueued(for_executor=ShipOrder, with_data={"no_such_field": 1})
    # Lists compare whole: a partial list is no match.
    await refute_enqueued(for_executor=ShipOrder, with_data={"items": ["a"]})


async def test_a_model_instance_or_partial_false_demands_equality(
    enqueued: InMemoryBackend,
) -> None:
    await assert_enqueued(for_executor=ShipOrder, with_data=order(1))
    await refute_enqueued(for_executor=ShipOrder, with_data=order(1, "Nice"))
    await refute_enqueued(for_executor=ShipOrder, with_data={"order_id": 1}, partial=False)
    whole = order(1).model_dump(mode="json")
    await assert_enqueued(for_executor=ShipOrder, with_data=whole, partial=False)


async def test_metadata_matches_partially_too(enqueued: InMemoryBackend) -> None:
    await assert_enqueued(for_executor=ShipOrder, with_metadata={"source": "web"})
    await refute_enqueued(for_executor=ShipOrder, with_metadata={"source": "api"})
    await refute_enqueued(for_executor=ShipOrder, with_metadata={"source": "web"}, partial=False)


async def test_all_enqueued_and_refute_take_the_same_filters(enqueued: InMemoryBackend) -> None:
    assert len(await all_enqueued()) == 3
    assert len(await all_enqueued(for_executor="ship_order", with_data={"order_id": 2})) == 1
    assert [j.data for j in await all_enqueued(for_executor=Ping, with_data="hello")] == ["hello"]
    await refute_enqueued(for_executor=Ping, with_data="bye", backend=enqueued)
    with pytest.raises(AssertionError, match=r"expected 0 enqueued job\(s\).*found 1"):
        await refute_enqueued(for_executor=Ping, with_data="hello")


async def test_the_failure_message_names_the_filters_and_the_queue(
    enqueued: InMemoryBackend,
) -> None:
    with pytest.raises(AssertionError) as info:
        await assert_enqueued(for_executor=ShipOrder, with_data={"order_id": 9}, partial=False)
    message = str(info.value)
    assert "with_data={'order_id': 9}" in message and "partial=False" in message
    assert "ping [scheduled] data='hello'" in message
