-- Queued-work notices carry the job id, so that of several idle workers one claims it and the others
-- need not race it for nothing (src/jobs/worker.ts).
CREATE OR REPLACE FUNCTION modelgate_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status = 'queued' THEN
    PERFORM pg_notify('modelgate_jobs_queued', NEW.id);
  ELSIF NEW.status IN ('succeeded', 'failed', 'canceled') THEN
    PERFORM pg_notify('modelgate_jobs_done', NEW.id);
  END IF;
  RETURN NULL;
END $$;
