-- A batch's parts are queued while its file is still arriving, so workers start on the first parts at
-- once; uploaded_at is set when the whole file is in (rows_total and parts_total are final then). A batch
-- whose upload stopped without finishing (its gateway died) is canceled by the workers' housekeeping.
ALTER TABLE batches ADD COLUMN uploaded_at timestamptz;
UPDATE batches SET uploaded_at = created_at;
