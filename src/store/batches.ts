// Queries on batch runs (0006_batches.sql). A batch row holds what was submitted; its parts are jobs
// (jobs.batch_id, jobs.batch_part), and its status and progress are read from them.
import { scheduleArtifactRemovals } from './artifacts.ts';
import type { Db, Queryable } from './db.ts';
import { newId } from './ids.ts';
import type { JobError, JobStatus } from './jobs.ts';

export const newBatchId = () => newId('bat');

export type BatchStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';

/** What a finished part records as its result: where its rows went and how many. */
export interface PartResult {
  /** Artifact with the part's output rows (no header), in input order. */
  output: string;
  /** Artifact with the part's row errors, in input order; null when it had none. */
  errors: string | null;
  rows: number;
  failed: number;
  /** The prediction columns, as the output header names them. */
  predictionColumns: string[];
}

export interface BatchRecord {
  id: string;
  tenantId: string;
  modelName: string;
  modelVersion: number;
  plan: unknown;
  rowsTotal: number;
  partsTotal: number;
  canceledAt: Date | null;
  createdAt: Date;
  /** When every part had finished and the output and errors were joined into one object each. */
  finishedAt: Date | null;
  outputSha256: string | null;
  errorsSha256: string | null;
  /** Parts by status, rows done and failed in finished parts, when the first part started, and the first error. */
  progress: {
    partsRunning: number;
    partsSucceeded: number;
    partsFailed: number;
    rowsDone: number;
    rowsFailed: number;
    startedAt: Date | null;
    /** The first part that failed for good, if any. */
    error: JobError | null;
  };
}

export interface BatchPart {
  part: number;
  status: JobStatus;
  /** The artifact with the part's input rows. */
  input: string;
  result: PartResult | null;
}

const BATCH_SELECT = `SELECT b.id, b.tenant_id AS "tenantId", b.model_name AS "modelName",
    b.model_version AS "modelVersion", b.plan, b.rows_total AS "rowsTotal", b.parts_total AS "partsTotal",
    b.canceled_at AS "canceledAt", b.created_at AS "createdAt",
    b.finished_at AS "finishedAt", b.output_sha256 AS "outputSha256", b.errors_sha256 AS "errorsSha256",
    (SELECT json_build_object(
       'partsRunning', count(*) FILTER (WHERE j.status = 'running'),
       'partsSucceeded', count(*) FILTER (WHERE j.status = 'succeeded'),
       'partsFailed', count(*) FILTER (WHERE j.status IN ('failed', 'canceled')),
       'rowsDone', coalesce(sum((j.result->>'rows')::int) FILTER (WHERE j.status = 'succeeded'), 0),
       'rowsFailed', coalesce(sum((j.result->>'failed')::int) FILTER (WHERE j.status = 'succeeded'), 0),
       'startedAt', min(j.started_at),
       'error', (array_agg(j.error ORDER BY j.batch_part) FILTER (WHERE j.status = 'failed'))[1])
     FROM jobs j WHERE j.batch_id = b.id) AS progress
  FROM batches b`;

/** Reads the dates json_build_object left as text. */
function withDates(batch: BatchRecord): BatchRecord {
  const { progress } = batch;
  progress.startedAt = progress.startedAt ? new Date(progress.startedAt) : null;
  return batch;
}

/** A batch as its upload begins, with the job settings its parts get. */
export type NewBatch = Pick<BatchRecord, 'id' | 'tenantId' | 'modelName' | 'modelVersion' | 'plan'> & {
  maxAttempts: number;
  timeoutMs: number;
};

/** insertBatch: the batch, before any of its parts, while its file is still arriving (uploaded_at unset). */
export async function insertBatch(db: Queryable, batch: NewBatch): Promise<void> {
  await db.query(
    `INSERT INTO batches (id, tenant_id, model_name, model_version, plan, rows_total, parts_total)
     VALUES ($1, $2, $3, $4, $5, 0, 0)`,
    [batch.id, batch.tenantId, batch.modelName, batch.modelVersion, JSON.stringify(batch.plan)],
  );
}

/**
 * queueBatchParts: one queued job per part input, numbered from `first`; workers may start on them at once.
 * False, queueing nothing, when the batch has been canceled (the row lock orders this against cancelBatch).
 */
export async function queueBatchParts(
  db: Queryable,
  batch: NewBatch,
  first: number,
  inputs: readonly string[],
): Promise<boolean> {
  const queued = await db.query(
    `INSERT INTO jobs (id, tenant_id, model_name, model_version, input, max_attempts, timeout_ms, batch_id,
       batch_part)
     SELECT 'job_' || $1 || '_' || (part + $7), $2, $3, $4, input, $5, $6, $1, part + $7 - 1
     FROM unnest($8::jsonb[]) WITH ORDINALITY AS p(input, part)
     WHERE EXISTS (SELECT 1 FROM batches WHERE id = $1 AND canceled_at IS NULL FOR SHARE)
     RETURNING id`,
    [
      batch.id,
      batch.tenantId,
      batch.modelName,
      batch.modelVersion,
      batch.maxAttempts,
      batch.timeoutMs,
      first,
      inputs,
    ],
  );
  return queued.length > 0;
}

/** completeBatchUpload($1 id, $2 rows, $3 parts): the whole file is in; its totals are final. */
export async function completeBatchUpload(
  db: Queryable,
  id: string,
  rowsTotal: number,
  partsTotal: number,
): Promise<void> {
  await db.query(`UPDATE batches SET rows_total = $2, parts_total = $3, uploaded_at = now() WHERE id = $1`, [
    id,
    rowsTotal,
    partsTotal,
  ]);
}

/**
 * cancelStalledUploads($1 seconds): cancels the batches whose upload stopped without finishing (no part
 * queued for that long: the gateway receiving it died), with their parts; returns how many.
 */
export async function cancelStalledUploads(db: Queryable, stalledSeconds: number): Promise<number> {
  const stalled = await db.query<{ id: string; tenantId: string }>(
    `SELECT b.id, b.tenant_id AS "tenantId" FROM batches b
     WHERE b.uploaded_at IS NULL AND b.canceled_at IS NULL
       AND coalesce((SELECT max(j.queued_at) FROM jobs j WHERE j.batch_id = b.id), b.created_at)
           < now() - make_interval(secs => $1::float8)`,
    [stalledSeconds],
  );
  for (const batch of stalled) await cancelBatch(db, batch.tenantId, batch.id);
  return stalled.length;
}

/** selectBatch($1 tenant, $2 id): the batch with its progress, or undefined (also another tenant's). */
export async function selectBatch(
  db: Queryable,
  tenantId: string,
  id: string,
): Promise<BatchRecord | undefined> {
  const [row] = await db.query<BatchRecord>(`${BATCH_SELECT} WHERE b.tenant_id = $1 AND b.id = $2`, [
    tenantId,
    id,
  ]);
  return row && withDates(row);
}

/** listBatches($1 tenant, $2 after id, $3 limit): newest first, after the cursor. */
export async function listBatches(
  db: Queryable,
  tenantId: string,
  after: string | undefined,
  limit: number,
): Promise<BatchRecord[]> {
  const rows = await db.query<BatchRecord>(
    `${BATCH_SELECT}
     WHERE b.tenant_id = $1
       AND ($2::text IS NULL OR (b.created_at, b.id) < (SELECT created_at, id FROM batches WHERE id = $2))
     ORDER BY b.created_at DESC, b.id DESC LIMIT $3`,
    [tenantId, after ?? null, limit],
  );
  return rows.map(withDates);
}

/** selectBatchParts($1 batch): its parts in order, with their status, input and result. */
export async function selectBatchParts(db: Queryable, batchId: string): Promise<BatchPart[]> {
  return db.query<BatchPart>(
    `SELECT batch_part AS part, status, input->'batchPart'->>'input' AS input, result
     FROM jobs WHERE batch_id = $1 ORDER BY batch_part`,
    [batchId],
  );
}

/** A batch is done when its file is in (or it was canceled) and none of its parts is still to run. */
const BATCH_DONE = `b.finished_at IS NULL AND (b.uploaded_at IS NOT NULL OR b.canceled_at IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id AND j.status IN ('queued', 'running'))`;

/**
 * claimDoneBatch($1 id, $2 seconds): when the batch is done but not finished and no one is joining its
 * files, leases the join to the caller for that long and returns the batch's plan; else undefined.
 */
export async function claimDoneBatch(
  db: Queryable,
  id: string,
  leaseSeconds: number,
): Promise<{ plan: unknown } | undefined> {
  const [claimed] = await db.query<{ plan: unknown }>(
    `UPDATE batches b SET finish_lease_until = now() + make_interval(secs => $2::float8)
     WHERE b.id = $1 AND ${BATCH_DONE}
       AND (b.finish_lease_until IS NULL OR b.finish_lease_until < now())
     RETURNING b.plan`,
    [id, leaseSeconds],
  );
  return claimed;
}

/** selectDoneBatchIds(): batches done but not finished and not being joined (their last worker died first). */
export async function selectDoneBatchIds(db: Queryable): Promise<string[]> {
  const rows = await db.query<{ id: string }>(
    `SELECT b.id FROM batches b
     WHERE ${BATCH_DONE} AND (b.finish_lease_until IS NULL OR b.finish_lease_until < now())
     ORDER BY b.created_at LIMIT 100`,
  );
  return rows.map((row) => row.id);
}

/**
 * finishBatch($1 id, $2 output, $3 errors): records the batch's joined files and that it has finished;
 * false when it had already (another worker joined the same files first).
 */
export async function finishBatch(
  db: Queryable,
  id: string,
  files: { output: string; errors: string },
): Promise<boolean> {
  const rows = await db.query(
    `UPDATE batches SET output_sha256 = $2, errors_sha256 = $3, finished_at = now()
     WHERE id = $1 AND finished_at IS NULL RETURNING id`,
    [id, files.output, files.errors],
  );
  return rows.length > 0;
}

/**
 * purgeFinishedBatches($1 seconds): deletes the batches finished longer ago than that, with their parts;
 * their files, unless something else uses them, are removed after the grace period.
 */
export async function purgeFinishedBatches(db: Db, seconds: number): Promise<void> {
  await db.transaction(async (tx) => {
    const removed = await tx.query<{ output: string | null; errors: string | null }>(
      `DELETE FROM batches WHERE finished_at < now() - make_interval(secs => $1::float8)
       RETURNING output_sha256 AS output, errors_sha256 AS errors`,
      [seconds],
    );
    await scheduleArtifactRemovals(
      tx,
      removed.flatMap((batch) => [batch.output, batch.errors]),
    );
  });
}

/**
 * cancelBatch($1 tenant, $2 id): marks the batch canceled and cancels its unfinished parts (a running part's
 * result is then discarded); false when there is no such batch, or it has finished or was canceled before.
 */
export async function cancelBatch(tx: Queryable, tenantId: string, id: string): Promise<boolean> {
  const rows = await tx.query(
    `UPDATE batches SET canceled_at = now()
     WHERE tenant_id = $1 AND id = $2 AND canceled_at IS NULL AND finished_at IS NULL RETURNING id`,
    [tenantId, id],
  );
  if (rows.length === 0) return false;
  await tx.query(
    `UPDATE jobs SET status = 'canceled', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL
     WHERE batch_id = $1 AND status IN ('queued', 'running')`,
    [id],
  );
  return true;
}
