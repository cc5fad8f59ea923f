// Realtime benchmark: single-row predictions on the small (iris) and the large (wide-mlp) example model at
// 1, 16 and 64 concurrent clients, against four servers measured in one run, each its own child process on
// 127.0.0.1: (a) a fixed-response node:http ceiling, (b) the hand-written bare onnxruntime-node peer,
// (c) modelgate with batching off and (d) modelgate with batching on. Prints a table and the issue's
// targets, and writes bench/results/realtime.json. Run: npm run bench:realtime -- --help
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { ServerProcess } from './lib/children.ts';
import { ownCpuSeconds, readMachineBusySeconds, readProcessCpuSeconds, readThreadCount } from './lib/cpu.ts';
import { runLoad, type LoadSpec } from './lib/load.ts';
import { batchStatsBetween, readBatchTotals } from './lib/modelgate-metrics.ts';
import {
  checkTargets,
  formatTable,
  isNoisy,
  medianCells,
  SERVER_IDS,
  SERVER_LABELS,
  type Cell,
  type ServerId,
} from './lib/report.ts';
import { describeMachine, runBenchmark, writeResults, type BenchmarkRun } from './lib/run.ts';
import {
  modelgateConfigFor,
  OWNED_MODELGATE_ENV,
  REPO_ROOT,
  START_ORDER,
  startBenchServer,
  type ServerInputs,
} from './lib/servers.ts';
import { buildWorkload, MODEL_NAMES, type ModelName, type Workload } from './lib/workload.ts';
import { describeSource, readPackageVersion } from './lib/source.ts';
import { round } from './lib/stats.ts';
import { formatTargets, NOISY_OTHER_CPU_CORES } from './lib/verdict.ts';

// Keep-alive sockets of the previous cell close before the next one opens its connections.
const PAUSE_BETWEEN_CELLS_MS = 300;
const PAUSE_BEFORE_RETRY_MS = 2000;

const USAGE = `Usage: npm run bench:realtime -- [options]

  --duration <s>      measured seconds per cell (env BENCH_DURATION_S; default 5)
  --warmup <s>        warm-up seconds per server and model, at the most clients (env BENCH_WARMUP_S; default 2)
  --rounds <n>        measure every server this many times, each time in a fresh process; the table and the
                      targets use each cell's median round (env BENCH_ROUNDS; default 3)
  --noisy-retries <n> measure a cell again up to n times while other work on the machine used more than
                      ${NOISY_OTHER_CPU_CORES} cores during it; the quietest attempt is kept (env BENCH_NOISY_RETRIES; default 2)
  --clients <list>    concurrent clients (env BENCH_CLIENTS; default 1,16,64)
  --models <list>     ${MODEL_NAMES.join(',')} (default: both)
  --servers <list>    ${SERVER_IDS.join(',')} (default: all)
  --out <file>        results JSON (default bench/results/realtime.json)
  --modelgate-node-args=<flags>  extra node flags for modelgate, e.g. --modelgate-node-args="--cpu-prof"
  --help

modelgate runs with the MODELGATE_* variables of this environment (e.g. MODELGATE_MAX_BATCH_DELAY_MS,
MODELGATE_INFERENCE_THREADS), except ${OWNED_MODELGATE_ENV.join(', ')}, which the benchmark sets.
`;

interface Options {
  durationSeconds: number;
  warmupSeconds: number;
  noisyRetries: number;
  rounds: number;
  clients: number[];
  models: ModelName[];
  servers: ServerId[];
  outPath: string;
  modelgateNodeArgs: string[];
}

function parseList<T extends string>(text: string, allowed: readonly T[], flag: string): T[] {
  const items = text.split(',').map((item) => item.trim());
  const unknown = items.filter((item) => !allowed.includes(item as T));
  if (unknown.length > 0)
    throw new UsageError(`${flag}: unknown ${unknown.join(', ')}; use ${allowed.join(',')}`);
  return items as T[];
}

function parsePositive(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0)
    throw new UsageError(`${flag} must be a positive number, got "${text}"`);
  return value;
}

function parseCount(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0)
    throw new UsageError(`${flag} must be a whole number, got "${text}"`);
  return value;
}

class UsageError extends Error {}

function parseOptions(argv: string[], env: NodeJS.ProcessEnv): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: env.BENCH_DURATION_S ?? '5' },
      warmup: { type: 'string', default: env.BENCH_WARMUP_S ?? '2' },
      'noisy-retries': { type: 'string', default: env.BENCH_NOISY_RETRIES ?? '2' },
      rounds: { type: 'string', default: env.BENCH_ROUNDS ?? '3' },
      clients: { type: 'string', default: env.BENCH_CLIENTS ?? '1,16,64' },
      models: { type: 'string', default: MODEL_NAMES.join(',') },
      servers: { type: 'string', default: SERVER_IDS.join(',') },
      out: { type: 'string', default: join(REPO_ROOT, 'bench/results/realtime.json') },
      'modelgate-node-args': { type: 'string', default: '' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return undefined;
  const clients = values.clients.split(',').map((text) => parsePositive(text, '--clients'));
  if (!clients.every(Number.isInteger)) throw new UsageError('--clients must be whole numbers');
  const rounds = parsePositive(values.rounds, '--rounds');
  if (!Number.isInteger(rounds)) throw new UsageError('--rounds must be a whole number');
  const chosen = parseList(values.servers, SERVER_IDS, '--servers');
  // Always in this order: the ceiling answers with the response bytes of a server measured before it.
  const servers = START_ORDER.filter((id) => chosen.includes(id));
  if (servers[0] === 'ceiling') {
    throw new UsageError(
      "--servers: the ceiling copies another server's response; add modelgate or the peer",
    );
  }
  return {
    durationSeconds: parsePositive(values.duration, '--duration'),
    warmupSeconds: parsePositive(values.warmup, '--warmup'),
    noisyRetries: parseCount(values['noisy-retries'], '--noisy-retries'),
    rounds,
    clients,
    models: parseList(values.models, MODEL_NAMES, '--models'),
    servers,
    outPath: resolve(values.out),
    modelgateNodeArgs: values['modelgate-node-args'].split(/\s+/).filter(Boolean),
  };
}

/** Everything a server needs to start and be checked. */
interface RunContext extends ServerInputs {
  options: Options;
  workloads: Workload[];
  /** The first measured server's answer to each model's body: the ceiling sends it, the others must match it. */
  ceilingResponses: Map<ModelName, Buffer>;
}

interface Answer {
  status: number;
  bytes: Buffer;
}

async function post(url: string, headers: Record<string, string>, body: string): Promise<Answer> {
  const response = await fetch(url, { method: 'POST', headers, body });
  return { status: response.status, bytes: Buffer.from(await response.arrayBuffer()) };
}

/** Largest difference between two JSON answers' numbers; Infinity if their shapes differ. */
function largestDifference(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return Math.abs(a - b) / Math.max(1, Math.abs(b));
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return Infinity;
    return a.reduce((worst: number, item, i) => Math.max(worst, largestDifference(item, b[i])), 0);
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const keys = Object.keys(a);
    if (keys.join() !== Object.keys(b).join()) return Infinity;
    return keys.reduce(
      (worst, key) =>
        Math.max(
          worst,
          largestDifference((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]),
        ),
      0,
    );
  }
  return a === b ? 0 : Infinity;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (message: string) => process.stderr.write(`${message}\n`);

interface ServerReport {
  server: ServerId;
  label: string;
  announced: Record<string, unknown> | undefined;
  processThreadsAfterRun: number | undefined;
  responseBytes: Partial<Record<ModelName, number>>;
  /** Largest relative difference of the answer's numbers from modelgate's answer (0 = identical). */
  outputDifferenceFromModelgate: Partial<Record<ModelName, number>>;
}

async function measureServer(id: ServerId, context: RunContext, cells: Cell[]): Promise<ServerReport> {
  const { options } = context;
  log(`starting ${SERVER_LABELS[id]}`);
  const server = await startBenchServer(id, context);
  const report: ServerReport = {
    server: id,
    label: SERVER_LABELS[id],
    announced: server.info,
    processThreadsAfterRun: undefined,
    responseBytes: {},
    outputDifferenceFromModelgate: {},
  };
  try {
    if (id.startsWith('modelgate')) await checkDeployedModels(server, context);
    for (const workload of context.workloads) {
      const url = `${server.url}/v1/models/${workload.model}/predict`;
      const headers = requestHeaders(context);
      const answer = await post(url, headers, workload.body);
      if (answer.status !== 200) {
        throw new Error(`${id} answered ${answer.status} for ${workload.model}: ${answer.bytes.toString()}`);
      }
      if (!context.ceilingResponses.has(workload.model)) {
        context.ceilingResponses.set(workload.model, answer.bytes);
      }
      const reference = JSON.parse(context.ceilingResponses.get(workload.model)!.toString()) as unknown;
      report.responseBytes[workload.model] = answer.bytes.length;
      report.outputDifferenceFromModelgate[workload.model] = largestDifference(
        JSON.parse(answer.bytes.toString()),
        reference,
      );
      const load = { url, headers, body: workload.body };
      log(`  ${workload.model}: warm-up ${options.warmupSeconds} s`);
      await runLoad({
        ...load,
        connections: Math.max(...options.clients),
        durationSeconds: options.warmupSeconds,
      });
      for (const clients of options.clients) {
        const cellLoad = { ...load, connections: clients };
        cells.push(
          await measureQuietCell(() => measureCell(id, server, workload.model, cellLoad, options), options),
        );
      }
    }
    report.processThreadsAfterRun = readThreadCount(server.pid);
  } finally {
    await server.stop();
  }
  return report;
}

/**
 * Measures a cell and, when other work on this shared machine took more than NOISY_OTHER_CPU_CORES during
 * it, measures it again (up to --noisy-retries times), keeping the attempt with the least outside load.
 * The choice looks only at the outside load, never at the result, and is the same for every server.
 */
async function measureQuietCell(measure: () => Promise<Cell>, options: Options): Promise<Cell> {
  let kept: Cell | undefined;
  let attempts = 0;
  while (attempts <= options.noisyRetries) {
    await delay(attempts === 0 ? PAUSE_BETWEEN_CELLS_MS : PAUSE_BEFORE_RETRY_MS);
    attempts++;
    const cell = await measure();
    log(`  ${describeCell(cell)}`);
    if (!kept || cell.otherCpuCores < kept.otherCpuCores) kept = cell;
    if (!isNoisy(cell)) break;
    if (attempts <= options.noisyRetries)
      log(`    (other work used ${cell.otherCpuCores} cores: measuring again)`);
  }
  return { ...kept!, attempts };
}

async function measureCell(
  id: ServerId,
  server: ServerProcess,
  model: ModelName,
  load: Omit<LoadSpec, 'durationSeconds'>,
  options: Options,
): Promise<Cell> {
  const isModelgate = id.startsWith('modelgate');
  const batchTotalsBefore = isModelgate ? await readBatchTotals(server.url, model) : undefined;
  const serverCpuBefore = readProcessCpuSeconds(server.pid);
  const ownCpuBefore = ownCpuSeconds();
  const machineBusyBefore = readMachineBusySeconds();
  const result = await runLoad({ ...load, durationSeconds: options.durationSeconds });
  const machineBusy = (readMachineBusySeconds() ?? Number.NaN) - (machineBusyBefore ?? Number.NaN);
  const ownCpu = ownCpuSeconds() - ownCpuBefore;
  const serverCpu = (readProcessCpuSeconds(server.pid) ?? Number.NaN) - (serverCpuBefore ?? Number.NaN);
  const modelgateBatches = batchTotalsBefore
    ? batchStatsBetween(batchTotalsBefore, await readBatchTotals(server.url, model))
    : undefined;
  return {
    server: id,
    model,
    clients: load.connections,
    requestsPerSecond: round(result.requestsPerSecond, 1),
    p50Ms: round(result.p50Ms, 3),
    p99Ms: round(result.p99Ms, 3),
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    meanMs: round(result.meanMs, 3),
    responses2xx: result.responses2xx,
    durationSeconds: result.durationSeconds,
    serverCpuCores: round(serverCpu / result.durationSeconds, 2),
    serverCpuUsPerRequest: round((serverCpu / result.responses2xx) * 1e6, 1),
    loadGeneratorCpuCores: round(ownCpu / result.durationSeconds, 2),
    otherCpuCores: round((machineBusy - serverCpu - ownCpu) / result.durationSeconds, 2),
    ...(modelgateBatches ? { modelgateBatches } : {}),
    ok: result.non2xx === 0 && result.errors === 0 && result.responses2xx > 0,
    attempts: 1,
  };
}

function describeCell(cell: Cell): string {
  const batches = cell.modelgateBatches;
  return (
    `${cell.model} x${cell.clients}: ${cell.requestsPerSecond} req/s, p50 ${cell.p50Ms} ms, p99 ${cell.p99Ms} ms, ` +
    `server ${cell.serverCpuCores} cores (${cell.serverCpuUsPerRequest} µs CPU/request), ` +
    `load generator ${cell.loadGeneratorCpuCores} cores, rest of machine ${cell.otherCpuCores} cores` +
    (batches ? `, ${batches.meanRequestsPerBatch} requests/batch, ${batches.meanBatchWallMs} ms/batch` : '') +
    (cell.ok ? '' : `  << ${cell.non2xx} non-2xx, ${cell.errors} errors`)
  );
}

function requestHeaders(context: RunContext): Record<string, string> {
  // Every server gets the same request bytes, the key included; only modelgate checks it.
  return { 'content-type': 'application/json', authorization: `Bearer ${context.adminKey}` };
}

/** modelgate deployed the example models itself; make sure they are the bytes the peer loads. */
async function checkDeployedModels(server: ServerProcess, context: RunContext): Promise<void> {
  const response = await fetch(`${server.url}/v1/models`, { headers: requestHeaders(context) });
  const listing = (await response.json()) as {
    models: { name: string; versions: { sha256: string }[] }[];
  };
  for (const workload of context.workloads) {
    const deployed = listing.models.find((model) => model.name === workload.model)?.versions.at(-1)?.sha256;
    const ours = createHash('sha256').update(workload.onnx).digest('hex');
    if (deployed !== ours) {
      throw new Error(`${server.label}: ${workload.model} is ${deployed}, the peer loads ${ours}`);
    }
  }
}

async function runRealtime(options: Options, run: BenchmarkRun): Promise<void> {
  const { runDir } = run;
  const workloads = options.models.map(buildWorkload);
  const modelPaths = new Map<ModelName, string>();
  for (const workload of workloads) {
    const path = join(runDir, `${workload.model}.onnx`);
    writeFileSync(path, workload.onnx);
    modelPaths.set(workload.model, path);
  }
  const context: RunContext = {
    options,
    runDir,
    // A fresh key per run; each modelgate server starts on an empty database and takes it as admin key.
    adminKey: `mg_${randomBytes(20).toString('hex')}`,
    workloads,
    modelPaths,
    ceilingResponses: new Map(),
    modelgateNodeArgs: options.modelgateNodeArgs,
  };

  const modelgateConfigs = Object.fromEntries(
    options.servers
      .filter((id) => id.startsWith('modelgate'))
      .map((id) => [
        id,
        { config: modelgateConfigFor(id, context.adminKey), nodeArgs: options.modelgateNodeArgs },
      ]),
  );
  const roundCells: Cell[] = [];
  const servers: ServerReport[] = [];
  for (let round = 1; round <= options.rounds; round++) {
    if (options.rounds > 1) log(`round ${round} of ${options.rounds}`);
    for (const id of options.servers) {
      const report = await measureServer(id, context, roundCells);
      if (round === 1) servers.push(report);
    }
  }
  const cells = medianCells(roundCells);

  cells.sort(
    (a, b) =>
      MODEL_NAMES.indexOf(a.model) - MODEL_NAMES.indexOf(b.model) ||
      a.clients - b.clients ||
      SERVER_IDS.indexOf(a.server) - SERVER_IDS.indexOf(b.server),
  );
  const targets = checkTargets(cells);
  const results = {
    date: run.startedAt.toISOString(),
    source: describeSource(),
    machine: describeMachine(run, {
      onnxruntimeNode: readPackageVersion('onnxruntime-node'),
      autocannon: readPackageVersion('autocannon'),
    }),
    settings: {
      durationSecondsPerCell: options.durationSeconds,
      warmupSecondsPerServerAndModel: options.warmupSeconds,
      noisyRetries: options.noisyRetries,
      rounds: options.rounds,
      perCell: 'the median round of req/s (a fresh server process per round), with every round listed',
      noisyOtherCpuCores: NOISY_OTHER_CPU_CORES,
      warmupClients: Math.max(...options.clients),
      clients: options.clients,
      pipelining: 1,
      loadGenerator: 'autocannon, in the benchmark process, on the same cores as the servers',
      latency: 'exact per-response times of 2xx answers, nearest-rank percentiles',
      serverOrder: options.servers,
      // The ceiling answers, and the outputs are compared against, the first server's response.
      referenceResponseFrom: options.servers[0],
      requests: Object.fromEntries(
        workloads.map((workload) => [
          workload.model,
          { row: workload.row, rowSource: workload.rowSource, bodyBytes: Buffer.byteLength(workload.body) },
        ]),
      ),
      modelgate: modelgateConfigs,
    },
    servers,
    cells,
    targets,
  };
  writeResults(options.outPath, results, `\n${formatTable(cells)}\n\nTargets:\n${formatTargets(targets)}\n`, {
    failure: cells.some((cell) => !cell.ok)
      ? 'Some cells had non-2xx answers or errors: their numbers are not comparable.'
      : undefined,
  });
}

await runBenchmark({ name: 'realtime', usage: USAGE, parseOptions, run: runRealtime });
