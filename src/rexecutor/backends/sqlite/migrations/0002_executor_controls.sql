-- Version 2: partition keys, executors' run-time control, and the starts of rate windows.

ALTER TABLE jobs ADD COLUMN partition_key TEXT;

-- A limited claim counts the executor's executing jobs (per partition key).
CREATE INDEX jobs_executing_by_executor ON jobs (executor, partition_key)
    WHERE status = 'executing';

-- One row per executor name that was paused, scaled, or started by a node: operators' state
-- (paused, max_concurrency) and the limits the last starting node's code declares.
CREATE TABLE executors (
    name                      TEXT    PRIMARY KEY,
    paused                    INTEGER NOT NULL DEFAULT 0,
    max_concurrency           INTEGER,
    global_max_concurrency    INTEGER,
    partition_max_concurrency INTEGER,
    rate_allowed              INTEGER,
    rate_period_us            INTEGER,
    rate_per_partition        INTEGER NOT NULL DEFAULT 0,
    updated_at                INTEGER NOT NULL
);

-- The starts of rate-limited executors inside their window (older ones are deleted by the
-- next claim): a sliding window counted exactly.
CREATE TABLE job_starts (
    executor      TEXT    NOT NULL,
    partition_key TEXT,
    started_at    INTEGER NOT NULL
);
CREATE INDEX job_starts_window ON job_starts (executor, started_at);
