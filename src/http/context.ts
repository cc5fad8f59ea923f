// What the routes are given: the services they call, and the principal of an authenticated request. The
// server (server.ts) builds the app from these; routes import this module, never the server.
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Accounts } from '../auth/accounts.ts';
import type { Authenticator, Principal } from '../auth/authenticator.ts';
import type { Scope } from '../auth/keys.ts';
import type { BatchService } from '../batch/service.ts';
import type { BatchSources } from '../batch/source.ts';
import type { Config } from '../config/config.ts';
import { ModelgateError } from '../errors.ts';
import type { JobService } from '../jobs/service.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Registry } from '../registry/registry.ts';
import type { Predictor } from '../serving/predictor.ts';

export interface HttpDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  authenticator: Authenticator;
  accounts: Accounts;
  registry: Registry;
  predictor: Predictor;
  jobs: JobService;
  batches: BatchService;
  /** Opens batch inputs named by a URL instead of sent as the body. */
  batchSources: BatchSources;
  /** False until the process has loaded its catalogue (and while it drains on shutdown). */
  isReady(): boolean;
  /** Resolves when the database answers (the readiness check); rejects otherwise. */
  pingDatabase(): Promise<void>;
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
