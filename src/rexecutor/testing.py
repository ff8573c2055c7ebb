"""Helpers for testing code that enqueues jobs.

Example:
    >>> await EmailJob.builder().with_data("bob@example.com").enqueue()
    >>> await assert_enqueued(for_executor=EmailJob, with_data="bob@example.com")
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rexecutor import _global
from rexecutor._json import canonical, to_json_value
from rexecutor.backend import Backend
from rexecutor.executor import Executor
from rexecutor.job import Job
from rexecutor.query import And, ExecutorEquals, QueryNode, ScheduledAt, TagsAllOf

__all__ = ["all_enqueued", "assert_enqueued", "refute_enqueued", "reset_global_backend"]

_ANY: Any = object()


def reset_global_backend() -> None:
    """Forget the global backend, so that the next test starts without one."""
    _global.set_global_backend(None)


def _executor_name(executor: type[Executor[Any, Any]] | Executor[Any, Any] | str) -> str:
    return executor if isinstance(executor, str) else executor.name


def _encode(executor: Any, value: Any, metadata: bool) -> Any:
    if isinstance(executor, type) and issubclass(executor, Executor):
        return executor.encode_metadata(value) if metadata else executor.encode_data(value)
    return to_json_value(value)


async def all_enqueued(
    *,
    for_executor: type[Executor[Any, Any]] | Executor[Any, Any] | str | None = None,
    with_data: Any = _ANY,
    with_metadata: Any = _ANY,
    tagged_with: list[str] | None = None,
    scheduled_after: datetime | None = None,
    scheduled_before: datetime | None = None,
    backend: Backend | None = None,
) -> list[Job[Any, Any]]:
    """Every stored job (any status) matching all the given filters, oldest first.

    ``with_data`` and ``with_metadata`` compare JSON forms; ``tagged_with`` requires every
    listed tag; ``scheduled_after``/``scheduled_before`` are strict.
    """
    target = backend if backend is not None else _global.get_global_backend()
    nodes: list[QueryNode] = []
    if for_executor is not None:
        nodes.append(ExecutorEquals(_executor_name(for_executor)))
    if tagged_with:
        nodes.append(TagsAllOf(tuple(tagged_with)))
    if scheduled_after is not None:
        nodes.append(ScheduledAt(">", scheduled_after))
    if scheduled_before is not None:
        nodes.append(ScheduledAt("<", scheduled_before))
    jobs = await target.query(And(tuple(nodes)))
    if with_data is not _ANY:
        wanted = canonical(_encode(for_executor, with_data, metadata=False))
        jobs = [j for j in jobs if canonical(j.data) == wanted]
    if with_metadata is not _ANY:
        wanted = canonical(_encode(for_executor, with_metadata, metadata=True))
        jobs = [j for j in jobs if canonical(j.metadata) == wanted]
    return jobs


def _describe(jobs: list[Job[Any, Any]]) -> str:
    if not jobs:
        return "  (no jobs)"
    lines = [
        f"  #{int(j.id)} {j.executor} [{j.status}] data={j.data!r} metadata={j.metadata!r} "
        f"tags={j.tags} scheduled_at={j.scheduled_at.isoformat()}"
        for j in jobs[:50]
    ]
    if len(jobs) > 50:
        lines.append(f"  ... and {len(jobs) - 50} more")
    return "\n".join(lines)


async def assert_enqueued(
    *,
    for_executor: type[Executor[Any, Any]] | Executor[Any, Any] | str | None = None,
    count: int = 1,
    with_data: Any = _ANY,
    with_metadata: Any = _ANY,
    tagged_with: list[str] | None = None,
    scheduled_after: datetime | None = None,
    scheduled_before: datetime | None = None,
    backend: Backend | None = None,
) -> list[Job[Any, Any]]:
    """Assert that exactly ``count`` stored jobs match the filters; returns them.

    Raises ``AssertionError`` listing the matching jobs and every stored job otherwise.
    """
    target = backend if backend is not None else _global.get_global_backend()
    found = await all_enqueued(
        for_executor=for_executor,
        with_data=with_data,
        with_metadata=with_metadata,
        tagged_with=tagged_with,
        scheduled_after=scheduled_after,
        scheduled_before=scheduled_before,
        backend=target,
    )
    if len(found) != count:
        filters = {
            "for_executor": None if for_executor is None else _executor_name(for_executor),
            "with_data": with_data,
            "with_metadata": with_metadata,
            "tagged_with": tagged_with,
            "scheduled_after": scheduled_after,
            "scheduled_before": scheduled_before,
        }
        shown = ", ".join(
            f"{k}={v!r}" for k, v in filters.items() if v is not None and v is not _ANY
        )
        everything = await target.query(And(()))
        raise AssertionError(
            f"expected {count} enqueued job(s) matching {shown or 'no filters'}, "
            f"found {len(found)}:\n{_describe(found)}\nall enqueued jobs:\n{_describe(everything)}"
        )
    return found


async def refute_enqueued(**filters: Any) -> None:
    """Assert that no stored job matches the filters (same keywords as ``assert_enqueued``)."""
    await assert_enqueued(count=0, **filters)
