// Webhook deliveries of finished jobs: claimed from the jobs table like jobs themselves (so any worker
// process may send them and a crash loses none), signed per Standard Webhooks with the tenant's secret,
// retried with backoff, and every attempt recorded on the job.
import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import type { Db } from '../store/db.ts';
import { claimWebhooks, recordWebhookAttempt, type JobRecord } from '../store/jobs.ts';
import { tenantWebhookSecret } from '../auth/accounts.ts';
import { postWebhook } from '../webhooks/send.ts';
import { webhookHeaders } from '../webhooks/signature.ts';
import { jobView } from './view.ts';
import { retryDelayMs } from './backoff.ts';
import type { OutageReporter } from './outage.ts';

export type WebhookConfig = Pick<
  Config,
  | 'webhookAllowPrivateNetworks'
  | 'webhookTimeoutMs'
  | 'webhookMaxAttempts'
  | 'webhookRetryBaseMs'
  | 'jobPollMs'
>;

const BATCH = 16;

export class WebhookDispatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly deps: { db: Db; logger: Logger; config: WebhookConfig; outage: OutageReporter },
  ) {}

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      const startedAtMs = performance.now();
      this.running = this.deliverDue()
        .then(
          () => this.deps.outage.reached(startedAtMs),
          (error: unknown) => this.deps.outage.failed(error, 'webhook deliveries failed', startedAtMs),
        )
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.deps.config.jobPollMs);
        });
    };
    tick();
  }

  /** Sends what is due until nothing is; returns how many attempts were made. */
  async deliverDue(): Promise<number> {
    const { db, config } = this.deps;
    let made = 0;
    for (;;) {
      const due = await claimWebhooks(db, BATCH, config.webhookTimeoutMs + 5000);
      await Promise.all(due.map((job) => this.deliver(job)));
      made += due.length;
      if (due.length < BATCH || this.stopped) return made;
    }
  }

  private async deliver(job: JobRecord): Promise<void> {
    const { db, config, logger } = this.deps;
    const secret = await tenantWebhookSecret(db, job.tenantId);
    const body = JSON.stringify({
      type: `job.${job.status}`,
      timestamp: new Date().toISOString(),
      // Results kept in the artifact store can be large: the receiver fetches those from GET /v1/jobs/{id}.
      data: jobView(job, job.resultSha256 === null ? { value: job.result } : undefined),
    });
    const headers = webhookHeaders(secret, `msg_${job.id}`, Math.floor(Date.now() / 1000), body);
    const result = await postWebhook(job.webhookUrl!, body, headers, {
      policy: { allowPrivateNetworks: config.webhookAllowPrivateNetworks },
      timeoutMs: config.webhookTimeoutMs,
    });
    const attempts = job.webhookAttempts.length + 1;
    const next = result.ok
      ? ({ status: 'delivered' } as const)
      : attempts >= config.webhookMaxAttempts
        ? ({ status: 'failed' } as const)
        : ({ status: 'pending', retryInMs: retryDelayMs(config.webhookRetryBaseMs, attempts) } as const);
    await recordWebhookAttempt(
      db,
      job.id,
      {
        at: new Date().toISOString(),
        ok: result.ok,
        ...(result.status === undefined ? {} : { status: result.status }),
        ...(result.error === undefined ? {} : { error: result.error }),
        duration_ms: result.durationMs,
      },
      next,
    );
    if (!result.ok)
      logger.warn({ job: job.id, attempt: attempts, error: result.error }, 'webhook attempt failed');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
