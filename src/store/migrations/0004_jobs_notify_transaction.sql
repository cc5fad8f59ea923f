-- NOTIFY reaches every session of the database, whatever its schema: modelgate's channels are named
-- after the schema its tables are in, so that installations (or test runs) in other schemas of the same
-- database never wake each other. Listeners get the name from here too (src/store/channels.ts).
CREATE FUNCTION modelgate_channel(name text) RETURNS text LANGUAGE sql STABLE
  AS $$ SELECT name || '_' || left(md5(current_schema()), 8) $$;

-- Queued-work notices carry the queuing transaction's id rather than the job's: Postgres delivers one
-- notice per distinct payload and transaction, so a batch of jobs queued together wakes one worker once,
-- and that worker claims the batch (src/jobs/worker.ts).
CREATE OR REPLACE FUNCTION modelgate_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status = 'queued' THEN
    PERFORM pg_notify(modelgate_channel('modelgate_jobs_queued'), txid_current()::text);
  ELSIF NEW.status IN ('succeeded', 'failed', 'canceled') THEN
    PERFORM pg_notify(modelgate_channel('modelgate_jobs_done'), NEW.id);
  END IF;
  RETURN NULL;
END $$;

-- Workers joining, draining, stopping or going silent: every worker re-reads its peers at once, so that
-- all of them agree which one a notice is for.
CREATE FUNCTION modelgate_workers_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify(modelgate_channel('modelgate_workers'), '');
  RETURN NULL;
END $$;

CREATE TRIGGER workers_notify_insert AFTER INSERT ON workers
  FOR EACH ROW EXECUTE FUNCTION modelgate_workers_notify();
CREATE TRIGGER workers_notify_status AFTER UPDATE OF status ON workers
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION modelgate_workers_notify();
