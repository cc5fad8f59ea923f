// The HTTP API: Fastify with request ids, authentication by route scope, metrics, and problem+json errors.
import { randomUUID } from 'node:crypto';
import multipart from '@fastify/multipart';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';
import type { Authenticator, Principal } from '../auth/authenticator.ts';
import { requireScope } from '../auth/authenticator.ts';
import type { Scope } from '../auth/keys.ts';
import type { Config } from '../config/config.ts';
import { ModelgateError } from '../errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Registry } from '../registry/registry.ts';
import type { Predictor } from '../serving/predictor.ts';
import type { Db } from '../store/db.ts';
import { sendProblem } from './errors.ts';
import { registerAccountRoutes } from './routes/accounts.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerModelRoutes } from './routes/models.ts';
import { registerPredictRoutes } from './routes/predict.ts';
import { registerV2Routes } from './routes/v2.ts';
import { registerJobRoutes } from './routes/jobs.ts';
import { registerBatchRoutes } from './routes/batches.ts';
import type { JobService } from '../jobs/service.ts';
import type { BatchService } from '../batch/service.ts';
import type { BatchSources } from '../batch/source.ts';

export interface HttpDeps {
  config: Config;
  db: Db;
  logger: Logger;
  metrics: Metrics;
  authenticator: Authenticator;
  registry: Registry;
  predictor: Predictor;
  jobs: JobService;
  batches: BatchService;
  /** Opens batch inputs named by a URL instead of sent as the body. */
  batchSources: BatchSources;
  /** False until the process has loaded its catalogue (and while it drains on shutdown). */
  isReady(): boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The scope a route needs (or any one of several); routes without one are public (health, metrics). */
    scope?: Scope | readonly Scope[];
  }
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}

/** The authenticated principal of a request on a scoped route. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new ModelgateError('unauthenticated', 'authentication required');
  return request.principal;
}

const REQUEST_ID_PATTERN = /^[\w.:-]{1,128}$/;

export async function buildServer(deps: HttpDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: deps.config.bodyLimitBytes,
    // Model names may be 128 characters; percent-encoding can triple that.
    routerOptions: { maxParamLength: 512 },
    // Errors raised before routing (bad URL encoding) get the same problem documents as the rest.
    frameworkErrors: (error, request, reply) => {
      reply.header('x-request-id', request.id);
      return sendProblem(error, request, reply);
    },
    // One log line per request, written in onResponse with the fields we want; the log field is requestId.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    // Accept the caller's X-Request-Id when it is sane, so one id follows a request across services.
    genReqId: (request) => {
      const given = request.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID_PATTERN.test(given) ? given : randomUUID();
    },
  });
  app.decorateRequest('principal', undefined);
  // One byte over the upload limit: busboy ends a file cut at its limit as if it were whole, so it must let
  // through enough for the artifact store's own limit check to see the file is too large.
  await app.register(multipart, { limits: { fileSize: deps.config.uploadLimitBytes + 1, files: 1 } });
  // Model uploads arrive as raw bytes; the route streams them to the artifact store.
  app.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    const scope = request.routeOptions.config.scope;
    if (!scope) return;
    request.principal = await deps.authenticator.authenticate(request.headers.authorization);
    requireScope(request.principal, scope);
  });
  // Metric children bound once per route, method and status: label hashing per request showed in profiles.
  const httpMetrics = new Map<
    string,
    { requests: { inc(): void }; duration: { observe(seconds: number): void } }
  >();
  const logsRequests = deps.logger.isLevelEnabled('info');
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const labelsKey = `${route} ${request.method} ${reply.statusCode}`;
    let bound = httpMetrics.get(labelsKey);
    if (!bound) {
      const status = String(reply.statusCode);
      bound = {
        requests: deps.metrics.httpRequests.labels({ route, method: request.method, status }),
        duration: deps.metrics.httpRequestDuration.labels({ route, method: request.method }),
      };
      httpMetrics.set(labelsKey, bound);
    }
    bound.requests.inc();
    bound.duration.observe(reply.elapsedTime / 1000);
    if (!logsRequests) return;
    request.log.info(
      {
        method: request.method,
        url: request.url,
        status: reply.statusCode,
        durationMs: Math.round(reply.elapsedTime * 100) / 100,
        tenantId: request.principal?.tenantId,
      },
      'request',
    );
  });
  app.setErrorHandler((error, request, reply) => sendProblem(error, request, reply));
  app.setNotFoundHandler((request, reply) =>
    sendProblem(new ModelgateError('not_found', `no route ${request.method} ${request.url}`), request, reply),
  );

  registerHealthRoutes(app, deps);
  registerAccountRoutes(app, deps);
  registerModelRoutes(app, deps);
  registerPredictRoutes(app, deps);
  registerV2Routes(app, deps);
  registerJobRoutes(app, deps);
  registerBatchRoutes(app, deps);
  return app;
}
