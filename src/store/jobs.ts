// Queries on async jobs: the durable queue. Submitters insert; workers claim with FOR UPDATE SKIP LOCKED
// under a lease, renew it while they run, and finish, retry or release; a lease that runs out (a dead
// worker) makes the job claimable again. Every write by a worker is fenced by (lease owner, attempt), so a
// worker that lost its lease can never record a result over another's.
import type { ErrorCode } from '../errors.ts';
import { storableText } from '../text.ts';
import { scheduleArtifactRemovals } from './artifacts.ts';
import type { Db, Queryable } from './db.ts';
import { newId } from './ids.ts';

export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'canceled'];

/** Channels the jobs trigger notifies: queued work, and a finished job (parseDoneNotice). */
export const JOBS_QUEUED_CHANNEL = 'modelgate_jobs_queued';
export const JOBS_DONE_CHANNEL = 'modelgate_jobs_done';

export interface JobError {
  code: ErrorCode;
  message: string;
}

/** A job error as stored: its message may quote what a job was given, and jsonb cannot hold all text. */
const errorJson = ({ code, message }: JobError) => JSON.stringify({ code, message: storableText(message) });

export interface WebhookAttempt {
  at: string;
  ok: boolean;
  status?: number;
  error?: string;
  duration_ms: number;
}

export interface JobRecord {
  id: string;
  tenantId: string;
  modelName: string;
  modelVersion: number;
  input: Record<string, unknown>;
  priority: number;
  status: JobStatus;
  attempts: number;
  maxAttempts: number;
  timeoutMs: number;
  runAfter: Date;
  leaseOwner: string | null;
  leaseExpiresAt: Date | null;
  result: unknown;
  resultSha256: string | null;
  error: JobError | null;
  webhookUrl: string | null;
  webhookStatus: 'pending' | 'delivered' | 'failed' | null;
  webhookAttempts: WebhookAttempt[];
  queuedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** A JobRecord is the row of these columns, each named in camelCase. */
const JOB_COLUMN_NAMES = `id tenant_id model_name model_version input priority status attempts max_attempts
  timeout_ms run_after lease_owner lease_expires_at result result_sha256 error webhook_url webhook_status
  webhook_attempts queued_at started_at finished_at`.split(/\s+/);
const fieldOf = (column: string) =>
  column.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
const selectColumns = (table: string) =>
  JOB_COLUMN_NAMES.map((column) => `${table}${column} AS "${fieldOf(column)}"`).join(', ');
const JOB_COLUMNS = selectColumns('');
const QUALIFIED_JOB_COLUMNS = selectColumns('jobs.');

/** What every move to a terminal status sets besides the status: a webhook becomes due at once. */
const FINISHED = `finished_at = now(), lease_owner = NULL, lease_expires_at = NULL,
  webhook_status = CASE WHEN webhook_url IS NULL THEN NULL ELSE 'pending' END,
  webhook_next_at = CASE WHEN webhook_url IS NULL THEN NULL ELSE now() END`;

/** A job to queue; its id comes from newJobId(), so an idempotency key can point at it before the insert. */
export type NewJob = Pick<
  JobRecord,
  'id' | 'tenantId' | 'modelName' | 'modelVersion' | 'priority' | 'maxAttempts' | 'timeoutMs'
> & {
  /** The request body as JSON text, serialized once (it also weighs the insert batch). */
  inputJson: string;
  webhookUrl: string | undefined;
};

export const newJobId = () => newId('job');

const NOTICE_DATE_FIELDS = ['runAfter', 'leaseExpiresAt', 'queuedAt', 'startedAt', 'finishedAt'] as const;

/**
 * A finished job's notice (0005_jobs_done_notice_row.sql): `<id> <row as JSON>`, or the id alone when the
 * row did not fit. `job()` reads the row into a JobRecord, as a SELECT of JOB_COLUMNS would; it gives
 * undefined for a row it cannot take as that job finished (anyone connected may NOTIFY), and the reader
 * then reads the job from its table. Notices name no job before it has finished, so an unfinished job's
 * id, which only its submitter holds, is not there to forge a notice with.
 */
export function parseDoneNotice(payload: string): { id: string; job?: () => JobRecord | undefined } {
  const space = payload.indexOf(' ');
  if (space < 0) return { id: payload };
  const id = payload.slice(0, space);
  return {
    id,
    job: () => {
      let row: unknown;
      try {
        row = JSON.parse(payload.slice(space + 1));
      } catch {
        return undefined;
      }
      if (typeof row !== 'object' || row === null) return undefined;
      const job: Record<string, unknown> = {};
      for (const column of JOB_COLUMN_NAMES) job[fieldOf(column)] = (row as Record<string, unknown>)[column];
      if (job.id !== id || !TERMINAL_STATUSES.includes(job.status as JobStatus)) return undefined;
      for (const field of NOTICE_DATE_FIELDS) {
        if (typeof job[field] === 'string') job[field] = new Date(job[field]);
      }
      return job as unknown as JobRecord;
    },
  };
}

/**
 * Queues `jobs` in one statement; the trigger wakes the workers when the transaction commits. Returns the
 * queued jobs in the order given.
 */
export async function insertJobs(db: Queryable, jobs: readonly NewJob[]): Promise<JobRecord[]> {
  const rows = await db.query<JobRecord>(
    `INSERT INTO jobs (id, tenant_id, model_name, model_version, input, priority, max_attempts, timeout_ms,
       webhook_url)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::jsonb[], $6::int[], $7::int[],
       $8::int[], $9::text[])
     RETURNING ${JOB_COLUMNS}`,
    [
      jobs.map((job) => job.id),
      jobs.map((job) => job.tenantId),
      jobs.map((job) => job.modelName),
      jobs.map((job) => job.modelVersion),
      jobs.map((job) => job.inputJson),
      jobs.map((job) => job.priority),
      jobs.map((job) => job.maxAttempts),
      jobs.map((job) => job.timeoutMs),
      jobs.map((job) => job.webhookUrl ?? null),
    ],
  );
  const byId = new Map(rows.map((row) => [row.id, row]));
  return jobs.map((job) => byId.get(job.id)!);
}

export async function insertJob(db: Queryable, job: NewJob): Promise<JobRecord> {
  const [queued] = await insertJobs(db, [job]);
  return queued!;
}

/**
 * claimIdempotencyKey($1 tenant, $2 key, $3 hash, $4 job): records the key for the job about to be inserted
 * in the same transaction, or returns the key's existing entry. A concurrent insert of the same key waits
 * here until the first transaction ends, then sees its entry: one key, one job.
 */
export async function claimIdempotencyKey(
  tx: Queryable,
  tenantId: string,
  key: string,
  requestHash: string,
  jobId: string,
): Promise<{ requestHash: string; jobId: string } | undefined> {
  const inserted = await tx.query(
    `INSERT INTO idempotency_keys (tenant_id, key, request_hash, job_id) VALUES ($1, $2, $3, $4)
     ON CONFLICT (tenant_id, key) DO NOTHING RETURNING key`,
    [tenantId, key, requestHash, jobId],
  );
  if (inserted.length > 0) return undefined;
  const [existing] = await tx.query<{ requestHash: string; jobId: string }>(
    `SELECT request_hash AS "requestHash", job_id AS "jobId" FROM idempotency_keys
     WHERE tenant_id = $1 AND key = $2`,
    [tenantId, key],
  );
  return existing;
}

export async function selectJob(db: Queryable, tenantId: string, id: string): Promise<JobRecord | undefined> {
  const [row] = await db.query<JobRecord>(
    `SELECT ${JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 AND id = $2`,
    [tenantId, id],
  );
  return row;
}

export interface JobFilter {
  modelName?: string;
  status?: JobStatus;
  /** Jobs listed after this one (the last job of the previous page). */
  after?: string;
  limit: number;
}

/**
 * A tenant's jobs, newest first, one page (keyset pagination on queued_at, id). The position is read in
 * SQL: a timestamp through JavaScript would lose its microseconds and skip or repeat jobs.
 */
export async function listJobs(db: Queryable, tenantId: string, filter: JobFilter): Promise<JobRecord[]> {
  return db.query<JobRecord>(
    `SELECT ${JOB_COLUMNS} FROM jobs
     WHERE tenant_id = $1 AND batch_id IS NULL
       AND ($2::text IS NULL OR model_name = $2) AND ($3::text IS NULL OR status = $3)
       AND ($4::text IS NULL OR (queued_at, id) < (SELECT queued_at, id FROM jobs WHERE id = $4))
     ORDER BY queued_at DESC, id DESC LIMIT $5`,
    [tenantId, filter.modelName ?? null, filter.status ?? null, filter.after ?? null, filter.limit],
  );
}

/** Cancels a queued or running job; undefined when it is not there or already finished. */
export async function cancelJob(db: Queryable, tenantId: string, id: string): Promise<JobRecord | undefined> {
  const [row] = await db.query<JobRecord>(
    `UPDATE jobs SET status = 'canceled', ${FINISHED}
     WHERE tenant_id = $1 AND id = $2 AND status IN ('queued', 'running') RETURNING ${JOB_COLUMNS}`,
    [tenantId, id],
  );
  return row;
}

/**
 * Claims up to `limit` due jobs for `workerId`, leased for `leaseMs`. Fair across tenants: a skip scan
 * finds every tenant with queued work, each offers its most urgent jobs (priority, then age), and the
 * claim fills the tenants up evenly by the jobs they would then have running; so a tenant's backlog of
 * any size, however old, delays another tenant's job by at most a claim or two. Of batch parts (jobs
 * with a batch_id, each thousands of rows) it takes at most `partLimit`, so that a worker holds no more
 * parts than it can run at once and leaves the others to its peers.
 */
export async function claimJobs(
  db: Queryable,
  workerId: string,
  limit: number,
  leaseMs: number,
  partLimit = limit,
): Promise<JobRecord[]> {
  return db.query<JobRecord>(
    `WITH RECURSIVE tenants AS (
       (SELECT tenant_id FROM jobs WHERE status = 'queued' ORDER BY tenant_id LIMIT 1)
       UNION ALL
       SELECT (SELECT j.tenant_id FROM jobs j
               WHERE j.status = 'queued' AND j.tenant_id > t.tenant_id ORDER BY j.tenant_id LIMIT 1)
       FROM tenants t WHERE t.tenant_id IS NOT NULL
     ),
     offered AS (
       SELECT c.id, c.priority, c.run_after, c.batch_id IS NOT NULL AS is_part,
              r.running + row_number() OVER (PARTITION BY t.tenant_id ORDER BY c.priority DESC, c.run_after, c.id)
                AS share
       FROM tenants t
       CROSS JOIN LATERAL (SELECT count(*) AS running FROM jobs
                           WHERE tenant_id = t.tenant_id AND status = 'running') r
       CROSS JOIN LATERAL (
         SELECT j.id, j.priority, j.run_after, j.batch_id FROM jobs j
         WHERE j.tenant_id = t.tenant_id AND j.status = 'queued' AND j.run_after <= now()
         ORDER BY j.priority DESC, j.run_after, j.id LIMIT $3
         FOR UPDATE SKIP LOCKED
       ) c
       WHERE t.tenant_id IS NOT NULL
     ),
     ranked AS (
       SELECT id, share, priority, run_after, is_part,
              count(*) FILTER (WHERE is_part) OVER (ORDER BY share, priority DESC, run_after, id) AS parts
       FROM offered
     ),
     chosen AS (
       SELECT id FROM ranked WHERE NOT is_part OR parts <= $4
       ORDER BY share, priority DESC, run_after, id LIMIT $3
     ),
     -- A claim need not wait for its commit to reach the disk: one lost in a server crash leaves the job
     -- queued, its result is then refused by the fence, and a later durable commit flushes it anyway.
     -- Saves the claim a WAL flush (~0.3 ms here) on the way from submit to result.
     no_flush AS (SELECT set_config('synchronous_commit', 'off', true))
     UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $1,
       lease_expires_at = now() + make_interval(secs => $2::float8 / 1000),
       started_at = coalesce(started_at, now())
     FROM chosen CROSS JOIN no_flush WHERE jobs.id = chosen.id
     RETURNING ${QUALIFIED_JOB_COLUMNS}`,
    [workerId, leaseMs, limit, partLimit],
  );
}

/** Tells every worker that jobs may be waiting (an empty queued notice): a full worker hands one on. */
export async function announceQueued(db: Queryable): Promise<void> {
  await db.query('SELECT pg_notify(modelgate_channel($1), $2)', [JOBS_QUEUED_CHANNEL, '']);
}

/** A worker's hold on one attempt of a job: what fences its writes. */
export interface JobLease {
  id: string;
  workerId: string;
  attempt: number;
}

const FENCE = `id = $1 AND status = 'running' AND lease_owner = $2 AND attempts = $3`;
const fenceParams = (lease: JobLease) => [lease.id, lease.workerId, lease.attempt];

/** Extends the leases `workerId` still holds among `ids`; returns those (the others were canceled or lost). */
export async function renewLeases(
  db: Queryable,
  workerId: string,
  ids: readonly string[],
  leaseMs: number,
): Promise<string[]> {
  if (ids.length === 0) return [];
  const rows = await db.query<{ id: string }>(
    `UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3::float8 / 1000)
     WHERE id = ANY($2) AND status = 'running' AND lease_owner = $1 RETURNING id`,
    [workerId, ids, leaseMs],
  );
  return rows.map((row) => row.id);
}

export type JobOutcome =
  | { status: 'succeeded'; result: unknown; resultSha256?: undefined }
  | { status: 'succeeded'; result?: undefined; resultSha256: string }
  | { status: 'failed'; error: JobError };

/** A leased attempt and what became of it. */
export interface FinishedAttempt {
  lease: JobLease;
  outcome: JobOutcome;
}

/**
 * Records the outcomes of leased attempts in one statement. Returns, per attempt, whether it was recorded:
 * false when its lease was lost (canceled, or taken over), and then nothing of it is written.
 */
export async function finishJobs(db: Queryable, attempts: readonly FinishedAttempt[]): Promise<boolean[]> {
  const json = (value: unknown) => (value === undefined ? null : JSON.stringify(value));
  const rows = await db.query<{ id: string; attempt: number }>(
    `UPDATE jobs SET status = d.status, result = d.result, result_sha256 = d.result_sha256, error = d.error,
       ${FINISHED}
     FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::jsonb[], $6::text[], $7::jsonb[])
       AS d(id, worker, attempt, status, result, result_sha256, error)
     WHERE jobs.id = d.id AND jobs.status = 'running' AND jobs.lease_owner = d.worker
       AND jobs.attempts = d.attempt
     RETURNING jobs.id, jobs.attempts AS attempt`,
    [
      attempts.map(({ lease }) => lease.id),
      attempts.map(({ lease }) => lease.workerId),
      attempts.map(({ lease }) => lease.attempt),
      attempts.map(({ outcome }) => outcome.status),
      attempts.map(({ outcome }) => (outcome.status === 'succeeded' ? json(outcome.result) : null)),
      attempts.map(({ outcome }) => (outcome.status === 'succeeded' ? (outcome.resultSha256 ?? null) : null)),
      attempts.map(({ outcome }) => (outcome.status === 'failed' ? errorJson(outcome.error) : null)),
    ],
  );
  const recorded = new Set(rows.map((row) => `${row.id}/${row.attempt}`));
  return attempts.map(({ lease }) => recorded.has(`${lease.id}/${lease.attempt}`));
}

/** Queues the leased attempt's job again after `delayMs`, keeping its error; false when the lease was lost. */
export async function retryJob(
  db: Queryable,
  lease: JobLease,
  error: JobError,
  delayMs: number,
): Promise<boolean> {
  const rows = await db.query(
    `UPDATE jobs SET status = 'queued', error = $4, lease_owner = NULL, lease_expires_at = NULL,
       run_after = now() + make_interval(secs => $5::float8 / 1000)
     WHERE ${FENCE} RETURNING id`,
    [...fenceParams(lease), errorJson(error), delayMs],
  );
  return rows.length > 0;
}

/** Hands jobs a draining worker did not finish back to the queue; the attempt does not count. */
export async function releaseJobs(db: Queryable, workerId: string, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) return 0;
  const rows = await db.query(
    `UPDATE jobs SET status = 'queued', attempts = attempts - 1, lease_owner = NULL, lease_expires_at = NULL,
       run_after = now()
     WHERE id = ANY($2) AND status = 'running' AND lease_owner = $1 RETURNING id`,
    [workerId, ids],
  );
  return rows.length;
}

/**
 * Takes back the jobs of workers whose lease ran out (they died or lost the database): queued again, or
 * failed when that was their last attempt. Returns how many jobs were taken back.
 */
export async function recoverExpiredLeases(db: Db): Promise<number> {
  const code: ErrorCode = 'lease_expired';
  return db.transaction(async (tx) => {
    // recoverExpiredLeases($1 error code): the jobs whose last attempt it was fail.
    const failed = await tx.query(
      `UPDATE jobs SET status = 'failed', ${FINISHED},
         error = jsonb_build_object('code', $1::text,
           'message', 'the worker running the last attempt stopped answering')
       WHERE status = 'running' AND lease_expires_at < now() AND attempts >= max_attempts RETURNING id`,
      [code],
    );
    const requeued = await tx.query(
      `UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, run_after = now(),
         error = jsonb_build_object('code', $1::text, 'message', 'the worker running it stopped answering')
       WHERE status = 'running' AND lease_expires_at < now() RETURNING id`,
      [code],
    );
    return failed.length + requeued.length;
  });
}

/**
 * Removes jobs finished more than `jobSeconds` ago and idempotency keys older than `keySeconds`; their
 * result artifacts that nothing else uses are removed after the grace period.
 */
export async function purgeFinishedJobs(db: Db, jobSeconds: number, keySeconds: number): Promise<void> {
  await db.transaction(async (tx) => {
    const removed = await tx.query<{ resultSha256: string | null }>(
      `DELETE FROM jobs WHERE finished_at < now() - make_interval(secs => $1::float8) AND batch_id IS NULL
       RETURNING result_sha256 AS "resultSha256"`,
      [jobSeconds],
    );
    await tx.query(
      `DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1::float8)`,
      [keySeconds],
    );
    await scheduleArtifactRemovals(
      tx,
      removed.map((row) => row.resultSha256),
    );
  });
}

/**
 * Analyzes the jobs table once it has grown to twice the size it was last analyzed at (plus 10 pages), or
 * to twice `analyzedPages` when this caller analyzed it last; returns its size in pages when it did.
 * Plans are cached per connection for the table's size when they were made (the claim is prepared: planning
 * it costs more than running it), so a plan made while the table was nearly empty reads all of it on every
 * claim once it is large (20,000 jobs: 8.4 ms a claim instead of 0.6). Analyzing makes every connection plan
 * again. Autovacuum does that on a server where it is on and keeps up; PGlite has none. Concurrent analyzes
 * skip rather than wait; a role that does not own the table only gets a warning from Postgres.
 */
export async function analyzeJobsIfGrown(db: Queryable, analyzedPages: number): Promise<number | undefined> {
  const [size] = await db.query<{ analyzed: number; pages: number }>(
    `SELECT relpages AS analyzed,
       (pg_relation_size(oid) / current_setting('block_size')::int)::int AS pages
     FROM pg_class WHERE oid = 'jobs'::regclass`,
  );
  if (!size || size.pages < 2 * Math.max(size.analyzed, analyzedPages) + 10) return undefined;
  await db.exec('ANALYZE (SKIP_LOCKED) jobs');
  return size.pages;
}

/** Webhook deliveries due now, each held for `holdMs` so that one dispatcher at a time sends it. */
export async function claimWebhooks(db: Queryable, limit: number, holdMs: number): Promise<JobRecord[]> {
  return db.query<JobRecord>(
    `UPDATE jobs SET webhook_next_at = now() + make_interval(secs => $2::float8 / 1000)
     WHERE id IN (SELECT id FROM jobs WHERE webhook_status = 'pending' AND webhook_next_at <= now()
                  ORDER BY webhook_next_at LIMIT $1 FOR UPDATE SKIP LOCKED)
     RETURNING ${JOB_COLUMNS}`,
    [limit, holdMs],
  );
}

/** Records one delivery attempt: delivered, failed for good, or due again after `retryInMs`. */
export async function recordWebhookAttempt(
  db: Queryable,
  id: string,
  attempt: WebhookAttempt,
  next: { status: 'delivered' | 'failed' } | { status: 'pending'; retryInMs: number },
): Promise<void> {
  await db.query(
    `UPDATE jobs SET webhook_attempts = webhook_attempts || jsonb_build_array($2::jsonb), webhook_status = $3,
       webhook_next_at = CASE WHEN $3 = 'pending' THEN now() + make_interval(secs => $4::float8 / 1000) END
     WHERE id = $1`,
    [id, JSON.stringify(attempt), next.status, next.status === 'pending' ? next.retryInMs : 0],
  );
}
