-- Version 3: job results, progress, and workflows (dependencies between jobs).
-- Placeholders: {jobs}, {dependencies}.

ALTER TABLE {jobs}
    -- The JSON value a job's Done(result) produced (NULL: none).
    ADD COLUMN result jsonb,
    -- The last progress its current attempt reported (percent, message, at), as JSON.
    ADD COLUMN progress jsonb,
    -- The workflow a job belongs to and its step name there.
    ADD COLUMN workflow_id text,
    ADD COLUMN workflow_step text,
    -- True while a dependency is unfinished: a blocked job is never claimed.
    ADD COLUMN blocked boolean NOT NULL DEFAULT false,
    -- True when other jobs depend on this one: finishing it releases or cancels them.
    ADD COLUMN has_dependents boolean NOT NULL DEFAULT false,
    -- What a failed (discarded or cancelled) dependency does to this job: 'cancel' or 'run'.
    ADD COLUMN on_failed_dependency text
        CHECK (on_failed_dependency IN ('cancel', 'run'));

CREATE TABLE {dependencies} (
    job_id bigint NOT NULL,
    depends_on bigint NOT NULL,
    PRIMARY KEY (job_id, depends_on)
);
CREATE INDEX rexecutor_job_dependencies_depends_on_idx ON {dependencies} (depends_on, job_id);

CREATE INDEX rexecutor_jobs_workflow_idx ON {jobs} (workflow_id) WHERE workflow_id IS NOT NULL;
CREATE INDEX rexecutor_jobs_blocked_idx ON {jobs} (id) WHERE blocked;

-- Claims never look at blocked jobs: the partial index leaves them out, so a large workflow
-- waiting on its first steps costs a claim nothing.
DROP INDEX {schema}.rexecutor_jobs_ready_idx;
CREATE INDEX rexecutor_jobs_ready_idx ON {jobs}
    (executor, priority, scheduled_at, id)
    WHERE status IN ('scheduled', 'retryable') AND NOT blocked;
