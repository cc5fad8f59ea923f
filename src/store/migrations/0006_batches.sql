-- Bulk batch runs (issue 4): a CSV or JSONL file through a model. The file is split into parts at submit;
-- each part is a job (jobs.batch_id) whose input names the part's rows in the artifact store and whose
-- result names its output and error rows there. A batch's progress and status are its parts'.
CREATE TABLE batches (
  id            text PRIMARY KEY,
  tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  model_name    text NOT NULL,
  model_version integer NOT NULL,
  -- How rows become model inputs and output rows (src/batch/plan.ts).
  plan          jsonb NOT NULL,
  rows_total    integer NOT NULL,
  parts_total   integer NOT NULL,
  canceled_at   timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now()
);
-- GET /v1/batches: a tenant's batches, newest first.
CREATE INDEX batches_tenant_idx ON batches (tenant_id, created_at DESC, id DESC);

ALTER TABLE jobs ADD COLUMN batch_id text REFERENCES batches (id) ON DELETE CASCADE;
-- The part's place in its batch, from 0: outputs are joined in this order.
ALTER TABLE jobs ADD COLUMN batch_part integer;
-- A batch's parts in order, for its progress and its output.
CREATE INDEX jobs_batch_idx ON jobs (batch_id, batch_part) WHERE batch_id IS NOT NULL;
