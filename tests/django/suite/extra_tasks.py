"""Tasks that only the tests use (the example's own are in orders/tasks.py)."""

from __future__ import annotations

from typing import Any

from django.tasks import TaskContext, task


class PaymentDeclined(Exception):
    """Raised by ``charge``."""


@task
def charge(cents: int) -> None:
    raise PaymentDeclined(f"declined: {cents} cents")


@task(takes_context=True)
def whoami(context: TaskContext, note: str = "") -> dict[str, Any]:
    return {"attempt": context.attempt, "id": context.task_result.id, "note": note}


@task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@task
def unserialisable() -> object:
    return object()
