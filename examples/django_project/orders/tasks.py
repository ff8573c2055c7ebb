"""The project's tasks: plain Django tasks (``django.tasks.task``), run by rexecutor."""

from __future__ import annotations

from django.tasks import task

from orders.models import Order


@task
def send_confirmation(order_id: int) -> str:
    """Confirm an order (a real project would send an email here)."""
    order = Order.objects.get(pk=order_id)
    order.confirmed = True
    order.save(update_fields=["confirmed"])
    return f"confirmed {order.number} to {order.email}"


@task(queue_name="reports", priority=10)
async def orders_report(prefix: str) -> dict[str, object]:
    """Count orders (an async task: it runs on the worker's event loop)."""
    total = await Order.objects.filter(number__startswith=prefix).acount()
    confirmed = await Order.objects.filter(number__startswith=prefix, confirmed=True).acount()
    return {"prefix": prefix, "orders": total, "confirmed": confirmed}
