// A job worker: claims jobs from the durable queue (woken by NOTIFY, polling as a fallback), runs them
// through the same predictor and batchers as real-time requests, renews their leases while they run,
// and records each outcome: a result, a retry after backoff, or a failure. It registers itself and
// heartbeats so operators see it in GET /v1/workers. Draining stops claiming, lets in-flight jobs finish
// within a grace period and hands the rest back to the queue.
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { ArtifactStore } from '../artifacts/store.ts';
import type { Config } from '../config/config.ts';
import { isModelgateError, type ErrorCode } from '../errors.ts';
import { Alarm } from './alarm.ts';
import type { OutageReporter } from './outage.ts';
import type { Metrics } from '../observability/metrics.ts';
import { predictionToJson, tensorsFromBody, type PredictBody } from '../serving/predict-body.ts';
import type { Predictor } from '../serving/predictor.ts';
import { listenChannel } from '../store/channels.ts';
import { isConnectionLoss, type Db } from '../store/db.ts';
import { newId } from '../store/ids.ts';
import {
  analyzeJobsIfGrown,
  announceQueued,
  claimJobs,
  finishJobs,
  JOBS_QUEUED_CHANNEL,
  purgeFinishedJobs,
  recoverExpiredLeases,
  releaseJobs,
  renewLeases,
  retryJob,
  type FinishedAttempt,
  type JobError,
  type JobLease,
  type JobOutcome,
  type JobRecord,
} from '../store/jobs.ts';
import {
  heartbeatWorker,
  listActiveWorkerIds,
  markGoneWorkers,
  registerWorker,
  setWorkerStatus,
  WORKERS_CHANNEL,
} from '../store/workers.ts';
import { WriteBatcher } from '../store/write-batcher.ts';
import {
  cancelStalledUploads,
  purgeFinishedBatches,
  selectDoneBatchIds,
  type PartResult,
} from '../store/batches.ts';
import { scheduleArtifactRemovals, takeDueArtifactRemovals } from '../store/artifacts.ts';
import { finishBatchIfDone } from '../batch/finish.ts';
import { storeResult } from './results.ts';
import { isPartInput, runBatchPart } from '../batch/part.ts';
import { retryDelayMs } from './backoff.ts';

export type WorkerConfig = Pick<
  Config,
  | 'workerConcurrency'
  | 'batchPartsPerWorker'
  | 'jobLeaseMs'
  | 'jobPollMs'
  | 'jobRetryBaseMs'
  | 'jobRetentionSeconds'
  | 'inlineResultBytes'
  | 'drainGraceMs'
>;

/** Failures worth another attempt: the runtime or the machine, not the job's own inputs. */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'inference_failed',
  'timeout',
  'queue_full',
  'internal',
  'not_ready',
  'runtime_unavailable',
  'upstream_timeout',
  'upstream_failed',
]);
/** Idempotency keys live at least this long, whatever the job retention. */
const MIN_KEY_RETENTION_SECONDS = 24 * 3600;
const HOUSEKEEPING_INTERVAL_MS = 60_000;
/** A batch upload with no new part for this long has lost its gateway: its batch is canceled. */
const STALLED_UPLOAD_SECONDS = 600;
/** How often a worker with jobs in flight looks for jobs without a notice. */
const BUSY_POLL_MS = 100;
/** A failed claim is tried again after this, doubled (with jitter) per failure in a row up to the cap. */
const CLAIM_RETRY_BASE_MS = 100;
const CLAIM_RETRY_MAX_MS = 5000;
/** How often a worker looks whether the jobs table has outgrown the plans made for it (analyzeJobsIfGrown). */
const TABLE_SIZE_CHECK_MS = 2000;

/** FNV-1a: a cheap, stable spread of job ids over workers. */
function hashOf(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return hash;
}

export class JobWorker {
  readonly id = newId('wrk');
  private readonly inFlight = new Set<string>();
  /** Batch parts among the jobs in flight (at most batchPartsPerWorker). */
  private partsInFlight = 0;
  private stopping = false;
  private readonly alarm = new Alarm();
  private loop: Promise<void> | undefined;
  private timers: NodeJS.Timeout[] = [];
  private unlisten: (() => Promise<void>) | undefined;
  /** Jobs may be waiting that this worker was told of while full, or that its last claim left behind. */
  private owed = true;
  /** The active workers (this one included), as of the last heartbeat. */
  private peers: string[] = [];
  /** The jobs table's size in pages when this worker last analyzed it. */
  private analyzedPages = 0;
  /** Claims that failed in a row; each failure waits longer before the next. */
  private claimFailures = 0;
  /** Outcomes are recorded together while the previous ones are committing (a batch finishes at once). */
  private readonly finishes = new WriteBatcher<FinishedAttempt, boolean>((attempts) =>
    finishJobs(this.deps.db, attempts),
  );

  constructor(
    private readonly deps: {
      db: Db;
      predictor: Predictor;
      artifacts: ArtifactStore;
      logger: Logger;
      metrics: Metrics;
      config: WorkerConfig;
      /** Shared with the process's webhook deliveries. */
      outage: OutageReporter;
    },
  ) {}

  async start(): Promise<void> {
    const { db, config } = this.deps;
    await registerWorker(db, { id: this.id, host: hostname(), pid: process.pid });
    await this.refreshPeers();
    const refreshPeers = () => this.runTask(() => this.refreshPeers());
    const listening = [
      await listenChannel(db, JOBS_QUEUED_CHANNEL, (payload) => this.onQueued(payload), {
        onReconnect: () => this.notify(),
      }),
      await listenChannel(db, WORKERS_CHANNEL, refreshPeers, { onReconnect: refreshPeers }),
    ];
    this.unlisten = async () => {
      for (const unlisten of listening) await unlisten();
    };
    this.every(config.jobLeaseMs / 3, () => this.heartbeat());
    // Off the path from notice to claim: a taken-back job is queued again, and its notice wakes a worker.
    this.every(config.jobLeaseMs / 3, () => this.recoverLeases());
    this.every(HOUSEKEEPING_INTERVAL_MS, () => this.housekeeping());
    this.every(TABLE_SIZE_CHECK_MS, async () => {
      this.analyzedPages = (await analyzeJobsIfGrown(this.deps.db, this.analyzedPages)) ?? this.analyzedPages;
    });
    // Also at once: a worker restarted after a while catches up on what has expired meanwhile.
    this.runTask(() => this.recoverLeases());
    this.runTask(() => this.housekeeping());
    this.loop = this.run();
    this.deps.logger.info({ worker: this.id, concurrency: config.workerConcurrency }, 'job worker started');
  }

  private every(ms: number, task: () => Promise<void>): void {
    const timer = setInterval(() => this.runTask(task), ms);
    timer.unref();
    this.timers.push(timer);
  }

  private runTask(task: () => Promise<void>): void {
    const startedAtMs = performance.now();
    task().then(
      () => this.deps.outage.reached(startedAtMs),
      (error: unknown) => this.deps.outage.failed(error, 'worker task failed', startedAtMs),
    );
  }

  /**
   * Jobs were queued (the payload names the transaction that queued them). Every worker hears it, but only
   * one, picked by the payload among the active workers, claims at once: the others would only race it to
   * an empty claim. That one, when full, hands the notice on to all (an empty payload), so that any worker
   * with room claims the jobs; a full worker keeps a claim owed for its next free slot. A worker that is
   * gone without saying so leaves its share to the poll until its peers see it gone.
   */
  private onQueued(payload: string): void {
    const { peers } = this;
    const index = peers.indexOf(this.id);
    const designated =
      payload === '' || peers.length <= 1 || index < 0 || hashOf(payload) % peers.length === index;
    if (!designated) return;
    if (this.inFlight.size < this.deps.config.workerConcurrency) return this.notify();
    this.owed = true;
    if (payload !== '' && peers.length > 1) {
      announceQueued(this.deps.db).catch((error: unknown) =>
        this.deps.logger.warn({ err: error, worker: this.id }, 'handing a notice on failed'),
      );
    }
  }

  private async refreshPeers(): Promise<void> {
    this.peers = await listActiveWorkerIds(this.deps.db, this.deps.config.jobLeaseMs);
  }

  private notify(): void {
    this.alarm.ring();
  }

  private async run(): Promise<void> {
    const { db, config, logger } = this.deps;
    while (!this.stopping) {
      const free = config.workerConcurrency - this.inFlight.size;
      let claimed = 0;
      if (free > 0) {
        const claimedAtMs = performance.now();
        try {
          const partsFree = Math.max(0, config.batchPartsPerWorker - this.partsInFlight);
          const jobs = await claimJobs(db, this.id, free, config.jobLeaseMs, partsFree);
          claimed = jobs.length;
          this.owed = claimed === free;
          const parts = jobs.filter((job) => isPartInput(job.input)).length;
          // Parts beyond this worker's share may be waiting: the other workers are told to look.
          if (parts > 0 && parts === partsFree && this.peers.length > 1) {
            announceQueued(db).catch((error: unknown) =>
              logger.warn({ err: error, worker: this.id }, 'handing a notice on failed'),
            );
          }
          for (const job of jobs) this.launch(job);
          this.claimFailures = 0;
          this.deps.outage.reached(claimedAtMs);
        } catch (error) {
          this.deps.outage.failed(error, 'claiming jobs failed; retrying with backoff', claimedAtMs);
          this.claimFailures++;
          // A notice (none comes while the database is away) or a finished job may end the wait early.
          await this.alarm.sleep(retryDelayMs(CLAIM_RETRY_BASE_MS, this.claimFailures, CLAIM_RETRY_MAX_MS));
          continue;
        }
      } else {
        this.owed = true;
      }
      // More may be waiting: claim again at once while there is room; otherwise wait for a notice (one
      // that came during the claim ends the wait at once) or the poll.
      if (claimed > 0 && claimed === free) continue;
      // A busy worker looks more often: jobs whose notice named a worker that died unannounced (its peers
      // count it in until its heartbeat is a lease old) are picked up within BUSY_POLL_MS under load.
      await this.alarm.sleep(
        this.inFlight.size > 0 ? Math.min(config.jobPollMs, BUSY_POLL_MS) : config.jobPollMs,
      );
    }
  }

  private launch(job: JobRecord): void {
    this.inFlight.add(job.id);
    const isPart = isPartInput(job.input);
    if (isPart) this.partsInFlight++;
    this.deps.metrics.jobsInFlight.set(this.inFlight.size);
    const startedMs = performance.now();
    this.execute(job)
      .then((outcome) => {
        const { jobAttempts, jobAttemptDuration } = this.deps.metrics;
        jobAttempts.inc({ model: job.modelName, outcome });
        jobAttemptDuration.observe({ model: job.modelName }, (performance.now() - startedMs) / 1000);
      })
      .catch((error: unknown) =>
        this.deps.logger.error({ err: error, job: job.id }, 'job bookkeeping failed'),
      )
      .finally(() => {
        this.inFlight.delete(job.id);
        if (isPart) {
          this.partsInFlight--;
          // Parts left behind for the limit may be waiting.
          this.owed = true;
        }
        this.deps.metrics.jobsInFlight.set(this.inFlight.size);
        // A free slot is worth a claim only when jobs may be waiting; new ones come with a notice.
        if (this.owed) this.notify();
      });
  }

  /** Runs one attempt and records it; returns what became of it. */
  private async execute(job: JobRecord): Promise<'succeeded' | 'retried' | 'failed' | 'lost'> {
    const { config, logger } = this.deps;
    const lease: JobLease = { id: job.id, workerId: this.id, attempt: job.attempts };
    let outcome: JobOutcome | { retry: JobError };
    try {
      const result = await this.predict(job);
      outcome = await storeResult(this.deps.artifacts, result, config.inlineResultBytes);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const jobError: JobError = isModelgateError(error)
        ? { code: error.code, message: error.message }
        : isConnectionLoss(error)
          ? { code: 'not_ready', message: `the database cannot be reached: ${message}` }
          : { code: 'internal', message };
      const retryable = RETRYABLE.has(jobError.code) && job.attempts < job.maxAttempts;
      outcome = retryable ? { retry: jobError } : { status: 'failed', error: jobError };
      logger.warn(
        { job: job.id, attempt: job.attempts, err: jobError, retry: retryable },
        'job attempt failed',
      );
    }
    const delayMs = retryDelayMs(config.jobRetryBaseMs, job.attempts);
    const recorded = await this.withRetries(() =>
      'retry' in outcome
        ? retryJob(this.deps.db, lease, outcome.retry, delayMs)
        : this.finishes.write({ lease, outcome }),
    );
    // The notice of the requeue arrives before the job is due: look again when it is.
    if (recorded && 'retry' in outcome) setTimeout(() => this.notify(), delayMs + 5).unref();
    // Not recorded: the job was canceled, or its lease ran out and another worker has it now.
    if (!recorded) {
      logger.info({ job: job.id, attempt: job.attempts }, 'job result discarded: lease lost');
      // What it stored goes, unless the attempt that was recorded stored the same.
      const stored = 'result' in outcome ? outcome.result : undefined;
      if (isPartInput(job.input) && stored) {
        const { output, errors } = stored as PartResult;
        await scheduleArtifactRemovals(this.deps.db, [output, errors]).catch((error: unknown) =>
          logger.warn({ err: error, job: job.id }, 'could not schedule the removal of a discarded output'),
        );
      }
      return 'lost';
    }
    if ('retry' in outcome) return 'retried';
    // The last part of a batch to finish finishes the batch.
    if (isPartInput(job.input)) await this.finishDoneBatch(job.input.batchPart.batchId);
    return outcome.status;
  }

  private async predict(job: JobRecord): Promise<unknown> {
    const { predictor, artifacts } = this.deps;
    // A model deployed a moment ago may not have reached this process's catalogue yet: read it once.
    let resolved;
    try {
      resolved = predictor.resolve(job.tenantId, job.modelName, job.modelVersion);
    } catch {
      await predictor.refreshModel(job.tenantId, job.modelName, { warmNewest: false });
      resolved = predictor.resolve(job.tenantId, job.modelName, job.modelVersion);
    }
    if (isPartInput(job.input)) {
      return runBatchPart(job, resolved.version.signature, { predictor, artifacts });
    }
    const tensors = tensorsFromBody(job.input as PredictBody, resolved.version.signature);
    const prediction = await predictor.predict(
      job.tenantId,
      job.modelName,
      job.modelVersion,
      tensors,
      job.timeoutMs,
    );
    return predictionToJson(job.modelName, job.modelVersion, prediction.outputs);
  }

  /**
   * Database writes of an outcome are retried, for as long as the database cannot be reached (a job's result
   * is worth keeping through an outage) and up to 8 times on other failures; the lease fences duplicates.
   */
  private async withRetries<T>(write: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await write();
      } catch (error) {
        if (attempt >= 8 && !isConnectionLoss(error)) throw error;
        await new Promise((resolve) => setTimeout(resolve, retryDelayMs(200, attempt, 5000)));
      }
    }
  }

  private async heartbeat(): Promise<void> {
    const { db, config } = this.deps;
    const held = await renewLeases(db, this.id, [...this.inFlight], config.jobLeaseMs);
    const cpu = process.cpuUsage();
    await heartbeatWorker(db, this.id, {
      jobs_in_flight: this.inFlight.size,
      leases_held: held.length,
      models_loaded: this.deps.predictor.loadedCount(),
      rss_bytes: process.memoryUsage.rss(),
      cpu_seconds: (cpu.user + cpu.system) / 1e6,
    });
    await this.refreshPeers();
  }

  private async recoverLeases(): Promise<void> {
    const recovered = await recoverExpiredLeases(this.deps.db);
    if (recovered > 0) {
      this.deps.logger.warn({ worker: this.id, jobs: recovered }, 'took back jobs with expired leases');
    }
  }

  /** Joins a batch's files once none of its parts is left to run; a failure leaves it to housekeeping. */
  private async finishDoneBatch(batchId: string): Promise<void> {
    try {
      if (await finishBatchIfDone(this.deps, batchId)) {
        this.deps.logger.info({ worker: this.id, batch: batchId }, 'batch finished');
      }
    } catch (error) {
      this.deps.logger.error({ err: error, worker: this.id, batch: batchId }, 'finishing a batch failed');
    }
  }

  private async housekeeping(): Promise<void> {
    const { db, artifacts, config, logger } = this.deps;
    await markGoneWorkers(db, config.jobLeaseMs);
    const stalled = await cancelStalledUploads(db, STALLED_UPLOAD_SECONDS);
    if (stalled > 0)
      logger.warn({ worker: this.id, batches: stalled }, 'canceled batches whose upload stopped');
    // Batches whose last part finished in a worker that died before finishing the batch, or canceled ones.
    for (const batchId of await selectDoneBatchIds(db)) await this.finishDoneBatch(batchId);
    const keySeconds = Math.max(config.jobRetentionSeconds, MIN_KEY_RETENTION_SECONDS);
    await purgeFinishedJobs(db, config.jobRetentionSeconds, keySeconds);
    await purgeFinishedBatches(db, config.jobRetentionSeconds);
    for (const sha256 of await takeDueArtifactRemovals(db)) await artifacts.remove(sha256);
  }

  /**
   * Stops claiming, gives in-flight jobs `graceMs` to finish, and hands the others back to the queue.
   * With `graceMs` 0 nothing is awaited: the leases of what is running run out and those jobs rerun.
   */
  async drain(graceMs = this.deps.config.drainGraceMs): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.notify();
    for (const timer of this.timers) clearInterval(timer);
    const { db, logger } = this.deps;
    await setWorkerStatus(db, this.id, 'draining').catch(() => undefined);
    await this.loop;
    const deadline = Date.now() + graceMs;
    while (this.inFlight.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, deadline - Date.now())));
    }
    const left = [...this.inFlight];
    if (left.length > 0) {
      const released = await releaseJobs(db, this.id, left).catch(() => 0);
      logger.warn({ worker: this.id, jobs: released }, 'handed unfinished jobs back to the queue');
    }
    await this.unlisten?.();
    await setWorkerStatus(db, this.id, 'stopped').catch(() => undefined);
    logger.info({ worker: this.id }, 'job worker stopped');
  }
}
