-- A finished job's notice carries the job itself (`<id> <row as JSON>`, the columns a read of the job
-- gives: all but webhook_next_at, which is the dispatcher's own) when it fits in a notice, so that a
-- reader waiting for it (Prefer: wait, ?wait=N) answers without reading it again; a larger job's notice
-- carries its id alone, as before (src/store/jobs.ts, parseDoneNotice).
CREATE OR REPLACE FUNCTION modelgate_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  payload text;
BEGIN
  IF NEW.status = 'queued' THEN
    PERFORM pg_notify(modelgate_channel('modelgate_jobs_queued'), txid_current()::text);
  ELSIF NEW.status IN ('succeeded', 'failed', 'canceled') THEN
    -- Notices must be shorter than 8000 bytes; a job whose input and result are larger than that as
    -- stored is not even written out.
    IF coalesce(pg_column_size(NEW.input), 0) + coalesce(pg_column_size(NEW.result), 0) < 8000 THEN
      payload := NEW.id || ' ' || (to_jsonb(NEW) - 'webhook_next_at')::text;
    END IF;
    IF payload IS NULL OR octet_length(payload) >= 8000 THEN
      payload := NEW.id;
    END IF;
    PERFORM pg_notify(modelgate_channel('modelgate_jobs_done'), payload);
  END IF;
  RETURN NULL;
END $$;
