-- Version 3: job results, progress, and workflows (dependencies between jobs).

-- The JSON value a job's Done(result) produced (NULL: none).
ALTER TABLE jobs ADD COLUMN result TEXT;
-- The last progress its current attempt reported (percent, message, at), as JSON.
ALTER TABLE jobs ADD COLUMN progress TEXT;
-- The workflow a job belongs to and its step name there.
ALTER TABLE jobs ADD COLUMN workflow_id TEXT;
ALTER TABLE jobs ADD COLUMN workflow_step TEXT;
-- 1 while a dependency is unfinished: a blocked job is never claimed.
ALTER TABLE jobs ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;
-- 1 when other jobs depend on this one: finishing it releases or cancels them.
ALTER TABLE jobs ADD COLUMN has_dependents INTEGER NOT NULL DEFAULT 0;
-- What a failed (discarded or cancelled) dependency does to this job: 'cancel' or 'run'.
ALTER TABLE jobs ADD COLUMN on_failed_dependency TEXT;

CREATE TABLE job_dependencies (
    job_id     INTEGER NOT NULL,
    depends_on INTEGER NOT NULL,
    PRIMARY KEY (job_id, depends_on)
) WITHOUT ROWID;
CREATE INDEX job_dependencies_depends_on ON job_dependencies (depends_on, job_id);

CREATE INDEX jobs_workflow ON jobs (workflow_id) WHERE workflow_id IS NOT NULL;
CREATE INDEX jobs_blocked ON jobs (id) WHERE blocked = 1;

-- Claims never look at blocked jobs: the partial index leaves them out, so a large workflow
-- waiting on its first steps costs a claim nothing.
DROP INDEX jobs_ready;
CREATE INDEX jobs_ready ON jobs (executor, priority, scheduled_at, id)
    WHERE status IN ('scheduled', 'retryable') AND blocked = 0;
