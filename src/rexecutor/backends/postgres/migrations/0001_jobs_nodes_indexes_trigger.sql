-- jobs, nodes, indexes and the wake-up trigger
-- Placeholders in braces are identifiers, filled in per schema: {jobs}, {nodes}, {notify_fn}.
-- A version's file is never edited once released: a change is a new numbered file.

CREATE TABLE {jobs} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status text NOT NULL DEFAULT 'scheduled' CHECK (status IN
        ('scheduled', 'executing', 'retryable', 'complete', 'cancelled',
         'discarded')),
    executor text NOT NULL,
    data jsonb NOT NULL DEFAULT 'null',
    metadata jsonb NOT NULL DEFAULT 'null',
    attempt integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    priority integer NOT NULL DEFAULT 0,
    tags text[] NOT NULL DEFAULT ARRAY[]::text[],
    errors jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(errors) = 'array'),
    uniqueness_key bigint,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    scheduled_at timestamptz NOT NULL DEFAULT now(),
    attempted_at timestamptz,
    completed_at timestamptz,
    cancelled_at timestamptz,
    discarded_at timestamptz,
    attempted_by text
);

CREATE INDEX rexecutor_jobs_ready_idx ON {jobs}
    (executor, priority, scheduled_at, id) WHERE status IN ('scheduled', 'retryable');

CREATE INDEX rexecutor_jobs_executor_status_idx ON {jobs}
    (executor, status, scheduled_at);

CREATE INDEX rexecutor_jobs_uniqueness_key_idx ON {jobs}
    (uniqueness_key, id) WHERE uniqueness_key IS NOT NULL;

CREATE INDEX rexecutor_jobs_finished_idx ON {jobs}
    (status, (COALESCE(completed_at, cancelled_at, discarded_at, scheduled_at)), id)
    WHERE status IN ('complete', 'cancelled', 'discarded');

CREATE INDEX rexecutor_jobs_executing_idx ON {jobs}
    (attempted_by) WHERE status = 'executing';

CREATE TABLE {nodes} (
    node_id text PRIMARY KEY,
    host text NOT NULL,
    pid bigint NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- The payload is the executor's name, or '' when it is longer than the 1000 bytes the
-- listener accepts.
CREATE FUNCTION {notify_fn}() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $rexecutor$
BEGIN
    PERFORM pg_notify(
        TG_TABLE_SCHEMA || '_rexecutor_jobs',
        CASE WHEN octet_length(ready.executor) <= 1000
             THEN ready.executor ELSE '' END)
    FROM (SELECT DISTINCT executor FROM rexecutor_new_rows
          WHERE status IN ('scheduled', 'retryable')) AS ready;
    RETURN NULL;
END
$rexecutor$;

CREATE TRIGGER rexecutor_jobs_notify_insert AFTER INSERT ON {jobs}
    REFERENCING NEW TABLE AS rexecutor_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {notify_fn}();

CREATE TRIGGER rexecutor_jobs_notify_update AFTER UPDATE ON {jobs}
    REFERENCING NEW TABLE AS rexecutor_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {notify_fn}();
