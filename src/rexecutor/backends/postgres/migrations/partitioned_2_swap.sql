-- The partitioned layout (opt-in), step 2: copy every job, swap the tables, one id sequence.
-- Placeholders: {jobs}, {new}, {schema}, {sequence} (the sequence's name as a literal).
-- The day partitions for the copied jobs exist by now (created between the two steps).
INSERT INTO {new} SELECT * FROM {jobs};
DROP TABLE {jobs};
ALTER TABLE {new} RENAME TO rexecutor_jobs;
-- PostgreSQL cannot keep a unique index on id alone across partitions: the sequence is what
-- keeps ids unique, and this index keeps lookups by id cheap in every partition.
CREATE SEQUENCE {schema}.rexecutor_jobs_id_seq AS bigint OWNED BY {jobs}.id;
ALTER TABLE {jobs} ALTER COLUMN id SET DEFAULT nextval({sequence}::regclass);
CREATE INDEX rexecutor_jobs_id_idx ON {jobs} (id);
