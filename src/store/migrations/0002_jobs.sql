-- Durable async jobs, their idempotency keys, worker registrations and webhook secrets (issue 3).

-- Standard Webhooks secret (whsec_…) each tenant's deliveries are signed with; set when first needed.
ALTER TABLE tenants ADD COLUMN webhook_secret text;

CREATE TABLE jobs (
  id                text PRIMARY KEY,
  tenant_id         text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  model_name        text NOT NULL,
  -- The version the job runs: named by the submitter, or the newest when it was submitted.
  model_version     integer NOT NULL,
  -- The request body, as POST /v1/models/{name}/predict takes it: {"inputs": …} or {"instances": …}.
  input             jsonb NOT NULL,
  priority          integer NOT NULL DEFAULT 0,
  -- queued | running | succeeded | failed | canceled
  status            text NOT NULL DEFAULT 'queued',
  attempts          integer NOT NULL DEFAULT 0,
  max_attempts      integer NOT NULL,
  timeout_ms        integer NOT NULL,
  -- Not claimed before this (retry backoff).
  run_after         timestamptz NOT NULL DEFAULT now(),
  -- The worker holding the job and until when; a lease that runs out makes the job claimable again.
  lease_owner       text,
  lease_expires_at  timestamptz,
  -- The prediction ({model, version, outputs}) inline, or the sha256 of it in the artifact store.
  result            jsonb,
  result_sha256     text,
  -- The last failure, {code, message}: on a job waiting to be retried, or one that failed.
  error             jsonb,
  webhook_url       text,
  -- pending | delivered | failed; null without a webhook_url.
  webhook_status    text,
  webhook_attempts  jsonb NOT NULL DEFAULT '[]',
  webhook_next_at   timestamptz,
  queued_at         timestamptz NOT NULL DEFAULT now(),
  started_at        timestamptz,
  finished_at       timestamptz
);
-- Claims: a skip scan over the tenants with queued work, then each tenant's most urgent jobs.
CREATE INDEX jobs_claim_idx ON jobs (tenant_id, priority DESC, run_after, id) WHERE status = 'queued';
-- Leases to take back from workers that went silent.
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE status = 'running';
-- Each tenant's running jobs, which claims count to share the workers fairly.
CREATE INDEX jobs_running_idx ON jobs (tenant_id) WHERE status = 'running';
-- Listing a tenant's jobs, newest first.
CREATE INDEX jobs_tenant_idx ON jobs (tenant_id, queued_at DESC, id DESC);
-- Webhooks due.
CREATE INDEX jobs_webhook_idx ON jobs (webhook_next_at) WHERE webhook_status = 'pending';
-- Retention.
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- Wake-ups: workers hear of queued work, waiting readers of finished jobs (GET /v1/jobs/{id}?wait=N).
-- Equal notices in one transaction are delivered once, so a bulk insert wakes the workers once.
CREATE FUNCTION modelgate_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status = 'queued' THEN
    PERFORM pg_notify('modelgate_jobs_queued', '');
  ELSIF NEW.status IN ('succeeded', 'failed', 'canceled') THEN
    PERFORM pg_notify('modelgate_jobs_done', NEW.id);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OF status ON jobs
  FOR EACH ROW EXECUTE FUNCTION modelgate_jobs_notify();

CREATE TABLE idempotency_keys (
  tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  key           text NOT NULL,
  -- SHA-256 of the request (model, version and body): the same key with another request is refused.
  request_hash  text NOT NULL,
  job_id        text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

CREATE TABLE workers (
  id            text PRIMARY KEY,
  host          text NOT NULL,
  pid           integer NOT NULL,
  -- active | draining | stopped | gone
  status        text NOT NULL DEFAULT 'active',
  started_at    timestamptz NOT NULL DEFAULT now(),
  heartbeat_at  timestamptz NOT NULL DEFAULT now(),
  -- Heartbeat details: models loaded, jobs in flight, RSS, CPU seconds.
  stats         jsonb NOT NULL DEFAULT '{}'
);
