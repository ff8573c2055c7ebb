"""``rexecutor jobs list|show|cancel|rerun|retry`` and ``rexecutor prune``.

The operations are :mod:`rexecutor.admin`'s; here they are given their arguments and their
results are printed.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from rexecutor import _views, admin
from rexecutor._workflow_views import WAITING
from rexecutor.backend import Backend, PruneSpec
from rexecutor.cli.errors import EXIT_OK, NothingDone
from rexecutor.cli.output import Cell, Column, Output, clip, short, status_cell, when
from rexecutor.errors import InvalidTransition
from rexecutor.job import Job, JobStatus

__all__ = ["jobs_cancel", "jobs_list", "jobs_rerun", "jobs_retry", "jobs_show", "prune"]


def _filters(
    args: argparse.Namespace, default_statuses: tuple[JobStatus, ...] = ()
) -> admin.Filters:
    statuses = tuple(dict.fromkeys(args.status)) or default_statuses
    return admin.Filters(
        executors=tuple(dict.fromkeys(args.executor)),
        statuses=statuses,
        tags=tuple(dict.fromkeys(args.tag)),
    )


async def jobs_list(backend: Backend, args: argparse.Namespace, out: Output) -> int:
    """``jobs list``: a page of jobs, newest first unless ``--oldest-first``."""
    filters = _filters(args)
    found = await backend.query(
        filters.node(), limit=args.limit, offset=args.offset, newest_first=not args.oldest_first
    )
    if out.json:
        out.dump([_views.job_to_json(job) for job in found])
        return EXIT_OK
    if not found:
        out.line("no jobs match" + (" on this page" if args.offset else ""))
        return EXIT_OK
    names: tuple[str, ...] = ("ID", "EXECUTOR", "STATUS", "ATTEMPT", "TAGS", "WHEN", "DATA")
    # The workflow column only when a job of the page belongs to one: most queues have none.
    in_workflows = any(job.workflow_id for job in found)
    names += ("WORKFLOW", "LAST ERROR") if in_workflows else ("LAST ERROR",)
    columns = [
        Column(name, justify="right" if name == "ID" else "left", no_wrap=True) for name in names
    ]
    rows: list[list[Cell]] = []
    for job in found:
        last = job.errors[-1] if job.errors else None
        rows.append(
            [
                str(int(job.id)),
                job.executor,
                status_cell(job.status),
                f"{job.attempt}/{job.max_attempts}",
                ",".join(job.tags),
                _row_when(job),
                short(job.data, 30),
                *([clip(job.workflow_id or "", 40)] if in_workflows else []),
                clip(f"{last.name or last.error_type.value}: {last.details}", 50) if last else "",
            ]
        )
    out.table(columns, rows)
    first = args.offset + 1
    note = f"jobs {first}-{args.offset + len(found)}"
    if len(found) == args.limit:
        note += f"; next page: --offset {args.offset + args.limit}"
    out.note(note)
    return EXIT_OK


def _row_when(job: Job[Any, Any]) -> str:
    if job.finished_at is not None:
        return f"{job.status.value} {_views.format_age(job.finished_at)}"
    if job.status is JobStatus.EXECUTING:
        return f"started {_views.format_age(job.attempted_at)}"
    if job.blocked:
        return WAITING
    return f"due {_views.format_age(job.scheduled_at)}"


async def jobs_show(backend: Backend, args: argparse.Namespace, out: Output) -> int:
    """``jobs show ID``: one job in full, with its history and errors."""
    job = await backend.get_job(admin.check_job_id(args.id))
    if out.json:
        out.dump(_views.job_to_json(job, history=True))
        return EXIT_OK
    fields: list[list[Cell]] = [
        ["id", str(int(job.id))],
        ["executor", job.executor],
        ["status", status_cell(job.status)],
        ["attempt", f"{job.attempt} of {job.max_attempts}"],
        ["priority", str(job.priority)],
        ["tags", ", ".join(job.tags) or "-"],
    ]
    for label, moment in (
        ("inserted", job.inserted_at),
        ("scheduled", job.scheduled_at),
        ("attempted", job.attempted_at),
        ("completed", job.completed_at),
        ("cancelled", job.cancelled_at),
        ("discarded", job.discarded_at),
    ):
        if moment is not None:
            fields.append([label, when(moment)])
    if job.attempted_by:
        fields.append(["attempted by", job.attempted_by])
    progress = _views.progress_text(job)
    if progress is not None:
        fields.append(["progress", progress])
    fields += _workflow_rows(job)
    out.table([Column(style="bold"), Column()], fields, header=False)
    out.line("\ndata", "bold")
    out.line(_views.dumps_json(job.data, indent=2))
    out.line("\nmetadata", "bold")
    out.line(_views.dumps_json(job.metadata, indent=2))
    if job.result is not None:
        out.line("\nresult", "bold")
        out.line(_views.dumps_json(job.result, indent=2))
    out.line("\nhistory", "bold")
    history: list[list[Cell]] = [
        [when(entry.at), (entry.event, "bold"), entry.detail] for entry in _views.job_history(job)
    ]
    out.table([Column(no_wrap=True), Column(no_wrap=True), Column()], history, header=False)
    if job.errors:
        out.line(f"\nerrors ({len(job.errors)})", "bold")
        for error in job.errors:
            head = f"attempt {error.attempt} · {error.error_type.value}"
            if error.name:
                head += f" · {error.name}"
            out.line(f"{head} · {when(error.recorded_at)}", "red")
            out.line(f"  {error.details}")
            if error.traceback:
                out.line(error.traceback.rstrip(), "dim")
    return EXIT_OK


def _workflow_rows(job: Job[Any, Any]) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    if job.workflow_id is not None:
        rows.append(["workflow", job.workflow_id])
        if job.workflow_step:
            rows.append(["step", job.workflow_step])
    if job.blocked:
        see = ""
        if job.workflow_id:
            see = f": rexecutor workflows show {shlex.quote(job.workflow_id)}"
        rows.append(["waiting", (WAITING + see, "yellow")])
    return rows


async def jobs_cancel(backend: Backend, args: argparse.Namespace, out: Output) -> int:
    """``jobs cancel ID``: cancel one job; nothing done (exit 1) if it had finished."""
    result = await admin.cancel_and_report(backend, admin.check_job_id(args.id), args.reason)
    if out.json:
        out.dump({"id": result.job_id, "cancelled": result.cancelled, "status": result.status})
    if not result.cancelled:
        raise NothingDone(f"job {result.job_id} is already {result.status}: nothing to cancel")
    if not out.json:
        out.line(f"job {result.job_id} cancelled")
    return EXIT_OK


async def jobs_rerun(backend: Backend, args: argparse.Namespace, out: Output) -> int:
    """``jobs rerun ID``: run one job again now; nothing done (exit 1) if it is executing."""
    try:
        job = await admin.rerun_and_read(backend, admin.check_job_id(args.id))
    except InvalidTransition:
        raise NothingDone(
            f"job {args.id} is executing: it cannot be rerun until it finishes (or cancel it)"
        ) from None
    if out.json:
        out.dump(_views.job_to_json(job))
    else:
        out.line(f"job {int(job.id)} is {job.status} again, due {when(job.scheduled_at)}")
    return EXIT_OK


async def jobs_retry(backend: Backend, args: argparse.Namespace, out: Output) -> int:
    """``jobs retry``: run again every job that matches (discarded ones by default)."""
    filters = _filters(args, default_statuses=(JobStatus.DISCARDED,))
    if args.dry_run:
        found = await admin.retry_candidates(backend, filters, limit=args.limit)
        if out.json:
            out.dump({"would_rerun": found})
        else:
            out.line(f"{len(found)} jobs would be rerun")
        return EXIT_OK if found else _nothing_matched(filters)
    report = await admin.retry(backend, filters, limit=args.limit)
    if out.json:
        out.dump(report.to_json())
    else:
        out.line(f"{len(report.rerun)} jobs rerun")
        for job_id, why in report.skipped:
            out.line(f"skipped job {job_id}: {why}", "yellow")
    if not report.rerun:
        return _nothing_matched(filters)
    return EXIT_OK


def _nothing_matched(filters: admin.Filters) -> int:
    parts = [f"status {'/'.join(filters.statuses)}"]
    if filters.executors:
        parts.append(f"executor {'/'.join(filters.executors)}")
    if filters.tags:
        parts.append(f"tags {', '.join(filters.tags)}")
    raise NothingDone(f"no job matched ({'; '.join(parts)}): nothing was retried")


async def prune(backend: Backend, args: argparse.Namespace, out: Output) -> int:
    """``prune``: delete finished jobs once, with the pruner's rules."""
    spec = PruneSpec(
        args.status,
        max_age=args.max_age,
        max_length=args.max_length,
        only=frozenset(args.only) or None,
        exclude=frozenset(args.exclude),
    )
    deleted = await backend.prune_jobs(spec, args.batch_size)
    if out.json:
        out.dump({"deleted": deleted, "status": spec.status.value})
    else:
        out.line(f"deleted {deleted} {spec.status} jobs")
    return EXIT_OK
