// Async jobs: POST /v1/models/{name}/jobs (202 once committed; Idempotency-Key), GET /v1/jobs/{id}
// (?wait=N long-polls), GET /v1/jobs (filters, cursor), POST /v1/jobs/{id}/cancel; and GET /v1/workers.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ModelgateError } from '../../errors.ts';
import { MAX_WAIT_SECONDS, type JobService } from '../../jobs/service.ts';
import { jobView } from '../../jobs/view.ts';
import { predictBodySchema } from '../../serving/predict-body.ts';
import { JOB_STATUSES, type JobRecord } from '../../store/jobs.ts';
import { principalOf, type HttpDeps } from '../context.ts';
import { parseWith } from '../validation.ts';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** The job fields of a submit body; the rest is the prediction body, as `/predict` takes it. */
const jobOptions = z
  .object({
    version: z.number().int().min(1).optional(),
    priority: z.number().int().min(-1000).max(1000).optional(),
    webhook_url: z.string().optional(),
  })
  .passthrough();

const getQuery = z.object({ wait: z.coerce.number().min(0).max(MAX_WAIT_SECONDS).optional() }).strict();
const listQuery = z
  .object({
    model: z.string().min(1).optional(),
    status: z.enum(JOB_STATUSES).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    cursor: z.string().max(100).optional(),
  })
  .strict();

/**
 * The `wait` preference of a Prefer header (RFC 7240), e.g. `Prefer: wait=5`: seconds to hold the answer
 * until the job has finished. Other preferences are ignored, as the RFC asks; a wait that is not a number
 * of seconds within the long-poll limit is refused.
 */
function preferredWait(header: string | string[] | undefined): number | undefined {
  const preferences = (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',');
  for (const preference of preferences) {
    const [name, value] = preference
      .split(';')[0]!
      .split('=')
      .map((part) => part.trim());
    if (name?.toLowerCase() !== 'wait') continue;
    const seconds = value === undefined || value === '' ? NaN : Number(value);
    if (!(seconds >= 0 && seconds <= MAX_WAIT_SECONDS)) {
      throw new ModelgateError('bad_request', `Prefer: wait takes 0 to ${MAX_WAIT_SECONDS} seconds`, {
        details: { prefer: value ?? '' },
      });
    }
    return seconds;
  }
  return undefined;
}

/** A job; with its result when asked for (it can be large, and may live in the artifact store). */
async function serializeJob(job: JobRecord, jobs: JobService, withResult: boolean) {
  if (!withResult) return jobView(job);
  return jobView(job, { value: job.status === 'succeeded' ? await jobs.result(job) : null });
}

export function registerJobRoutes(app: FastifyInstance, { jobs }: HttpDeps): void {
  app.post<{ Params: { name: string } }>(
    '/v1/models/:name/jobs',
    { config: { scope: 'predict' } },
    async (request, reply) => {
      const header = request.headers['idempotency-key'];
      if (header !== undefined && (typeof header !== 'string' || !IDEMPOTENCY_KEY.test(header))) {
        throw new ModelgateError(
          'bad_request',
          'Idempotency-Key: 1 to 255 visible ASCII characters, sent once',
        );
      }
      const wait = preferredWait(request.headers.prefer);
      const {
        version,
        priority,
        webhook_url: webhookUrl,
        ...predictBody
      } = parseWith(jobOptions, request.body);
      // Prefer: wait=N: the answer comes once the job has finished, or after N seconds as it is then.
      const { job, replayed } = await jobs.submit({
        tenantId: principalOf(request).tenantId,
        modelName: request.params.name,
        body: parseWith(predictBodySchema, predictBody),
        version,
        priority,
        webhookUrl,
        idempotencyKey: header,
        waitSeconds: wait,
      });
      if (replayed) reply.header('idempotent-replayed', 'true');
      if (wait !== undefined) reply.header('preference-applied', `wait=${wait}`);
      return reply
        .status(202)
        .header('location', `/v1/jobs/${job.id}`)
        .send(await serializeJob(job, jobs, wait !== undefined));
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/jobs/:id',
    { config: { scope: ['read', 'predict'] } },
    async (request) => {
      const { wait } = parseWith(getQuery, request.query, 'query');
      const job = await jobs.get(principalOf(request).tenantId, request.params.id, wait);
      return serializeJob(job, jobs, true);
    },
  );

  app.get('/v1/jobs', { config: { scope: ['read', 'predict'] } }, async (request) => {
    const query = parseWith(listQuery, request.query, 'query');
    const page = await jobs.list(principalOf(request).tenantId, {
      modelName: query.model,
      status: query.status,
      limit: query.limit,
      after: query.cursor,
    });
    const last = page.at(-1);
    return {
      jobs: await Promise.all(page.map((job) => serializeJob(job, jobs, false))),
      next_cursor: page.length === query.limit && last ? last.id : null,
    };
  });

  app.post<{ Params: { id: string } }>(
    '/v1/jobs/:id/cancel',
    { config: { scope: 'predict' } },
    async (request) => {
      const job = await jobs.cancel(principalOf(request).tenantId, request.params.id);
      return serializeJob(job, jobs, false);
    },
  );

  app.get('/v1/workers', { config: { scope: 'admin' } }, async (request) => {
    if (!principalOf(request).operator) {
      throw new ModelgateError('forbidden', 'only admin keys of the operator tenant see the workers');
    }
    const workers = await jobs.listWorkers();
    return {
      workers: workers.map((worker) => ({
        id: worker.id,
        host: worker.host,
        pid: worker.pid,
        status: worker.status,
        started_at: worker.startedAt,
        heartbeat_at: worker.heartbeatAt,
        ...worker.stats,
      })),
    };
  });
}
