-- Artifacts are named by their content and shared: another writer may just have stored the same content
-- and not yet recorded its reference. So an artifact found unreferenced is removed only after a grace
-- period, and only if it is still unreferenced then (src/store/artifacts.ts).
CREATE TABLE artifact_removals (
  sha256 text PRIMARY KEY,
  due_at timestamptz NOT NULL
);
CREATE INDEX artifact_removals_due_idx ON artifact_removals (due_at);
-- The reference check looks jobs up by their stored result.
CREATE INDEX jobs_result_sha256_idx ON jobs (result_sha256) WHERE result_sha256 IS NOT NULL;
-- One worker at a time joins a batch's files: it holds this lease meanwhile; a join that failed is tried
-- again once the lease has run out.
ALTER TABLE batches ADD COLUMN finish_lease_until timestamptz;
-- Added by 0008 and never used.
ALTER TABLE batches DROP COLUMN output_bytes;
