// Async jobs as the gateway offers them: submit (validated against the model, committed before the 202,
// once per Idempotency-Key), read with an optional long poll, list, cancel. Workers run them (worker.ts).
import { createHash } from 'node:crypto';
import type { ArtifactStore } from '../artifacts/store.ts';
import type { Config } from '../config/config.ts';
import { ModelgateError } from '../errors.ts';
import { jobSettings } from '../registry/settings.ts';
import { validateInputs } from '../runtime/tensor.ts';
import type { Predictor } from '../serving/predictor.ts';
import { tensorsFromBody, type PredictBody } from '../serving/predict-body.ts';
import { listenChannel } from '../store/channels.ts';
import { isConnectionLoss, type Db } from '../store/db.ts';
import {
  cancelJob,
  claimIdempotencyKey,
  insertJob,
  insertJobs,
  JOBS_DONE_CHANNEL,
  listJobs,
  newJobId,
  parseDoneNotice,
  selectJob,
  TERMINAL_STATUSES,
  type JobFilter,
  type JobRecord,
  type NewJob,
} from '../store/jobs.ts';
import { WriteBatcher } from '../store/write-batcher.ts';
import { checkWebhookUrl } from '../webhooks/send.ts';
import { listWorkers, type WorkerRecord } from '../store/workers.ts';
import { Alarm } from './alarm.ts';
import { readResult } from './results.ts';

/** A job to queue, as a submit asks for it. */
export interface JobSubmission {
  tenantId: string;
  modelName: string;
  /** What the job runs: the body `/predict` would take. */
  body: PredictBody;
  /** The model version; default: the newest at submit time (recorded on the job). */
  version?: number;
  /** Higher runs first among the tenant's jobs; default 0. */
  priority?: number;
  webhookUrl?: string;
  /** The same key and submission give the same job, once (Idempotency-Key). */
  idempotencyKey?: string;
  /** Hold the answer up to this long for the job to finish (Prefer: wait); default 0. */
  waitSeconds?: number;
}

/** Most input JSON in one insert statement: a statement's parameters stay far below Postgres's 1 GB. */
const MAX_INSERT_BYTES = 8 * 1024 * 1024;
/** Longest long poll: GET /v1/jobs/{id}?wait=N takes 0 ≤ N ≤ this. */
export const MAX_WAIT_SECONDS = 60;
/** A waiting reader also re-reads at this interval, in case a notice was missed (a dropped connection). */
const WAIT_RECHECK_MS = 1000;

/** A reader's hold on a job's finished notices. */
interface Watch {
  alarm: Alarm;
  /** The finished job the last notice brought, if it did (once). */
  take(): JobRecord | undefined;
  stop(): void;
}

export interface SubmitResult {
  job: JobRecord;
  /** True when an earlier submit with the same Idempotency-Key made this job. */
  replayed: boolean;
}

export class JobService {
  /** Readers waiting for a job to finish, by job id; each is given the finished job when its notice has it. */
  private readonly waiters = new Map<string, Set<(job: JobRecord | undefined) => void>>();
  private unlisten: (() => Promise<void>) | undefined;
  /** Submits without an Idempotency-Key, queued together while the previous insert is committing. */
  private readonly inserts = new WriteBatcher<NewJob, JobRecord>((jobs) => insertJobs(this.deps.db, jobs), {
    maxWeight: MAX_INSERT_BYTES,
    weigh: (job) => job.inputJson.length,
  });

  constructor(
    private readonly deps: {
      db: Db;
      predictor: Predictor;
      artifacts: ArtifactStore;
      config: Pick<Config, 'jobMaxAttempts' | 'jobTimeoutMs' | 'jobLeaseMs' | 'webhookAllowPrivateNetworks'>;
    },
  ) {}

  async start(): Promise<void> {
    const wakeAll = () => {
      for (const waiting of this.waiters.values()) for (const wake of waiting) wake(undefined);
    };
    this.unlisten = await listenChannel(
      this.deps.db,
      JOBS_DONE_CHANNEL,
      (payload) => {
        const notice = parseDoneNotice(payload);
        const waiting = this.waiters.get(notice.id);
        if (!waiting) return;
        const job = notice.job?.();
        for (const wake of waiting) wake(job);
      },
      { onReconnect: wakeAll },
    );
  }

  async close(): Promise<void> {
    await this.unlisten?.();
  }

  /**
   * Queues a job. With `waitSeconds`, the answer waits up to that long for the job to finish (Prefer:
   * wait); the waiter is in place before the insert, so the finished notice cannot come too early.
   */
  async submit(submission: JobSubmission): Promise<SubmitResult> {
    const { tenantId, waitSeconds = 0 } = submission;
    const deadline = Date.now() + waitSeconds * 1000;
    const job = this.newJob(submission);
    const watch = waitSeconds > 0 ? this.watch(job.id) : undefined;
    try {
      const submitted = await this.insert(job, submission);
      if (!watch) return submitted;
      if (submitted.replayed) {
        const remainingSeconds = Math.max(0, (deadline - Date.now()) / 1000);
        return { ...submitted, job: await this.get(tenantId, submitted.job.id, remainingSeconds) };
      }
      return { ...submitted, job: await this.waitFor(tenantId, job.id, deadline, watch, submitted.job) };
    } finally {
      watch?.stop();
    }
  }

  private newJob({ tenantId, modelName, body, version, priority = 0, webhookUrl }: JobSubmission): NewJob {
    const resolved = this.deps.predictor.resolve(tenantId, modelName, version);
    // Refused now rather than failed later: the inputs must fit the model.
    validateInputs(tensorsFromBody(body, resolved.version.signature), resolved.version.signature.inputs);
    if (webhookUrl !== undefined) {
      checkWebhookUrl(webhookUrl, { allowPrivateNetworks: this.deps.config.webhookAllowPrivateNetworks });
    }
    const { maxAttempts, timeoutMs } = jobSettings(resolved.model.settings, this.deps.config);
    return {
      id: newJobId(),
      tenantId,
      modelName,
      modelVersion: resolved.version.version,
      inputJson: JSON.stringify(body),
      priority,
      maxAttempts,
      timeoutMs,
      webhookUrl,
    };
  }

  /** Inserts the job, once per Idempotency-Key: a key seen before gives the job it made. */
  private async insert(job: NewJob, submission: JobSubmission): Promise<SubmitResult> {
    const { idempotencyKey } = submission;
    if (idempotencyKey === undefined) return { job: await this.inserts.write(job), replayed: false };
    const { tenantId } = job;
    // What the submit asked for, whatever the order of its fields: the same request under a key.
    const { modelName, body, version, priority, webhookUrl } = submission;
    const requestHash = createHash('sha256')
      .update(JSON.stringify([modelName, version ?? null, priority ?? 0, webhookUrl ?? null, body]))
      .digest('hex');
    return this.deps.db.transaction(async (tx) => {
      const existing = await claimIdempotencyKey(tx, tenantId, idempotencyKey, requestHash, job.id);
      if (!existing) return { job: await insertJob(tx, job), replayed: false };
      if (existing.requestHash !== requestHash) {
        throw new ModelgateError(
          'idempotency_key_reused',
          'this Idempotency-Key was used with a different request; use a new key for a new job',
          { details: { job_id: existing.jobId } },
        );
      }
      const earlier = await selectJob(tx, tenantId, existing.jobId);
      // Kept shorter than its key (jobRetentionSeconds under a day): running it again is what the key forbids.
      if (!earlier) {
        throw new ModelgateError(
          'conflict',
          `the job made under this Idempotency-Key, ${existing.jobId}, has been removed after its retention; ` +
            'use a new key to run it again',
          { details: { job_id: existing.jobId } },
        );
      }
      return { job: earlier, replayed: true };
    });
  }

  /** The job; with `waitSeconds`, waits up to that long for it to finish first. */
  async get(tenantId: string, id: string, waitSeconds = 0): Promise<JobRecord> {
    const deadline = Date.now() + waitSeconds * 1000;
    const watch = waitSeconds > 0 ? this.watch(id) : undefined;
    try {
      return await this.waitFor(tenantId, id, deadline, watch);
    } finally {
      watch?.stop();
    }
  }

  /**
   * Reads the job (unless `job` is known) until it has finished or the deadline has passed. Without a
   * watch it is read once; with one, again after each notice (which may bring the finished job along).
   * When the database goes away during the wait, the answer is the job as last read: it was accepted, and
   * a 503 after a submit would read as if it had not been.
   */
  private async waitFor(
    tenantId: string,
    id: string,
    deadline: number,
    watch: Watch | undefined,
    job?: JobRecord,
  ): Promise<JobRecord> {
    let known = job;
    for (;;) {
      try {
        job ??= await selectJob(this.deps.db, tenantId, id);
      } catch (error) {
        if (known && isConnectionLoss(error)) return known;
        throw error;
      }
      if (!job) throw jobNotFound(id);
      known = job;
      const remainingMs = deadline - Date.now();
      if (TERMINAL_STATUSES.includes(job.status) || remainingMs <= 0 || !watch) return job;
      // A notice that arrived while the job was being read is kept: the next read follows at once.
      await watch.alarm.sleep(Math.min(remainingMs, WAIT_RECHECK_MS));
      job = watch.take();
    }
  }

  /** Rings the watch's alarm whenever the job's finished notice arrives, until stopped. */
  private watch(id: string): Watch {
    const alarm = new Alarm();
    let delivered: JobRecord | undefined;
    const waiter = (job: JobRecord | undefined) => {
      delivered = job;
      alarm.ring();
    };
    let waiting = this.waiters.get(id);
    if (!waiting) this.waiters.set(id, (waiting = new Set()));
    waiting.add(waiter);
    return {
      alarm,
      take: () => {
        const job = delivered;
        delivered = undefined;
        return job;
      },
      stop: () => {
        waiting.delete(waiter);
        if (waiting.size === 0 && this.waiters.get(id) === waiting) this.waiters.delete(id);
      },
    };
  }

  list(tenantId: string, filter: JobFilter): Promise<JobRecord[]> {
    return listJobs(this.deps.db, tenantId, filter);
  }

  /** Cancels a queued or running job (a running one's result is discarded); 409 once it has finished. */
  async cancel(tenantId: string, id: string): Promise<JobRecord> {
    const canceled = await cancelJob(this.deps.db, tenantId, id);
    if (canceled) return canceled;
    const job = await selectJob(this.deps.db, tenantId, id);
    if (!job) throw jobNotFound(id);
    throw new ModelgateError(
      'conflict',
      `job ${id} has already ${job.status}; only queued or running jobs can be canceled`,
      {
        details: { job_id: id, job_status: job.status },
      },
    );
  }

  /** Every registered worker, newest first; silent ones show as gone. */
  listWorkers(): Promise<WorkerRecord[]> {
    return listWorkers(this.deps.db, this.deps.config.jobLeaseMs);
  }

  /** The job's result document, read from the artifact store when it was too large to keep inline. */
  result(job: JobRecord): Promise<unknown> {
    return readResult(this.deps.artifacts, job);
  }
}

export function jobNotFound(id: string): ModelgateError {
  return new ModelgateError('job_not_found', `job ${id} not found`, { details: { job_id: id } });
}
