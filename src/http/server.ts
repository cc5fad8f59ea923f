// The HTTP API: Fastify with request ids, authentication by route scope, metrics, and problem+json errors.
import { randomUUID } from 'node:crypto';
import multipart from '@fastify/multipart';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { requireScope } from '../auth/authenticator.ts';
import { ModelgateError } from '../errors.ts';
import type { HttpDeps } from './context.ts';
import { sendClientError, sendProblem } from './errors.ts';
import { registerAccountRoutes } from './routes/accounts.ts';
import { registerBatchRoutes } from './routes/batches.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerJobRoutes } from './routes/jobs.ts';
import { registerModelRoutes } from './routes/models.ts';
import { registerPredictRoutes } from './routes/predict.ts';
import { registerV2Routes } from './routes/v2.ts';
import { checkRequestText, jsonBodyReader } from './validation.ts';

const REQUEST_ID_PATTERN = /^[\w.:-]{1,128}$/;

export async function buildServer(deps: HttpDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: deps.config.bodyLimitBytes,
    // Model names may be 128 characters; percent-encoding can triple that.
    routerOptions: { maxParamLength: 512 },
    // A request Node's HTTP parser refuses (headers too large, malformed) gets a problem document too.
    clientErrorHandler: sendClientError,
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
  const readJson = jsonBodyReader(app);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    try {
      done(null, readJson(request, String(body)));
    } catch (error) {
      done(error as Error);
    }
  });
  // One byte over the upload limit: busboy ends a file cut at its limit as if it were whole, so it must let
  // through enough for the artifact store's own limit check to see the file is too large.
  await app.register(multipart, { limits: { fileSize: deps.config.uploadLimitBytes + 1, files: 1 } });
  // Model uploads arrive as raw bytes; the route streams them to the artifact store.
  app.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    const scope = request.routeOptions.config.scope;
    if (scope) {
      request.principal = await deps.authenticator.authenticate(request.headers.authorization);
      requireScope(request.principal, scope);
    }
    // Names, ids and cursors in the path and query, checked once here rather than by each route; after
    // authentication, so that a caller without a key learns nothing but 401.
    checkRequestText(request.params, request.query);
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
