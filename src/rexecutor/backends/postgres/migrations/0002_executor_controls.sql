-- Version 2: partition keys, executors' run-time control, and the starts of rate windows.
-- Placeholders: {jobs}, {executors}, {starts}.

ALTER TABLE {jobs} ADD COLUMN partition_key text;

-- A limited claim counts the executor's executing jobs (per partition key).
CREATE INDEX rexecutor_jobs_executing_executor_idx ON {jobs} (executor, partition_key)
    WHERE status = 'executing';

-- One row per executor name that was paused, scaled, or started by a node: operators' state
-- (paused, max_concurrency) and the limits the last starting node's code declares. A limited
-- executor's claims lock its row, which serialises them across every node.
CREATE TABLE {executors} (
    name text PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false,
    max_concurrency integer CHECK (max_concurrency >= 1),
    global_max_concurrency integer CHECK (global_max_concurrency >= 1),
    partition_max_concurrency integer CHECK (partition_max_concurrency >= 1),
    rate_allowed integer CHECK (rate_allowed >= 1),
    rate_period interval,
    rate_per_partition boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The starts of rate-limited executors inside their window (older ones are deleted by the
-- next claim): a sliding window counted exactly.
CREATE TABLE {starts} (
    executor text NOT NULL,
    partition_key text,
    started_at timestamptz NOT NULL
);
CREATE INDEX rexecutor_job_starts_window_idx ON {starts} (executor, started_at);
