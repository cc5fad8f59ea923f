// Queue benchmark: modelgate's durable async jobs end to end (submit over HTTP → succeeded), on the real
// Postgres with 1 and 4 worker processes, with a trivial model (Identity) and the large example model
// (wide-mlp); side by side in the same run and on the same server, pg-boss and graphile-worker doing the
// same trivial work their own way; and modelgate on embedded PGlite (one `serve` process). Measures
// throughput (K jobs from concurrent submitters until all have finished) and submit-to-result latency
// (one job at a time on an idle system). Prints two tables and the issue's targets, and writes
// bench/results/queue.json. Run: npm run bench:queue -- --help
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { parseNumber, UsageError } from './lib/args.ts';
import { describeMachine, runBenchmark, writeResults, type BenchmarkRun } from './lib/run.ts';
import { REPO_ROOT } from './lib/servers.ts';
import {
  benchDatabaseUrl,
  createSchema,
  describeServer,
  dropLeftoverSchemas,
  dropSchema,
  isProcessAlive,
  newSchemaName,
  redactedUrl,
  urlWithApplicationName,
} from './queue/database.ts';
import { startGraphileWorker } from './queue/graphile-worker.ts';
import {
  measureLatency,
  measureThroughput,
  type LatencyResult,
  type PhaseSettings,
  type ThroughputResult,
} from './queue/measure.ts';
import { DEFAULT_BENCH_INFERENCE_THREADS, OWNED_MODELGATE_ENV, startModelgate } from './queue/modelgate.ts';
import { startPgBoss } from './queue/pg-boss.ts';
import { RESULT_POLL_MS } from './queue/poll.ts';
import {
  checkTargets,
  formatLatencyTable,
  formatThroughputTable,
  isNoisy,
  latencyOk,
  TARGET_P50_MS,
  TARGET_THROUGHPUT_VS_GRAPHILE_WORKER,
  TARGET_THROUGHPUT_VS_PG_BOSS,
  throughputOk,
  type LatencyCell,
  type ThroughputCell,
} from './queue/report.ts';
import {
  describeWorkers,
  SYSTEM_IDS,
  SYSTEM_LABELS,
  type RunningSystem,
  type SystemId,
  type WorkloadId,
} from './queue/system.ts';
import { buildJobWorkload, type JobWorkload } from './queue/workloads.ts';
import { describeSource, readPackageVersion } from './lib/source.ts';
import { round } from './lib/stats.ts';
import { formatTargets, NOISY_OTHER_CPU_CORES } from './lib/verdict.ts';

const PAUSE_BETWEEN_PHASES_MS = 300;
const PAUSE_BEFORE_RETRY_MS = 2000;
/** Longest random pause before a latency submit for systems woken by notices (modelgate, graphile-worker). */
const NOTIFIED_LATENCY_PAUSE_MAX_MS = 10;

const USAGE = `Usage: npm run bench:queue -- [options]

  --systems <list>          ${SYSTEM_IDS.join(',')} (default: all)
  --workers <list>          worker processes on Postgres, 1 to 16 each (env BENCH_QUEUE_WORKERS; default 1,4)
  --trivial-jobs <n>        jobs per trivial throughput measurement (env BENCH_QUEUE_TRIVIAL_JOBS; default 5000)
  --wide-jobs <n>           jobs per wide-mlp throughput measurement, modelgate only (env BENCH_QUEUE_WIDE_JOBS; default 2000)
  --latency-jobs <n>        sequential jobs per latency measurement (env BENCH_QUEUE_LATENCY_JOBS; default 200)
  --warmup-jobs <n>         jobs per warm-up round (env BENCH_QUEUE_WARMUP_JOBS; default 500; 0: no warm-up)
  --warmup-seconds <s>      warm-up rounds per system and workload until this long has passed, so that
                            measurements see compiled code, not V8 still optimizing it (env
                            BENCH_QUEUE_WARMUP_SECONDS; default 5)
  --submitters <n>          concurrent submitters for throughput (env BENCH_QUEUE_SUBMITTERS; default 16)
  --poll-ms <ms>            pause between polls of the unfinished jobs (default 10)
  --phase-timeout <s>       give up on a measurement after this long (default 180)
  --noisy-retries <n>       measure again up to n times while other work on the machine used more than
                            ${NOISY_OTHER_CPU_CORES} cores; the quietest attempt is kept (env BENCH_NOISY_RETRIES; default 1)
  --pg-boss-batch-size <n>  jobs one pg-boss worker process fetches per poll (default 64)
  --pg-boss-polling-interval <s>  pg-boss polling interval (default 0.5, the least pg-boss accepts)
  --graphile-concurrency <n>  jobs one graphile-worker process runs at once (default 64)
  --database-url <url>      Postgres server (env BENCH_DATABASE_URL, TEST_DATABASE_URL; default
                            postgres://postgres@127.0.0.1:5432/test); every system gets a fresh schema, dropped after
  --modelgate-node-args=<flags>  extra node flags for modelgate processes, e.g. --modelgate-node-args="--cpu-prof"
  --out <file>              results JSON (default bench/results/queue.json)
  --help

modelgate runs with the MODELGATE_* variables of this environment (e.g. MODELGATE_WORKER_CONCURRENCY), except
${OWNED_MODELGATE_ENV.join(', ')}, which the benchmark sets; MODELGATE_INFERENCE_THREADS defaults to
${DEFAULT_BENCH_INFERENCE_THREADS} per process.
`;

interface Options {
  systems: SystemId[];
  workers: number[];
  trivialJobs: number;
  wideJobs: number;
  latencyJobs: number;
  warmupJobs: number;
  warmupSeconds: number;
  submitters: number;
  pollMs: number;
  phaseTimeoutSeconds: number;
  noisyRetries: number;
  pgBossBatchSize: number;
  pgBossPollingIntervalSeconds: number;
  graphileConcurrency: number;
  databaseUrl: string;
  modelgateNodeArgs: string[];
  outPath: string;
}

/** Worker processes per system: each is a Node process and a few database connections. */
const MAX_WORKER_PROCESSES = 16;

function parseOptions(argv: string[], env: NodeJS.ProcessEnv): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      systems: { type: 'string', default: SYSTEM_IDS.join(',') },
      workers: { type: 'string', default: env.BENCH_QUEUE_WORKERS ?? '1,4' },
      'trivial-jobs': { type: 'string', default: env.BENCH_QUEUE_TRIVIAL_JOBS ?? '5000' },
      'wide-jobs': { type: 'string', default: env.BENCH_QUEUE_WIDE_JOBS ?? '2000' },
      'latency-jobs': { type: 'string', default: env.BENCH_QUEUE_LATENCY_JOBS ?? '200' },
      'warmup-jobs': { type: 'string', default: env.BENCH_QUEUE_WARMUP_JOBS ?? '500' },
      'warmup-seconds': { type: 'string', default: env.BENCH_QUEUE_WARMUP_SECONDS ?? '5' },
      submitters: { type: 'string', default: env.BENCH_QUEUE_SUBMITTERS ?? '16' },
      'poll-ms': { type: 'string', default: '10' },
      'phase-timeout': { type: 'string', default: '180' },
      'noisy-retries': { type: 'string', default: env.BENCH_NOISY_RETRIES ?? '1' },
      'pg-boss-batch-size': { type: 'string', default: '64' },
      'pg-boss-polling-interval': { type: 'string', default: '0.5' },
      'graphile-concurrency': { type: 'string', default: '64' },
      'database-url': { type: 'string', default: benchDatabaseUrl(env) },
      'modelgate-node-args': { type: 'string', default: '' },
      out: { type: 'string', default: join(REPO_ROOT, 'bench/results/queue.json') },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return undefined;
  const chosen = values.systems.split(',').map((item) => item.trim());
  const unknown = chosen.filter((item) => !SYSTEM_IDS.includes(item as SystemId));
  if (unknown.length > 0)
    throw new UsageError(`--systems: unknown ${unknown.join(', ')}; use ${SYSTEM_IDS.join(',')}`);
  const pollingInterval = parseNumber(values['pg-boss-polling-interval'], '--pg-boss-polling-interval', {
    integer: false,
    min: 0.5,
  });
  return {
    systems: SYSTEM_IDS.filter((id) => chosen.includes(id)),
    workers: values.workers
      .split(',')
      .map((text) => parseNumber(text.trim(), '--workers', { max: MAX_WORKER_PROCESSES })),
    trivialJobs: parseNumber(values['trivial-jobs'], '--trivial-jobs'),
    wideJobs: parseNumber(values['wide-jobs'], '--wide-jobs'),
    latencyJobs: parseNumber(values['latency-jobs'], '--latency-jobs'),
    warmupJobs: parseNumber(values['warmup-jobs'], '--warmup-jobs', { min: 0 }),
    warmupSeconds: parseNumber(values['warmup-seconds'], '--warmup-seconds', { integer: false, min: 0 }),
    submitters: parseNumber(values.submitters, '--submitters'),
    pollMs: parseNumber(values['poll-ms'], '--poll-ms', { integer: false }),
    phaseTimeoutSeconds: parseNumber(values['phase-timeout'], '--phase-timeout', { integer: false }),
    noisyRetries: parseNumber(values['noisy-retries'], '--noisy-retries', { min: 0 }),
    pgBossBatchSize: parseNumber(values['pg-boss-batch-size'], '--pg-boss-batch-size'),
    pgBossPollingIntervalSeconds: pollingInterval,
    graphileConcurrency: parseNumber(values['graphile-concurrency'], '--graphile-concurrency'),
    databaseUrl: values['database-url'],
    modelgateNodeArgs: values['modelgate-node-args'].split(/\s+/).filter(Boolean),
    outPath: resolve(values.out),
  };
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (message: string) => process.stderr.write(`${message}\n`);

interface RunContext {
  options: Options;
  runDir: string;
  adminKey: string;
  workloads: Map<WorkloadId, JobWorkload>;
  /** Reads pg_stat_activity for the CPU of the Postgres backends. */
  monitor: pg.Client | undefined;
}

interface SystemReport {
  system: SystemId;
  label: string;
  workers: number;
  schema: string | undefined;
  settings: Record<string, unknown>;
  warmup: Partial<Record<WorkloadId, { jobs: number; seconds: number; ok: boolean }>>;
}

async function startSystem(
  system: SystemId,
  workers: number,
  schema: string | undefined,
  context: RunContext,
): Promise<RunningSystem> {
  const { options } = context;
  const trivial = context.workloads.get('trivial')!;
  switch (system) {
    case 'modelgate':
      await createSchema(options.databaseUrl, schema!);
      return startModelgate({
        runDir: context.runDir,
        adminKey: context.adminKey,
        workloads: [...context.workloads.values()],
        postgres: { url: options.databaseUrl, schema: schema!, workers },
        nodeArgs: options.modelgateNodeArgs,
      });
    case 'modelgate-pglite':
      return startModelgate({
        runDir: context.runDir,
        adminKey: context.adminKey,
        workloads: [trivial],
        nodeArgs: options.modelgateNodeArgs,
      });
    case 'pg-boss':
      return startPgBoss({
        url: options.databaseUrl,
        schema: schema!,
        workers,
        batchSize: options.pgBossBatchSize,
        pollingIntervalSeconds: options.pgBossPollingIntervalSeconds,
        workload: trivial,
      });
    case 'graphile-worker':
      return startGraphileWorker({
        url: options.databaseUrl,
        schema: schema!,
        workers,
        concurrency: options.graphileConcurrency,
        workload: trivial,
      });
  }
}

/**
 * Measures and, while other work on this shared machine took more than NOISY_OTHER_CPU_CORES during it,
 * measures again (up to --noisy-retries times), keeping the attempt with the least outside load. The choice
 * looks only at the outside load, never at the result, and is the same for every system.
 */
async function measureQuietly<T extends { cpu: { otherCores: number } }>(
  measure: () => Promise<T>,
  describe: (result: T) => string,
  noisyRetries: number,
): Promise<T & { attempts: number }> {
  let kept: T | undefined;
  let attempts = 0;
  while (attempts <= noisyRetries) {
    await delay(attempts === 0 ? PAUSE_BETWEEN_PHASES_MS : PAUSE_BEFORE_RETRY_MS);
    attempts++;
    const result = await measure();
    log(`    ${describe(result)}`);
    if (!kept || result.cpu.otherCores < kept.cpu.otherCores) kept = result;
    if (!isNoisy(result)) break;
    if (attempts <= noisyRetries)
      log(`    (other work used ${result.cpu.otherCores} cores: measuring again)`);
  }
  return { ...kept!, attempts };
}

const formatByProcess = (cores: Record<string, number>) =>
  Object.entries(cores)
    .map(([label, value]) => `${label} ${value}`)
    .join(', ');

function describeThroughput(result: ThroughputResult): string {
  return (
    `${result.outcomes.succeeded}/${result.jobs} jobs in ${result.seconds} s = ${result.jobsPerSecond} jobs/s ` +
    `(submits ${result.submitsPerSecond}/s), ${result.cpuMsPerJob} CPU ms/job (${result.allCpuMsPerJob} with the benchmark client), system ${result.cpu.systemCores} cores (${formatByProcess(result.cpu.systemCoresByProcess)}), ` +
    `its Postgres backends ${result.cpu.postgresCores}, ${result.databaseTransactionsPerJob} db transactions/job, benchmark ${result.cpu.benchmarkCores}, other ${result.cpu.otherCores}` +
    (throughputOk(result)
      ? ''
      : `  << ${result.timedOut ? 'timed out, ' : ''}${result.outcomes.failed} failed, ${result.submitErrors} submit errors ${result.firstSubmitError ?? ''}`)
  );
}

function describeLatency(result: LatencyResult): string {
  return (
    `${result.jobs} jobs: p50 ${result.p50Ms} ms, p90 ${result.p90Ms} ms, p99 ${result.p99Ms} ms, max ${result.maxMs} ms, ` +
    `system ${result.cpu.systemCores} cores (${formatByProcess(result.cpu.systemCoresByProcess)}), ` +
    `its Postgres backends ${result.cpu.postgresCores}, other work ${result.cpu.otherCores} cores` +
    (result.failed ? `  << ${result.failed} failed: ${result.firstError}` : '')
  );
}

async function measureSystem(
  system: SystemId,
  workers: number,
  context: RunContext,
  throughputCells: ThroughputCell[],
  latencyCells: LatencyCell[],
): Promise<SystemReport> {
  const { options } = context;
  const onPostgres = system !== 'modelgate-pglite';
  const schema = onPostgres ? newSchemaName(system) : undefined;
  log(`${SYSTEM_LABELS[system]}, ${describeWorkers(system, workers)}${schema ? `, schema ${schema}` : ''}`);
  const settings: PhaseSettings = {
    pgClient: onPostgres ? context.monitor : undefined,
    pollMs: options.pollMs,
    timeoutMs: options.phaseTimeoutSeconds * 1000,
  };
  let running: RunningSystem | undefined;
  try {
    running = await startSystem(system, workers, schema, context);
    const report: SystemReport = {
      system,
      label: SYSTEM_LABELS[system],
      workers,
      schema,
      settings: running.describe(),
      warmup: {},
    };
    const target = running;
    for (const workload of target.workloads) {
      if (options.warmupJobs === 0) break;
      const warmup = { jobs: 0, seconds: 0, ok: true };
      do {
        const pass = await measureThroughput(
          target,
          workload,
          options.warmupJobs,
          options.submitters,
          settings,
        );
        log(`  ${workload} warm-up: ${describeThroughput(pass)}`);
        warmup.jobs += pass.jobs;
        warmup.seconds += pass.seconds;
        warmup.ok &&= throughputOk(pass);
      } while (warmup.ok && warmup.seconds < options.warmupSeconds);
      report.warmup[workload] = { ...warmup, seconds: round(warmup.seconds, 3) };
    }
    for (const workload of target.workloads) {
      const jobs = workload === 'trivial' ? options.trivialJobs : options.wideJobs;
      log(`  ${workload} throughput, ${jobs} jobs from ${options.submitters} submitters`);
      const result = await measureQuietly(
        () => measureThroughput(target, workload, jobs, options.submitters, settings),
        describeThroughput,
        options.noisyRetries,
      );
      throughputCells.push({ system, workers, workload, ...result, ok: throughputOk(result) });
    }
    // Polling workers are woken by nothing but their timer: a random pause as long as the polling
    // interval makes each submit land at a random point of it, as a job from outside would.
    const pauseMaxMs =
      system === 'pg-boss' ? options.pgBossPollingIntervalSeconds * 1000 : NOTIFIED_LATENCY_PAUSE_MAX_MS;
    for (const workload of target.workloads) {
      log(`  ${workload} latency, ${options.latencyJobs} jobs one at a time`);
      const result = await measureQuietly(
        () => measureLatency(target, workload, options.latencyJobs, pauseMaxMs, settings),
        describeLatency,
        options.noisyRetries,
      );
      latencyCells.push({ system, workers, workload, ...result, ok: latencyOk(result, options.latencyJobs) });
    }
    return report;
  } finally {
    await running?.stop();
    if (schema) await dropSchema(options.databaseUrl, schema);
  }
}

async function runQueue(options: Options, run: BenchmarkRun): Promise<void> {
  // Scratch directories of interrupted runs (named by their pid) go too.
  const tmpDir = dirname(run.runDir);
  for (const entry of existsSync(tmpDir) ? readdirSync(tmpDir) : []) {
    const pid = Number(/^queue-(\d+)$/.exec(entry)?.[1]);
    if (Number.isInteger(pid) && !isProcessAlive(pid))
      rmSync(join(tmpDir, entry), { recursive: true, force: true });
  }
  const usesPostgres = options.systems.some((system) => system !== 'modelgate-pglite');
  let monitor: pg.Client | undefined;
  try {
    let postgres: Record<string, unknown> | undefined;
    if (usesPostgres) {
      const dropped = await dropLeftoverSchemas(options.databaseUrl);
      if (dropped.length > 0) log(`dropped schemas left by interrupted runs: ${dropped.join(', ')}`);
      postgres = { url: redactedUrl(options.databaseUrl), ...(await describeServer(options.databaseUrl)) };
      monitor = new pg.Client({ connectionString: urlWithApplicationName(options.databaseUrl, 'monitor') });
      await monitor.connect();
    }
    const workloadIds: WorkloadId[] = ['trivial', 'wide-mlp'];
    const context: RunContext = {
      options,
      runDir: run.runDir,
      // A fresh key per run; each modelgate starts on an empty database and takes it as its admin key.
      adminKey: `mg_${randomBytes(20).toString('hex')}`,
      workloads: new Map(workloadIds.map((id) => [id, buildJobWorkload(id)])),
      monitor,
    };

    const throughputCells: ThroughputCell[] = [];
    const latencyCells: LatencyCell[] = [];
    const systems: SystemReport[] = [];
    for (const system of options.systems) {
      for (const workers of system === 'modelgate-pglite' ? [1] : options.workers) {
        systems.push(await measureSystem(system, workers, context, throughputCells, latencyCells));
      }
    }
    const targets = checkTargets(throughputCells, latencyCells, options.workers);
    const results = {
      date: run.startedAt.toISOString(),
      durationSeconds: round((Date.now() - run.startedAt.getTime()) / 1000, 1),
      source: describeSource(),
      machine: describeMachine(run, {
        onnxruntimeNode: readPackageVersion('onnxruntime-node'),
        pgBoss: readPackageVersion('pg-boss'),
        graphileWorker: readPackageVersion('graphile-worker'),
        pg: readPackageVersion('pg'),
        pglite: readPackageVersion('@electric-sql/pglite'),
        postgres,
      }),
      settings: {
        systems: options.systems,
        workerProcesses: options.workers,
        trivialJobs: options.trivialJobs,
        wideMlpJobs: options.wideJobs,
        latencyJobs: options.latencyJobs,
        warmupJobsPerRound: options.warmupJobs,
        warmupSecondsPerWorkload: options.warmupSeconds,
        submitters: options.submitters,
        unfinishedPollMs: options.pollMs,
        peerResultPollMs: RESULT_POLL_MS,
        phaseTimeoutSeconds: options.phaseTimeoutSeconds,
        noisyRetries: options.noisyRetries,
        noisyOtherCpuCores: NOISY_OTHER_CPU_CORES,
        throughput:
          'K jobs submitted by concurrent submitters (each submits, awaits acceptance, submits the next); timed from ' +
          'the first submit until a poll of the unfinished jobs (started once all submits were accepted) finds none; ' +
          'jobs/s = succeeded jobs / that time',
        latency:
          'one job at a time, after a random pause (up to 10 ms; for pg-boss up to its polling interval): from the ' +
          'submit call until the result is observed; nearest-rank percentiles',
        latencyPauseMaxMs: {
          notified: NOTIFIED_LATENCY_PAUSE_MAX_MS,
          'pg-boss': options.pgBossPollingIntervalSeconds * 1000,
        },
        requests: Object.fromEntries(
          [...context.workloads.values()].map((workload) => [
            workload.id,
            { model: workload.model, row: workload.row, rowSource: workload.rowSource, body: workload.body },
          ]),
        ),
        targets: {
          throughputVsPgBoss: TARGET_THROUGHPUT_VS_PG_BOSS,
          throughputVsGraphileWorker: TARGET_THROUGHPUT_VS_GRAPHILE_WORKER,
          p50Ms: TARGET_P50_MS,
        },
      },
      systems,
      throughput: throughputCells,
      latency: latencyCells,
      targets,
    };
    const report =
      `\nThroughput (submit -> finished)\n${formatThroughputTable(throughputCells)}\n` +
      `\nSubmit-to-result latency, one job at a time\n${formatLatencyTable(latencyCells)}\n` +
      `\nTargets:\n${formatTargets(targets)}\n`;
    writeResults(options.outPath, results, report, {
      wrote: ` (${results.durationSeconds} s)`,
      failure: [...throughputCells, ...latencyCells].some((cell) => !cell.ok)
        ? 'Some measurements had failed or unfinished jobs: their numbers are not comparable.'
        : undefined,
    });
  } finally {
    await monitor?.end().catch(() => undefined);
  }
}

await runBenchmark({ name: 'queue', usage: USAGE, parseOptions, run: runQueue });
