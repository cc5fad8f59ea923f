-- A batch's output and row errors become one object each in the artifact store once all its parts have
-- finished: joined from the parts' objects (which are removed then) by the worker that finished the last
-- part, or by housekeeping after a crash. finished_at is when that was done; finished batches are removed
-- with their files after the job retention.
ALTER TABLE batches ADD COLUMN output_sha256 text;
ALTER TABLE batches ADD COLUMN output_bytes bigint;
ALTER TABLE batches ADD COLUMN errors_sha256 text;
ALTER TABLE batches ADD COLUMN finished_at timestamptz;
-- Housekeeping's look for batches to finish, and retention's for finished ones.
CREATE INDEX batches_unfinished_idx ON batches (created_at) WHERE finished_at IS NULL;
CREATE INDEX batches_finished_idx ON batches (finished_at) WHERE finished_at IS NOT NULL;
