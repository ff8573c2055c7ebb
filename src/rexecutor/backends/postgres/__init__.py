"""``PostgresBackend``: jobs in PostgreSQL, for production and for many nodes.

Built on psycopg 3 (async) and psycopg_pool. Every node that points at the same database and
schema shares one queue: claims use ``FOR UPDATE SKIP LOCKED``, every transition out of
executing is fenced by the claim's lease, and unique enqueues are serialised with transaction
advisory locks.

Schema
------
All objects live in one schema (``public`` unless told otherwise), created by versioned
migrations recorded in ``<schema>.rexecutor_migrations``:

``rexecutor_jobs``
    ``id`` (bigint identity), ``status`` (text, CHECKed against the six statuses),
    ``executor``, ``data`` and ``metadata`` (jsonb; ``None`` metadata is JSON null), ``attempt``,
    ``max_attempts``, ``priority``, ``tags`` (text[]), ``errors`` (jsonb array of
    ``JobError.to_json()``), ``uniqueness_key`` (bigint, NULL for jobs enqueued without a key),
    ``inserted_at``/``scheduled_at``/``attempted_at``/``completed_at``/``cancelled_at``/
    ``discarded_at`` (timestamptz) and ``attempted_by`` (text, the claiming node).
``rexecutor_nodes``
    ``node_id``, ``host``, ``pid``, ``started_at`` and ``heartbeat_at``.
``rexecutor_jobs_notify()``
    A statement-level ``AFTER INSERT`` / ``AFTER UPDATE`` trigger function that calls
    ``pg_notify('<schema>_rexecutor_jobs', executor)`` once per executor whose rows became (or
    stayed) scheduled or retryable in the statement.

Indexes and the queries they serve
----------------------------------
``rexecutor_jobs_ready_idx``
    ``(executor, priority, scheduled_at, id) WHERE status IN ('scheduled', 'retryable')``:
    the claim, which walks it in claim order and stops after ``limit`` rows. Finished jobs are
    not in it, so claiming stays fast however many of them pile up.
``rexecutor_jobs_executor_status_idx``
    ``(executor, status, scheduled_at)``: ``next_scheduled_at`` (one probe per executor and
    ready status), the duplicate probe of unique jobs whose criteria have an executor but no
    key, and queries that filter on executor and status.
``rexecutor_jobs_uniqueness_key_idx``
    ``(uniqueness_key, id) WHERE uniqueness_key IS NOT NULL``: the duplicate probe of keyed
    unique jobs (earliest match by id).
``rexecutor_jobs_finished_idx``
    ``(status, COALESCE(completed_at, cancelled_at, discarded_at, scheduled_at), id)`` over
    terminal jobs: pruning by age and by count, oldest first, in bounded batches.
``rexecutor_jobs_executing_idx``
    ``(attempted_by) WHERE status = 'executing'``: rescue of orphaned jobs.
Primary keys serve get_job, the fenced marks, ``complete_jobs``, ``lost_jobs``, ``IdIn`` and
the heartbeats.

Time
----
Every "now" is the database's ``now()`` (one value per transaction), or the library clock's
time while a test clock is installed (``rexecutor._clock.set_clock``, ``FakeClock``): every
statement takes a ``now`` parameter, NULL without a test clock. Every timestamp is a
``timestamptz``; delays and windows are shifted in UTC (``(t AT TIME ZONE 'UTC' + delay) AT
TIME ZONE 'UTC'``) so that not even daylight-saving changes of the session's time zone shift
them. Datetimes come back aware, in UTC.

Wake-ups
--------
Operations made through this backend wake the local subscribers directly. Other processes
learn about ready jobs through the trigger's notifications, received by a listener task on a
dedicated connection (started by the first ``subscribe()``), which reconnects with backoff and
wakes every subscriber after a reconnect. Notifications sent by this backend's own pool
connections are skipped (it already woke its subscribers), and payloads are only ever compared
as executor names. Polling every ``poll_interval`` seconds covers everything else.

Transitions
-----------
Every change of a job's status, besides the claim and the batched completion, is one fenced
statement (:meth:`PostgresBackend.apply_transition`, compare-and-set on status, attempt and
node) storing what ``rexecutor.lifecycle`` decided.

Claims and uniqueness
---------------------
A claim is one statement: a ``MATERIALIZED`` CTE picks the first ``limit`` ready jobs in claim
order with ``FOR UPDATE SKIP LOCKED`` (so concurrent claimers never wait for, or get, the same
row), and the ``UPDATE`` makes them executing. A unique enqueue takes, inside its transaction,
the advisory locks named by ``UniquenessCriteria.lock_names`` (hashed with the schema name;
shared or exclusive, in sorted order), then probes for the earliest match and inserts or
replaces in one statement: every enqueue that could conflict with it waits for its commit.
This needs READ COMMITTED (the default), whose statements see what committed before them.

Transactional enqueue
---------------------
``enqueue(job, connection=conn)`` and ``enqueue_many(jobs, connection=conn)`` run on the
caller's connection inside its transaction: the job exists, and other nodes are notified, only
if that transaction commits. ``foreign`` accepts psycopg, SQLAlchemy and asyncpg connections.

Errors
------
Connection failures raise ``BackendError`` naming the server, database or role; missing
privileges raise ``BackendError`` saying which. Values PostgreSQL cannot store (NaN, NUL
characters, out-of-range integers) raise ``ValidationError``. Pool connections are checked
when handed out (with a round trip only when the socket shows the server closed them); reads
and fenced or idempotent writes that lose their connection midway run again on a fresh one.

Package layout
--------------
``backend`` (the class and its domain operations) builds on ``enqueue``, ``claims``, ``pool``
(connections, ``_run`` with retries, migrating) and ``listener``; ``statements`` holds the SQL,
``codec`` reads rows and encodes values, ``query`` compiles query trees, ``errors`` translates
psycopg errors, ``migrations`` applies the numbered ``migrations/*.sql`` files.
"""

from __future__ import annotations

from rexecutor.backends.postgres.backend import PostgresBackend
from rexecutor.backends.postgres.migrations import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "PostgresBackend"]

# The class is public here, where it always lived: its repr and pickles name this module.
PostgresBackend.__module__ = __name__
