-- The partitioned layout (opt-in), step 1: the new parent table and its live partition.
-- Placeholders: {jobs} (the table being converted), {new} (its replacement), {schema}.
-- Columns, defaults and checks are the old table's, in the same order (the copy is a plain
-- INSERT ... SELECT *). The partition key is the finished time: NULL, the default
-- partition, while a job is live.
CREATE TABLE {new} (LIKE {jobs} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE ((COALESCE(completed_at, cancelled_at, discarded_at)));
CREATE TABLE {schema}.rexecutor_jobs_live PARTITION OF {new} DEFAULT;
