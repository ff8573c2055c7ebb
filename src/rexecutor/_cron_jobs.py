"""The jobs of cron schedules as they are stored: the job of one tick, the tags that name its
schedule and its tick, the last tick on record, and the catch-up of missed ticks.

The record of what a schedule has run is its jobs: every tick's job carries two tags, one
naming the schedule (a hash of executor, expression, timezone and data, the same values as
its uniqueness key without the tick) and one holding the tick. The last tick enqueued is
read back from the newest of those jobs, so every backend answers it with the query it
already has, and nothing else is stored.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from rexecutor._json import stable_hash
from rexecutor.backend import Backend
from rexecutor.cron import CronCatchUp, CronSchedule
from rexecutor.executor import Executor
from rexecutor.job import JobStatus
from rexecutor.query import Where
from rexecutor.uniqueness import UniquenessCriteria

__all__ = [
    "SCHEDULE_TAG_PREFIX",
    "TICK_TAG_PREFIX",
    "catch_up",
    "enqueue_tick",
    "last_enqueued_tick",
    "schedule_tag",
    "tick_tag",
]

#: The tag naming a job's cron schedule starts with this.
SCHEDULE_TAG_PREFIX = "rexecutor-cron:"
#: The tag holding a job's cron tick (ISO 8601, UTC) starts with this.
TICK_TAG_PREFIX = "rexecutor-cron-tick:"

# Jobs are read newest first by id, and ids follow the order of enqueues, not of ticks: a
# catch-up on one node can insert an older tick just after another node's newer one. Reading
# a few more than one and taking the latest tick among them absorbs that.
_RECENT = 20


def schedule_tag(executor: str, schedule: CronSchedule, data: Any) -> str:
    """The tag every job of this schedule carries."""
    digest = stable_hash([executor, schedule.expression, schedule.timezone, data])
    return f"{SCHEDULE_TAG_PREFIX}{digest & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def tick_tag(tick: datetime) -> str:
    """The tag holding the tick a job was enqueued for."""
    return f"{TICK_TAG_PREFIX}{tick.isoformat()}"


async def enqueue_tick(
    cls: type[Executor[Any, Any]],
    schedule: CronSchedule,
    data: Any,
    metadata: Any,
    backend: Backend,
    tick: datetime,
) -> None:
    """Enqueue the job of one tick, once across every node and every status.

    Its uniqueness key is made of the executor, the schedule, the data and the tick: whichever
    node enqueues first wins and the others get the same id back.
    """
    key = ["cron", cls.name, schedule.expression, schedule.timezone, data, tick.isoformat()]
    criteria = UniquenessCriteria.by_key(key).and_statuses(JobStatus.ALL)
    tags = [schedule_tag(cls.name, schedule, data), tick_tag(tick)]
    builder = cls.builder().unique(criteria).schedule_at(tick).with_tags(tags)
    if data is not None:
        builder = builder.with_data(data)
    if metadata is not None:
        builder = builder.with_metadata(metadata)
    await builder.enqueue_to_backend(backend)


async def last_enqueued_tick(
    backend: Backend, executor: str, schedule: CronSchedule, data: Any
) -> datetime | None:
    """The latest tick whose job is stored, or ``None`` if no job of the schedule is left.

    Jobs enqueued before ticks were tagged, and pruned jobs, are not seen.
    """
    where = Where.executor_equals(executor) & Where.tagged_by_all_of(
        [schedule_tag(executor, schedule, data)]
    )
    jobs = await backend.query(where.node, limit=_RECENT, newest_first=True)
    ticks: list[datetime] = []
    for job in jobs:
        for tag in job.tags:
            if tag.startswith(TICK_TAG_PREFIX):
                # A tag edited by hand is not a tick: it is ignored, not an error.
                with contextlib.suppress(ValueError):
                    moment = datetime.fromisoformat(tag.removeprefix(TICK_TAG_PREFIX))
                    if moment.tzinfo is not None:
                        ticks.append(moment)
    return max(ticks, default=None)


async def catch_up(
    cls: type[Executor[Any, Any]],
    schedule: CronSchedule,
    data: Any,
    metadata: Any,
    policy: CronCatchUp,
    backend: Backend,
    now: datetime,
) -> list[datetime]:
    """Enqueue the jobs of the ticks missed before ``now`` that ``policy`` keeps; return them.

    Several nodes starting at once compute the same ticks, and each tick's uniqueness key
    makes its job exist once.
    """
    if policy.policy == "skip":
        return []  # no query: a schedule that never catches up costs nothing at start
    last = await last_enqueued_tick(backend, cls.name, schedule, data)
    ticks = policy.missed_ticks(schedule, last, now)
    for tick in ticks:
        await enqueue_tick(cls, schedule, data, metadata, backend, tick)
    return ticks
