// `modelgate serve` runs the platform in this process until SIGINT/SIGTERM: the API and, unless
// --no-workers, a job worker. `modelgate worker` runs only a job worker, for another machine or pod.
import type { Command } from 'commander';
import { pino } from 'pino';
import { resolveConfig, type ConfigInput } from '../config/config.ts';
import type { Logger } from 'pino';
// The platform (Fastify, ONNX Runtime, the stores) is loaded only by the commands that run it, so the
// API commands start fast.
import type { Platform } from '../platform.ts';

interface ServeFlags {
  config?: string;
  host?: string;
  port?: string;
  dataDir?: string;
  databaseUrl?: string;
  inferenceThreads?: string;
  batching?: boolean;
  logLevel?: string;
  examples?: boolean;
  workers?: boolean;
  concurrency?: string;
  metricsPort?: string;
}

function configFrom(flags: ServeFlags, workers: boolean | undefined) {
  return resolveConfig({
    config: flags.config,
    host: flags.host,
    port: flags.port,
    dataDir: flags.dataDir,
    databaseUrl: flags.databaseUrl,
    inferenceThreads: flags.inferenceThreads,
    batching: flags.batching === false ? false : undefined,
    logLevel: flags.logLevel as ConfigInput['logLevel'],
    workers,
    workerConcurrency: flags.concurrency,
    metricsPort: flags.metricsPort,
  });
}

/** Closes the platform on SIGINT/SIGTERM (draining its worker); a second signal ends the process at once. */
function closeOnSignal(platform: Platform, logger: Logger): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      // Killed by the signal itself, as if no handler were installed: process.exit() while ONNX Runtime is
      // running a model on an inference thread aborts the process instead.
      process.removeAllListeners('SIGINT');
      process.removeAllListeners('SIGTERM');
      process.kill(process.pid, signal);
      return;
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    platform.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the API server with inference (embedded storage unless --database-url)')
    .option('--config <file>', 'YAML or JSON config file (env MODELGATE_CONFIG)')
    .option('--host <host>', 'listen address (default 127.0.0.1)')
    .option('--port <port>', 'listen port (default 8080; 0 = any free port)')
    .option('--data-dir <dir>', 'embedded database and artifacts (default ./.modelgate)')
    .option('--database-url <url>', 'Postgres server instead of the embedded database')
    .option('--inference-threads <n>', 'inference threads (default: one per core but one, at least one)')
    .option('--no-batching', 'turn dynamic batching off by default')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
    .option('--examples', 'deploy the example models into the default tenant')
    .option('--no-workers', 'run no job worker here (run `modelgate worker` elsewhere)')
    .option('--concurrency <n>', 'jobs the worker runs at once (default 64)')
    .action(async (flags: ServeFlags) => {
      const config = configFrom(flags, flags.workers === false ? false : undefined);
      const logger = pino({ level: config.logLevel, base: { component: 'modelgate' } });
      const { startPlatform } = await import('../platform.ts');
      const platform = await startPlatform(config, { logger, deployExamples: flags.examples });
      printWelcome(platform.url!, platform.generatedAdminKey?.secret, flags.examples === true);
      closeOnSignal(platform, logger);
    });

  program
    .command('worker')
    .description('run a job worker only: claims async jobs from the shared database and runs them')
    .option('--config <file>', 'YAML or JSON config file (env MODELGATE_CONFIG)')
    .option('--data-dir <dir>', 'artifacts folder parent (default ./.modelgate)')
    .option('--database-url <url>', 'the Postgres server the gateways use (env DATABASE_URL)')
    .option('--inference-threads <n>', 'inference threads (default: one per core but one, at least one)')
    .option('--no-batching', 'turn dynamic batching off by default')
    .option('--concurrency <n>', 'jobs run at once (default 64)')
    .option('--host <host>', 'address of the metrics server (default 127.0.0.1)')
    .option('--metrics-port <port>', 'serve /metrics and /healthz on this port (0 = any free port)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
    .action(async (flags: ServeFlags) => {
      const config = configFrom(flags, true);
      const logger = pino({ level: config.logLevel, base: { component: 'modelgate-worker' } });
      const { startPlatform } = await import('../platform.ts');
      const platform = await startPlatform(config, { logger, http: false });
      const metrics = platform.metricsUrl ? `; metrics at ${platform.metricsUrl}/metrics` : '';
      process.stderr.write(
        `modelgate worker ${platform.worker!.id} is running (pid ${process.pid})${metrics}\n`,
      );
      closeOnSignal(platform, logger);
    });
}

function printWelcome(url: string, generatedKey: string | undefined, examples: boolean): void {
  const key = generatedKey ?? '$MODELGATE_KEY';
  const lines = [
    '',
    `modelgate is running at ${url}`,
    generatedKey
      ? `Admin API key (shown once, store it now): ${generatedKey}`
      : 'Use an API key you created before (the first one was printed at first start), or set MODELGATE_ADMIN_KEY.',
    '',
    'Try:',
    `  curl -s ${url}/v1/models -H "Authorization: Bearer ${key}"`,
  ];
  if (examples) {
    lines.push(
      `  curl -s ${url}/v1/models/iris/predict -H "Authorization: Bearer ${key}" \\`,
      `    -H 'content-type: application/json' -d '{"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'`,
      `  curl -s ${url}/v2/models/iris/infer -H "Authorization: Bearer ${key}" -H 'content-type: application/json' \\`,
      `    -d '{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}'`,
      `  curl -s ${url}/v1/models/iris/jobs -H "Authorization: Bearer ${key}" \\`,
      `    -H 'content-type: application/json' -d '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'`,
      `  curl -s "${url}/v1/jobs/JOB_ID?wait=10" -H "Authorization: Bearer ${key}"`,
    );
  }
  lines.push('');
  process.stderr.write(lines.join('\n') + '\n');
}
