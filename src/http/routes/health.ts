// Liveness, readiness and Prometheus metrics: public, for load balancers and scrapers.
import type { FastifyInstance } from 'fastify';
import { ModelgateError } from '../../errors.ts';
import type { HttpDeps } from '../context.ts';

export function registerHealthRoutes(app: FastifyInstance, deps: HttpDeps): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async () => {
    if (!deps.isReady())
      throw new ModelgateError('not_ready', 'starting or draining', { retryAfterSeconds: 1 });
    await deps.pingDatabase().catch((error: unknown) => {
      throw new ModelgateError('not_ready', 'the database is unreachable', {
        cause: error,
        retryAfterSeconds: 1,
      });
    });
    return { status: 'ready' };
  });
  app.get('/metrics', async (_request, reply) => {
    reply.type(deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
}
