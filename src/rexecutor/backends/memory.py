"""``InMemoryBackend``: jobs in a Python dict, for tests and examples.

Thread-safe (one lock, no awaits while it is held), so every operation is atomic. Not durable.
Claims take jobs from a heap per executor, in claim order, so their cost depends on the jobs
waiting, not on how many finished jobs are kept.
"""

from __future__ import annotations

import copy
import heapq
import json
import threading
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from rexecutor import _clock, dependencies
from rexecutor._notify import Wakeups
from rexecutor._payload import DEFAULT_MAX_PAYLOAD_BYTES, storable_delay
from rexecutor.backend import (
    Backend,
    Capabilities,
    Completion,
    EnqueuableJob,
    EnqueueResult,
    Lease,
    NodeInfo,
    PruneSpec,
    check_batch_size,
    completions_of,
    refuse_connection,
)
from rexecutor.backends._common import (
    apply_replace,
    error_entry,
    unique_match,
    validate_enqueuable,
    validate_update,
)
from rexecutor.backends._query import PythonDialect, compile_where
from rexecutor.control import ControlChange, ExecutorState
from rexecutor.errors import JobNotFound
from rexecutor.job import Job, JobId, JobProgress, JobStatus
from rexecutor.lifecycle import Fence, Transition
from rexecutor.limits import WAITING_COUNT_CAP, ClaimLimits, ClaimReport, Usage, admit
from rexecutor.limits import plan as limits_plan
from rexecutor.query import And, IdIn, QueryNode

__all__ = ["InMemoryBackend"]


class InMemoryBackend(Backend):
    """Jobs kept in memory: fast, exact, and gone when the process ends.

    Example:
        >>> backend = InMemoryBackend()
        >>> paused = InMemoryBackend().paused()   # stores jobs, never hands them out
    """

    capabilities = Capabilities(follows_test_clock=True)

    def __init__(self) -> None:
        self.poll_interval = 1.0
        self.max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES
        self.wakeups = Wakeups()
        self._lock = threading.Lock()
        self._jobs: dict[int, Job[Any, Any]] = {}
        self._keys: dict[int, int | None] = {}
        self._nodes: dict[str, NodeInfo] = {}
        self._next_id = 1
        self._paused = False
        # Per executor, a heap of (priority, scheduled_at, id) of jobs that were ready when the
        # entry was pushed. Entries are never updated in place: a job whose place in the claim
        # order changes gets a new entry, and an entry that no longer matches its job (gone,
        # not ready, or moved) is dropped when it reaches the top.
        self._queues: dict[str, list[tuple[int, datetime, int]]] = {}
        self._controls: dict[str, ExecutorState] = {}
        # Workflows: each dependent's dependencies, each job's dependents, and the policy of
        # each dependent for a failed dependency.
        self._depends_on: dict[int, tuple[int, ...]] = {}
        self._dependents: dict[int, list[int]] = {}
        self._policies: dict[int, dependencies.OnFailedDependency] = {}
        # Per executor, the starts of its rate window: (when, partition key).
        self._starts: dict[str, list[tuple[datetime, str | None]]] = {}

    async def connect(self) -> None:
        """Nothing to open: the jobs live in this object."""

    async def close(self) -> None:
        """Nothing to release; the jobs stay until the object is gone."""

    async def migrate(self) -> int:
        """No schema: always version 0."""
        return 0

    def paused(self) -> InMemoryBackend:
        """Make this backend store jobs but never hand them to runners; returns ``self``."""
        self._paused = True
        return self

    def _get(self, job_id: int) -> Job[Any, Any]:
        try:
            return self._jobs[int(job_id)]
        except KeyError:
            raise JobNotFound(job_id) from None

    def _held(self, job_id: int, lease: Lease) -> Job[Any, Any] | None:
        job = self._get(job_id)
        return job if Fence.held(lease).holds(job) else None

    # -- enqueue ---------------------------------------------------------------------------

    def _enqueue_locked(
        self, job: EnqueuableJob, scheduled: datetime | None, now: datetime, wake: set[str]
    ) -> EnqueueResult:
        # Store copies: the caller may go on mutating what it passed in.
        data, metadata = _clone(job.data), _clone(job.metadata)
        scheduled_at = now if scheduled is None else scheduled
        criteria = job.uniqueness
        key = criteria.key if criteria else None
        if criteria is not None:
            job = replace(job, data=data, metadata=metadata)
            for job_id in sorted(self._jobs):
                existing = self._jobs[job_id]
                if unique_match(job, key, existing, self._keys[job_id], scheduled_at):
                    if apply_replace(job, existing, scheduled_at):
                        self._requeue(existing)
                        self._wake(existing, wake)
                    return EnqueueResult(existing.id, duplicate=True)
        job_id = JobId(self._next_id)
        self._next_id += 1
        stored: Job[Any, Any] = Job(
            id=job_id,
            status=JobStatus.SCHEDULED,
            executor=job.executor,
            data=data,
            metadata=metadata,
            attempt=0,
            max_attempts=job.max_attempts,
            priority=job.priority,
            tags=list(job.tags),
            errors=[],
            inserted_at=now,
            scheduled_at=scheduled_at,
            partition_key=job.partition_key,
            workflow_id=job.workflow_id,
            workflow_step=job.workflow_step,
            blocked=bool(job.depends_on),
        )
        self._jobs[job_id] = stored
        self._keys[job_id] = key
        self._requeue(stored)
        self._wake(stored, wake)
        return EnqueueResult(job_id)

    def _requeue(self, job: Job[Any, Any]) -> None:
        """Give a ready job its (new) place in its executor's claim order."""
        if job.status in JobStatus.READY:
            queue = self._queues.get(job.executor)
            if queue is None:
                queue = self._queues[job.executor] = []
            heapq.heappush(queue, (job.priority, job.scheduled_at, job.id))

    def _wake(self, job: Job[Any, Any], wake: set[str] | None = None) -> None:
        """Wake the runners of a ready job's executor (now, or later through ``wake``)."""
        if not self._paused and job.status in JobStatus.READY:
            if wake is None:
                self.notify(job.executor)
            else:
                wake.add(job.executor)

    def _wake_all(self, executors: set[str]) -> None:
        for executor in executors:
            self.notify(executor)

    async def enqueue(self, job: EnqueuableJob, *, connection: Any = None) -> EnqueueResult:
        refuse_connection(self, connection)
        dependencies.check_batch([job])
        scheduled = validate_enqueuable(job, self.max_payload_bytes).scheduled_at
        wake: set[str] = set()
        with self._lock:
            result = self._enqueue_locked(job, scheduled, _clock.now(), wake)
        self._wake_all(wake)
        return result

    async def enqueue_many(
        self, jobs: Sequence[EnqueuableJob], *, connection: Any = None
    ) -> list[EnqueueResult]:
        refuse_connection(self, connection)
        times = [validate_enqueuable(job, self.max_payload_bytes).scheduled_at for job in jobs]
        dependencies.check_batch(jobs)
        wake: set[str] = set()
        with self._lock:
            now = _clock.now()
            results: list[EnqueueResult] = []
            waited_on: set[int] = set()
            for job, scheduled in zip(jobs, times, strict=True):
                result = self._enqueue_locked(job, scheduled, now, wake)
                results.append(result)
                if job.depends_on and not result.duplicate:
                    self._link(
                        int(result.job_id), job, [int(results[p].job_id) for p in job.depends_on]
                    )
                    waited_on.update(int(results[p].job_id) for p in job.depends_on)
            if waited_on:
                # Dependencies that had already finished release (or cancel) at once.
                dependencies.drive(dependencies.propagate(sorted(waited_on)), self._answer)
        self._wake_all(wake)
        return results

    def _link(self, job_id: int, job: EnqueuableJob, on: list[int]) -> None:
        """Store the dependencies of a new job."""
        self._depends_on[job_id] = tuple(dict.fromkeys(on))
        self._policies[job_id] = dependencies.check_policy(job.on_failed_dependency)
        for dependency in self._depends_on[job_id]:
            self._dependents.setdefault(dependency, []).append(job_id)
            self._jobs[dependency].has_dependents = True

    # -- claiming and transitions ------------------------------------------------------------

    async def claim_ready_jobs(
        self,
        executor: str,
        limit: int,
        node_id: str,
        *,
        limits: ClaimLimits | None = None,
        report: ClaimReport | None = None,
    ) -> list[Job[Any, Any]]:
        if self._paused or limit <= 0:
            return []
        with self._lock:
            state = self._controls.get(executor)
            if state is not None and state.paused:
                if report is not None:
                    report.paused = True
                return []
            queue = self._queues.get(executor)
            if not queue:
                return []
            now = _clock.now()
            if limits is None or not limits.any:
                picked = self._pop_due(queue, now, limit)
            else:
                picked = self._pop_admitted(executor, queue, now, limit, limits, report)
            claimed: list[Job[Any, Any]] = []
            for job in picked:
                job.status = JobStatus.EXECUTING
                job.attempt += 1
                job.attempted_at = now
                job.attempted_by = node_id
                claimed.append(_copy(job))
            return claimed

    def _pop_due(
        self,
        queue: list[tuple[int, datetime, int]],
        now: datetime,
        limit: int,
        fits: Callable[[Job[Any, Any]], bool] | None = None,
    ) -> list[Job[Any, Any]]:
        """Take up to ``limit`` due jobs from ``queue`` in claim order (those that ``fits``
        accepts); the others go back."""
        taken: list[Job[Any, Any]] = []
        seen: set[int] = set()  # a job may have several entries (requeued): take it once
        kept: list[tuple[int, datetime, int]] = []
        while queue and len(taken) < limit:
            entry = heapq.heappop(queue)
            job = self._live_entry(entry)
            if job is None or entry[2] in seen:
                continue
            if job.scheduled_at > now:
                kept.append(entry)
                continue
            if fits is not None and not fits(job):
                kept.append(entry)
                continue
            taken.append(job)
            seen.add(entry[2])
        for entry in kept:
            heapq.heappush(queue, entry)
        return taken

    def _pop_admitted(
        self,
        executor: str,
        queue: list[tuple[int, datetime, int]],
        now: datetime,
        limit: int,
        limits: ClaimLimits,
        report: ClaimReport | None,
    ) -> list[Job[Any, Any]]:
        """Take what :mod:`rexecutor.limits` admits, counting from the stored jobs."""
        starts = self._starts.setdefault(executor, [])
        since = limits.window_start(now)
        if since is not None:
            starts[:] = [(at, key) for at, key in starts if at > since]
        else:
            starts.clear()

        def key_of(partition: str | None) -> str | None:
            return partition if limits.partitioned else None

        executing: Counter[str | None] = Counter(
            key_of(job.partition_key)
            for job in self._jobs.values()
            if job.executor == executor and job.status is JobStatus.EXECUTING
        )
        started: Counter[str | None] = Counter(key_of(key) for _, key in starts)
        usage = Usage(executing=executing, started=started)
        plan = limits_plan(limits, limit, usage)
        per_key: Counter[str | None] = Counter()

        def fits(job: Job[Any, Any]) -> bool:
            key = key_of(job.partition_key)
            if key in plan.exclude or (plan.per_key is not None and per_key[key] >= plan.per_key):
                return False
            per_key[key] += 1
            return True

        candidates = self._pop_due(queue, now, plan.fetch, fits) if plan.total > 0 else []
        chosen, _ = admit(
            limits, plan, usage, ((job, key_of(job.partition_key)) for job in candidates)
        )
        taken = {job.id for job in chosen}
        for job in candidates:
            if job.id not in taken:
                self._requeue(job)
        if limits.rate is not None:
            starts.extend((now, job.partition_key) for job in chosen)
        if report is not None and len(chosen) < limit:
            # Everything due that is left waiting was held back by the limits.
            due = sum(
                1
                for entry in queue
                if (waiting := self._live_entry(entry)) is not None and waiting.scheduled_at <= now
            )
            report.limited = due > 0
            report.held = min(due, WAITING_COUNT_CAP)
        return chosen

    # -- run-time control --------------------------------------------------------------------

    async def executor_states(self, names: Collection[str] | None) -> list[ExecutorState]:
        with self._lock:
            now = _clock.now()
            wanted = sorted(self._controls if names is None else set(names) & set(self._controls))
            return [self._with_window(self._controls[name], now) for name in wanted]

    def _with_window(self, state: ExecutorState, now: datetime) -> ExecutorState:
        since = state.limits.window_start(now)
        if since is None:
            return state
        count = sum(1 for at, _ in self._starts.get(state.name, ()) if at > since)
        return replace(state, started_in_window=count)

    async def change_executor(self, name: str, change: ControlChange) -> None:
        with self._lock:
            state = self._controls.get(name) or ExecutorState(name)
            if change.paused is not None:
                state = replace(state, paused=change.paused)
            if change.scale:
                state = replace(state, max_concurrency=change.max_concurrency)
            self._controls[name] = replace(state, updated_at=_clock.now())
        if not (self._controls[name].paused or self._paused):
            self.notify(name)

    async def declare_limits(self, name: str, limits: ClaimLimits) -> None:
        with self._lock:
            state = self._controls.get(name) or ExecutorState(name)
            self._controls[name] = replace(state, limits=limits, updated_at=_clock.now())

    def _live_entry(self, entry: tuple[int, datetime, int]) -> Job[Any, Any] | None:
        """The job a queue entry stands for, if it is ready and still in that place."""
        priority, scheduled_at, job_id = entry
        job = self._jobs.get(job_id)
        if (
            job is None
            or job.status not in JobStatus.READY
            or job.blocked  # requeued when its dependencies release it
            or job.priority != priority
            or job.scheduled_at != scheduled_at
        ):
            return None
        return job

    async def next_scheduled_at(self, executors: Collection[str]) -> datetime | None:
        if self._paused:
            return None
        with self._lock:
            times = [
                job.scheduled_at
                for executor in set(executors)
                for entry in self._queues.get(executor, ())
                if (job := self._live_entry(entry)) is not None
            ]
        return min(times, default=None)

    async def complete_jobs(
        self, completions: Sequence[Completion | tuple[int, Lease]]
    ) -> list[bool]:
        """Complete many jobs under one lock; an unknown id raises ``JobNotFound`` after the
        completions before it took effect, as completing them one by one would."""
        results: list[bool] = []
        try:
            with self._lock:
                now = _clock.now()
                for job_id, lease, result in completions_of(completions):
                    job = self._held(job_id, lease)
                    if job is None:
                        results.append(False)
                        continue
                    job.status = JobStatus.COMPLETE
                    job.completed_at = now
                    if result is not None:
                        job.result = json.loads(result)
                    results.append(True)
                    if job.has_dependents:
                        dependencies.drive(dependencies.propagate([job_id]), self._answer)
        finally:  # also the completions before an unknown id
            done = zip(completions_of(completions), results, strict=False)
            self.wakeups.notify_finished([int(item[0]) for item, ok in done if ok])
        return results

    async def record_progress(self, job_id: int, lease: Lease, progress: JobProgress) -> bool:
        with self._lock:
            job = self._held(job_id, lease)
            if job is None:
                return False
            # Stored as the SQL backends store it: what reads back from to_json().
            job.progress = JobProgress.from_json(progress.to_json())
            return True

    async def apply_transition(self, job_id: int, fence: Fence, transition: Transition) -> bool:
        with self._lock:
            applied, cancelled_running = self._apply_locked(job_id, fence, transition)
            job = self._jobs[int(job_id)]
            if applied and job.has_dependents:
                walk = dependencies.after_change(int(job_id), job.status, transition.reopen)
                if walk is not None:
                    dependencies.drive(walk, self._answer)
        if cancelled_running:
            self.notify_cancellation()
        if applied and transition.status.is_terminal:
            self.wakeups.notify_finished([int(job_id)])
        return applied

    def _apply_locked(self, job_id: int, fence: Fence, transition: Transition) -> tuple[bool, bool]:
        """Store ``transition`` under ``fence``; returns (applied, an executing job was
        cancelled from outside)."""
        job = self._get(job_id)
        if not fence.holds(job):
            return False, False
        now = _clock.now()
        if transition.error is not None:
            job.errors.append(error_entry(job, transition.error, now))
        cancelled_running = job.status is JobStatus.EXECUTING and fence.node_id is None
        job.status = transition.status
        if transition.attempt is not None:
            job.attempt = transition.attempt
        if transition.run_in is not None:
            job.scheduled_at = now + storable_delay(transition.run_in)
        if transition.min_max_attempts is not None:
            job.max_attempts = max(job.max_attempts, transition.min_max_attempts)
        if transition.reopen:
            job.completed_at = job.cancelled_at = job.discarded_at = None
            job.result = job.progress = None
        if transition.result is not None:
            job.result = json.loads(transition.result)
        if job.status is JobStatus.COMPLETE:
            job.completed_at = now
        elif job.status is JobStatus.CANCELLED:
            job.cancelled_at = now
        elif job.status is JobStatus.DISCARDED:
            job.discarded_at = now
        self._requeue(job)
        self._wake(job)
        return True, cancelled_running

    # -- workflows ---------------------------------------------------------------------------

    def _answer(self, request: dependencies.Request) -> object:
        """Answer a request of :mod:`rexecutor.dependencies` (under the lock)."""
        if isinstance(request, dependencies.ReadDependents):
            found: list[dependencies.Dependent] = []
            for dependent_id in sorted(
                {d for job_id in request.ids for d in self._dependents.get(job_id, ())}
            ):
                job = self._jobs.get(dependent_id)
                if job is None:
                    continue
                statuses = {
                    dep: self._jobs[dep].status if dep in self._jobs else JobStatus.COMPLETE
                    for dep in self._depends_on.get(dependent_id, ())
                }
                found.append(
                    dependencies.Dependent(
                        id=dependent_id,
                        status=job.status,
                        attempt=job.attempt,
                        blocked=job.blocked,
                        policy=self._policies.get(dependent_id, "cancel"),
                        dependencies=statuses,
                        last_error=job.errors[-1].name if job.errors else None,
                    )
                )
            return found
        if isinstance(request, dependencies.SetBlocked):
            for job_id in request.ids:
                job = self._jobs[job_id]
                job.blocked = request.blocked
                if not request.blocked:
                    self._requeue(job)
                    self._wake(job)
            return None
        applied, _ = self._apply_locked(request.id, request.fence, request.transition)
        return applied

    async def dependencies(self, job_ids: Collection[int]) -> dict[int, list[int]]:
        with self._lock:
            return {
                int(j): list(self._depends_on[int(j)])
                for j in job_ids
                if int(j) in self._depends_on
            }

    async def workflow_jobs(self, workflow_id: str) -> list[Job[Any, Any]]:
        with self._lock:
            return [
                _copy(job)
                for _, job in sorted(self._jobs.items())
                if job.workflow_id == workflow_id
            ]

    async def settle_blocked(self) -> int:
        with self._lock:
            blocked = [job_id for job_id, job in self._jobs.items() if job.blocked]
            # Only a finished dependency (or a gone one) can settle a blocked job.
            dependencies_of = {
                d
                for j in blocked
                for d in self._depends_on.get(j, ())
                if d not in self._jobs or self._jobs[d].status.is_terminal
            }
            before = {j: (self._jobs[j].status, self._jobs[j].blocked) for j in blocked}
            dependencies.drive(dependencies.propagate(sorted(dependencies_of)), self._answer)
            return sum(
                1
                for j, state in before.items()
                if (self._jobs[j].status, self._jobs[j].blocked) != state
            )

    async def update_job(self, job: Job[Any, Any]) -> None:
        with self._lock:
            stored = self._get(job.id)
            _, scheduled_at = validate_update(job, self.max_payload_bytes)
            stored.data = _clone(job.data)
            stored.metadata = _clone(job.metadata)
            stored.max_attempts = job.max_attempts
            stored.priority = job.priority
            stored.tags = list(job.tags)
            stored.scheduled_at = scheduled_at
            self._requeue(stored)
            self._wake(stored)

    # -- reading and housekeeping ------------------------------------------------------------

    async def query(
        self,
        where: QueryNode,
        *,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[Job[Any, Any]]:
        matches = compile_where(where, PythonDialect())
        with self._lock:
            wanted = _wanted_ids(where)
            if wanted is None:
                ids = sorted(self._jobs, reverse=newest_first)
            else:  # only these ids can match: look at them, not at every stored job
                ids = sorted((i for i in wanted if i in self._jobs), reverse=newest_first)
            found = [_copy(self._jobs[i]) for i in ids if matches(self._jobs[i])]
        end = None if limit is None else offset + limit
        return found[offset:end]

    async def count_jobs(self) -> dict[tuple[str, JobStatus], int]:
        with self._lock:
            return dict(Counter((j.executor, j.status) for j in self._jobs.values()))

    async def finished_per_minute(self, since: timedelta) -> list[tuple[datetime, JobStatus, int]]:
        with self._lock:
            cutoff = _clock.now() - since
            buckets = Counter(
                (j.finished_at.replace(second=0, microsecond=0), j.status)
                for j in self._jobs.values()
                if j.finished_at is not None and j.finished_at >= cutoff
            )
        return [(minute, status, n) for (minute, status), n in sorted(buckets.items())]

    async def prune_jobs(self, spec: PruneSpec, batch_size: int = 1000) -> int:
        # One lock makes the whole prune atomic here, so batches would change nothing; the
        # size is still checked, as every backend checks it.
        check_batch_size(batch_size)
        with self._lock:
            candidates = sorted(
                (
                    j
                    for j in self._jobs.values()
                    if j.status is spec.status and spec.applies_to(j.executor)
                ),
                key=lambda j: (j.finished_at or j.scheduled_at, j.id),
                reverse=True,
            )
            if spec.max_length is not None:
                doomed = candidates[spec.max_length :]
            else:
                assert spec.max_age is not None
                cutoff = _clock.now() - spec.max_age
                doomed = [j for j in candidates if (j.finished_at or j.scheduled_at) < cutoff]
            # A job an unfinished dependent waits on stays (its status is what releases it).
            doomed = [j for j in doomed if not self._awaited(int(j.id))]
            for job in doomed:
                del self._jobs[job.id]
                del self._keys[job.id]
                self._policies.pop(int(job.id), None)
                for dependency in self._depends_on.pop(int(job.id), ()):
                    if dependency in self._dependents:
                        self._dependents[dependency].remove(int(job.id))
            return len(doomed)

    def _awaited(self, job_id: int) -> bool:
        """Whether a dependent of ``job_id`` has not finished."""
        return any(
            not self._jobs[d].status.is_terminal
            for d in self._dependents.get(job_id, ())
            if d in self._jobs
        )

    async def record_heartbeat(self, node: NodeInfo) -> None:
        with self._lock:
            now = _clock.now()
            known = self._nodes.get(node.node_id)
            started = known.started_at if known else now
            self._nodes[node.node_id] = replace(node, started_at=started, heartbeat_at=now)

    async def remove_node(self, node_id: str) -> None:
        with self._lock:
            self._nodes.pop(node_id, None)

    async def list_nodes(self) -> list[NodeInfo]:
        with self._lock:
            nodes = list(self._nodes.values())
        return sorted(
            nodes, key=lambda n: n.heartbeat_at or n.started_at or _clock.now(), reverse=True
        )

    async def orphaned_jobs(self, dead_after: timedelta) -> list[Job[Any, Any]]:
        with self._lock:
            now = _clock.now()
            cutoff = now - dead_after
            dead = {n.node_id for n in self._nodes.values() if (n.heartbeat_at or now) < cutoff}
            orphans = [
                _copy(job)
                for job in sorted(self._jobs.values(), key=lambda j: j.id)
                if job.status is JobStatus.EXECUTING
                and (
                    job.attempted_by in dead
                    or (job.attempted_by not in self._nodes and (job.attempted_at or now) < cutoff)
                )
            ]
            for node_id in dead:
                del self._nodes[node_id]
            return orphans

    async def lost_jobs(self, node_id: str, leases: dict[int, int]) -> list[int]:
        with self._lock:
            lost = []
            for job_id, attempt in leases.items():
                job = self._jobs.get(job_id)
                if job is None or self._held(job_id, Lease(node_id, attempt)) is None:
                    lost.append(job_id)
            return lost


def _wanted_ids(where: QueryNode) -> set[int] | None:
    """The ids a query is restricted to (an ``IdIn``, alone or in an ``And``), if it is."""
    if isinstance(where, IdIn):
        return {int(i) for i in where.ids}
    if isinstance(where, And):
        for child in where.children:
            if isinstance(child, IdIn):
                return {int(i) for i in child.ids}
    return None


_ATOMS = (type(None), bool, int, float, str)


def _clone(value: Any) -> Any:
    """A deep copy of a JSON value (immutable scalars are shared, as deepcopy would)."""
    return value if type(value) in _ATOMS else copy.deepcopy(value)


def _copy(job: Job[Any, Any]) -> Job[Any, Any]:
    # Callers may mutate what they get; the stored job must not change with it.
    return Job(
        id=job.id,
        status=job.status,
        executor=job.executor,
        data=_clone(job.data),
        metadata=_clone(job.metadata),
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        priority=job.priority,
        tags=list(job.tags),
        errors=list(job.errors),
        inserted_at=job.inserted_at,
        scheduled_at=job.scheduled_at,
        attempted_at=job.attempted_at,
        completed_at=job.completed_at,
        cancelled_at=job.cancelled_at,
        discarded_at=job.discarded_at,
        attempted_by=job.attempted_by,
        partition_key=job.partition_key,
        result=_clone(job.result),
        progress=job.progress,
        workflow_id=job.workflow_id,
        workflow_step=job.workflow_step,
        blocked=job.blocked,
        has_dependents=job.has_dependents,
    )
