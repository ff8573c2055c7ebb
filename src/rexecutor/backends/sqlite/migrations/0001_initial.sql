-- Version 1: the jobs and nodes tables with their indexes.

-- AUTOINCREMENT: ids are never reused, even after the newest jobs are pruned, so an id a
-- caller kept can never name a different job later.
CREATE TABLE jobs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    status         TEXT    NOT NULL CHECK (status IN ('scheduled', 'executing',
                       'retryable', 'complete', 'cancelled', 'discarded')),
    executor       TEXT    NOT NULL,
    data           TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    -- The text that equality queries compare, when it differs from data/metadata:
    -- integral floats written as integers, because 1 and 1.0 are equal JSON numbers.
    data_eq        TEXT,
    metadata_eq    TEXT,
    attempt        INTEGER NOT NULL,
    max_attempts   INTEGER NOT NULL,
    priority       INTEGER NOT NULL,
    tags           TEXT    NOT NULL,
    errors         TEXT    NOT NULL,
    uniqueness_key INTEGER,
    inserted_at    INTEGER NOT NULL,
    scheduled_at   INTEGER NOT NULL,
    attempted_at   INTEGER,
    attempted_by   TEXT,
    completed_at   INTEGER,
    cancelled_at   INTEGER,
    discarded_at   INTEGER
);

-- The claim walks this in claim order and stops after `limit` due rows; being partial,
-- it only ever holds waiting jobs, so finished history does not slow claims down.
CREATE INDEX jobs_ready ON jobs (executor, priority, scheduled_at, id)
    WHERE status IN ('scheduled', 'retryable');

-- next_scheduled_at (a MIN per executor) and uniqueness windows over waiting jobs.
CREATE INDEX jobs_due ON jobs (executor, scheduled_at)
    WHERE status IN ('scheduled', 'retryable');

-- Pruning by age or by count, newest finished first.
CREATE INDEX jobs_finished ON jobs (
    status, COALESCE(completed_at, cancelled_at, discarded_at, scheduled_at), id
) WHERE status IN ('complete', 'cancelled', 'discarded');

CREATE INDEX jobs_uniqueness ON jobs (uniqueness_key) WHERE uniqueness_key IS NOT NULL;

-- Rescue looks only at executing jobs.
CREATE INDEX jobs_executing ON jobs (attempted_by) WHERE status = 'executing';

CREATE TABLE nodes (
    node_id      TEXT    PRIMARY KEY,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
