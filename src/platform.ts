// Assembles one modelgate process from its parts: store, artifact store, runtime, catalogue, predictor,
// registry, authentication and the HTTP server; and takes them down again in order.
import { join } from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { openArtifactStore, s3ConnectionOf } from './artifacts/open.ts';
import type { ArtifactStore } from './artifacts/store.ts';
import { Accounts, bootstrapAccounts, DEFAULT_TENANT, type CreatedKey } from './auth/accounts.ts';
import { Authenticator } from './auth/authenticator.ts';
import type { Config } from './config/config.ts';
import { buildServer } from './http/server.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { Registry } from './registry/registry.ts';
import { CommandRuntime } from './runtime/command.ts';
import { HttpRuntime } from './runtime/http.ts';
import { OnnxRuntime } from './runtime/onnx.ts';
import { Runtimes } from './runtime/runtime.ts';
import { Catalog } from './serving/catalog.ts';
import { Predictor } from './serving/predictor.ts';
import { subscribeChanges, type Change } from './store/changes.ts';
import { pingDatabase, type Db } from './store/db.ts';
import { openStore } from './store/open.ts';
import { selectTenantByName } from './store/tenants.ts';
import { JobService } from './jobs/service.ts';
import { BatchService } from './batch/service.ts';
import { BatchSources } from './batch/source.ts';
import { JobWorker } from './jobs/worker.ts';
import { WebhookDispatcher } from './jobs/webhooks.ts';
import { OutageReporter } from './jobs/outage.ts';

export interface Platform {
  /** The HTTP server; absent in a worker-only process. */
  app: FastifyInstance | undefined;
  /** Base URL the server listens on, e.g. http://127.0.0.1:8080; absent in a worker-only process. */
  url: string | undefined;
  /** This process's job worker, when it runs one (config `workers`). */
  worker: JobWorker | undefined;
  /** Where a worker-only process serves /metrics and /healthz (config `metricsPort`). */
  metricsUrl: string | undefined;
  /** The admin key generated for a fresh database (print it once), if one was generated. */
  generatedAdminKey: CreatedKey | undefined;
  registry: Registry;
  /** What serves predictions in this process (real-time and jobs): its catalogue and loaded versions. */
  predictor: Predictor;
  db: Db;
  artifacts: ArtifactStore;
  close(): Promise<void>;
}

export interface PlatformOptions {
  logger: Logger;
  /** Deploy the example models into the default tenant if they are not there yet. */
  deployExamples?: boolean;
  /** Serve the HTTP API (default true); `modelgate worker` runs without it. */
  http?: boolean;
}

export async function startPlatform(config: Config, options: PlatformOptions): Promise<Platform> {
  const { logger } = options;
  // What is open so far, closed in reverse order by close() or when the start fails half-way.
  const closers: (() => Promise<void> | void)[] = [];
  const closeAll = async () => {
    for (const close of closers.splice(0).reverse()) await close();
  };
  try {
    return await assemble(config, options, closers, closeAll);
  } catch (error) {
    await closeAll().catch((closeError: unknown) => logger.error({ err: closeError }, 'cleanup failed'));
    throw error;
  }
}

async function assemble(
  config: Config,
  { logger, deployExamples: withExamples, http = true }: PlatformOptions,
  closers: (() => Promise<void> | void)[],
  closeAll: () => Promise<void>,
): Promise<Platform> {
  const db = await openStore(config);
  closers.push(() => db.close());
  const artifacts = await openArtifactStore(config);
  closers.push(() => artifacts.close());
  const onnx = new OnnxRuntime({
    threads: config.inferenceThreads,
    intraOpThreads: config.intraOpThreads,
  });
  const command = new CommandRuntime({
    unpackDir: join(config.dataDir, 'deployments'),
    // An archive may unpack to four times the largest upload.
    limits: { maxBytes: 4 * config.uploadLimitBytes, maxEntries: 100_000 },
    logger: logger.child({ component: 'command-runtime' }),
  });
  const upstreams = new HttpRuntime({
    allowedNetworks: config.upstreamAllowedNetworks,
    logger: logger.child({ component: 'http-runtime' }),
  });
  const runtimes = new Runtimes([onnx, command, upstreams]);
  closers.push(() => runtimes.close());
  const metrics = createMetrics();
  const catalog = new Catalog(db);
  const predictor = new Predictor({
    catalog,
    runtimes,
    artifacts,
    metrics,
    defaults: {
      batching: config.batching,
      maxBatchSize: config.maxBatchSize,
      maxBatchDelayMs: config.maxBatchDelayMs,
      maxQueueSize: config.maxQueueSize,
      timeoutMs: config.timeoutMs,
    },
    maxLoadedModels: config.maxLoadedModels,
  });
  closers.push(() => predictor.close());
  const authenticator = new Authenticator(db);

  const registry = new Registry({
    db,
    artifacts,
    runtimes: { file: onnx, program: command, definitions: [upstreams] },
    uploadLimitBytes: config.uploadLimitBytes,
    onModelChanged: (tenantId, name) => predictor.refreshModel(tenantId, name),
  });

  const jobs = new JobService({ db, predictor, artifacts, config });
  const batches = new BatchService({ db, predictor, artifacts, config, logger });
  const batchSources = new BatchSources({ allowedUrls: config.batchInputUrls, s3: s3ConnectionOf(config) });
  closers.push(() => batchSources.close());
  let ready = false;
  const app = http
    ? await buildServer({
        config,
        logger,
        metrics,
        authenticator,
        accounts: new Accounts({ db, authenticator }),
        registry,
        predictor,
        jobs,
        batches,
        batchSources,
        isReady: () => ready,
        pingDatabase: () => pingDatabase(db),
      })
    : undefined;
  if (app) closers.push(() => app.close());

  const generatedAdminKey = http ? await bootstrapAccounts(db, config.adminKey) : undefined;
  await catalog.loadAll();
  // Other processes on the same database announce their changes; ours arrive here too and change nothing.
  const apply = async (change: Change) => {
    if (change.kind === 'key') authenticator.forgetKey(change.keyId);
    else await predictor.refreshModel(change.tenantId, change.name);
  };
  // Notices missed while the listening connection was down: forget every key, re-read every model.
  const resync = async () => {
    authenticator.forgetKey();
    await predictor.refreshAll();
  };
  const unsubscribe = await subscribeChanges(
    db,
    (change) =>
      void apply(change).catch((error: unknown) =>
        logger.error({ err: error, change }, 'applying a change failed'),
      ),
    () => void resync().catch((error: unknown) => logger.error({ err: error }, 'resynchronising failed')),
  );
  closers.push(unsubscribe);
  if (withExamples) await deployExamples(registry, db, logger);
  // A gateway loads every model before it takes traffic. A worker-only process loads a version when it first
  // runs a job of it, and, like every process, the newest version of a model when a change reaches it.
  if (http) {
    await Promise.all(
      catalog.entries().map(async (entry) => {
        const latest = entry.versions.at(-1);
        if (latest)
          await predictor
            .warm(latest)
            .catch((error: unknown) => logger.warn({ err: error }, 'warm-up failed'));
      }),
    );
  }

  if (app) {
    // Long polls on this gateway are woken by notices of finished jobs.
    await jobs.start();
    closers.push(() => jobs.close());
  }
  let worker: JobWorker | undefined;
  if (config.workers) {
    const outage = new OutageReporter(logger);
    worker = new JobWorker({ db, predictor, artifacts, logger, metrics, config, outage });
    await worker.start();
    closers.push(() => worker!.drain());
    const webhooks = new WebhookDispatcher({ db, logger, config, outage });
    webhooks.start();
    closers.push(() => webhooks.stop());
  }

  const url = app ? await app.listen({ host: config.host, port: config.port }) : undefined;
  const metricsUrl =
    !app && config.metricsPort !== undefined
      ? await serveMetrics(metrics, config.host, config.metricsPort, closers)
      : undefined;
  ready = true;
  logger.info(
    { url, driver: db.driver, inferenceThreads: config.inferenceThreads, worker: worker?.id },
    app ? 'modelgate listening' : 'modelgate worker running',
  );

  return {
    app,
    url,
    worker,
    metricsUrl,
    generatedAdminKey,
    registry,
    predictor,
    db,
    artifacts,
    async close() {
      ready = false;
      await closeAll();
    },
  };
}

/** A worker-only process's own small HTTP server: /metrics for Prometheus, /healthz for probes. */
async function serveMetrics(
  metrics: Metrics,
  host: string,
  port: number,
  closers: (() => Promise<void> | void)[],
): Promise<string> {
  const server = createServer((request, response) => {
    if (request.method === 'GET' && request.url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        () => response.writeHead(500).end(),
      );
    } else if (request.method === 'GET' && request.url === '/healthz') {
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port: bound } = server.address() as AddressInfo;
  return `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
}

/** The example models (built from examples/), deployed into the default tenant once. */
async function deployExamples(
  registry: Registry,
  db: Parameters<typeof selectTenantByName>[0],
  logger: Logger,
) {
  const tenant = await selectTenantByName(db, DEFAULT_TENANT);
  if (!tenant) return;
  const { buildIrisModel, buildWideMlpModel } = await import('../examples/build.ts');
  const existing = new Set((await registry.list(tenant.id)).map((entry) => entry.model.name));
  for (const [name, build] of [
    ['iris', buildIrisModel],
    ['wide-mlp', buildWideMlpModel],
  ] as const) {
    if (existing.has(name)) continue;
    await registry.deploy(tenant.id, name, Readable.from([Buffer.from(build())]));
    logger.info({ model: name }, 'example model deployed');
  }
}
