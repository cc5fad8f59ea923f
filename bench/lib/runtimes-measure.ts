// What the runtimes benchmark's parts share: the run's context, measuring one setup cell by cell (load,
// CPU of every process that serves it and of the rest of the machine, what modelgate's batcher did), the
// servers it starts, and small HTTP helpers. The parts are runtimes-command.ts, runtimes-http.ts and
// runtimes-large.ts; bench/runtimes.ts runs them.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Pool } from 'undici';
import type { ServerProcess } from './children.ts';
import { runClosedLoop } from './closed-loop.ts';
import { ownCpuSeconds, readMachineBusySeconds } from './cpu.ts';
import { runLoad, type LoadResult } from './load.ts';
import { batchStatsBetween, readBatchTotals, type BatchStats } from './modelgate-metrics.ts';
import { readTreeCpuSeconds, treeCpuBetween, type TreeCpu } from './process-tree.ts';
import { isNoisy, SETUPS, type Cell, type PartId, type SetupId } from './runtimes-report.ts';
import { startBenchServer } from './servers.ts';
import { round } from './stats.ts';

export const PYTHON = '/usr/bin/python3';
const PAUSE_BETWEEN_CELLS_MS = 300;
const PAUSE_BEFORE_RETRY_MS = 2000;
/** Largest difference from the reference answer that still counts as the same answer (float32 rounding). */
const TOLERANCE = 1e-4;

export interface MeasureOptions {
  durationSeconds: number;
  warmupSeconds: number;
  noisyRetries: number;
}

/** One part of the benchmark: what it measures at which client counts, and how it runs one round. */
export interface Part {
  clients: number[];
  /** Settings of this part the results record (manifests, deployments, session options). */
  settings: Record<string, unknown>;
  run(context: RunContext): Promise<Cell[]>;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
export const log = (message: string) => process.stderr.write(`${message}\n`);

/** Everything the parts share in one run. */
export interface RunContext {
  options: MeasureOptions;
  runDir: string;
  adminKey: string;
  /** What each setup reported once (round 1): what it announced, deployed, and how its answer compared. */
  setups: Partial<Record<SetupId, Record<string, unknown>>>;
  /** Parts of this run that could not be measured in full, and why. */
  notes: string[];
  /** modelgate servers started so far: each gets a data directory of its own. */
  modelgateStarts: number;
}

// ---------------------------------------------------------------------------------------------------------
// Measuring one cell

/** The processes that serve a setup, by the name the results give them, and where its batcher's metrics are. */
export interface Serving {
  processes: Record<string, number>;
  /** modelgate setups: its base URL and the model, to read what its batcher did. */
  modelgate?: { url: string; model: string };
  /** The server is the benchmark process itself (the in-process run). */
  inThisProcess?: boolean;
}

export type RunCell = (clients: number, durationSeconds: number) => Promise<LoadResult>;

async function measureCell(
  setup: SetupId,
  serving: Serving,
  clients: number,
  run: RunCell,
  options: MeasureOptions,
) {
  const treesBefore = new Map<string, TreeCpu | undefined>(
    Object.entries(serving.processes).map(([name, pid]) => [name, readTreeCpuSeconds(pid)]),
  );
  const batchesBefore = serving.modelgate
    ? await readBatchTotals(serving.modelgate.url, serving.modelgate.model)
    : undefined;
  const ownBefore = ownCpuSeconds();
  const machineBefore = readMachineBusySeconds() ?? Number.NaN;
  const result = await run(clients, options.durationSeconds);
  const machine = (readMachineBusySeconds() ?? Number.NaN) - machineBefore;
  const own = ownCpuSeconds() - ownBefore;
  const byProcess: Record<string, number> = {};
  for (const [name, pid] of Object.entries(serving.processes)) {
    const before = treesBefore.get(name);
    const after = readTreeCpuSeconds(pid);
    if (!before || !after) continue;
    const spent = treeCpuBetween(before, after);
    byProcess[name] = spent.own;
    // A server's children by name: modelgate's program copies show as "modelgate > python3".
    for (const [child, cpu] of Object.entries(spent.descendants)) byProcess[`${name} > ${child}`] = cpu;
  }
  const serverCpu = serving.inThisProcess ? own : Object.values(byProcess).reduce((sum, v) => sum + v, 0);
  const loadGeneratorCpu = serving.inThisProcess ? 0 : own;
  const modelgateBatches: BatchStats | undefined =
    batchesBefore && serving.modelgate
      ? batchStatsBetween(
          batchesBefore,
          await readBatchTotals(serving.modelgate.url, serving.modelgate.model),
        )
      : undefined;
  const seconds = result.durationSeconds;
  const cell: Cell = {
    part: SETUPS[setup].part,
    setup,
    clients,
    requestsPerSecond: round(result.requestsPerSecond, 1),
    p50Ms: round(result.p50Ms, 3),
    p99Ms: round(result.p99Ms, 3),
    meanMs: round(result.meanMs, 3),
    responsesOk: result.responses2xx,
    failed: result.non2xx,
    errors: result.errors,
    durationSeconds: round(seconds, 2),
    serverCpuCores: round(serverCpu / seconds, 2),
    serverCpuUsPerRequest: round((serverCpu / result.responses2xx) * 1e6, 1),
    serverCpuCoresByProcess: Object.fromEntries(
      Object.entries(byProcess).map(([name, cpu]) => [name, round(cpu / seconds, 2)]),
    ),
    loadGeneratorCpuCores: round(loadGeneratorCpu / seconds, 2),
    otherCpuCores: round((machine - own - (serving.inThisProcess ? 0 : serverCpu)) / seconds, 2),
    ...(modelgateBatches ? { modelgateBatches } : {}),
    attempts: 1,
    ok: result.non2xx === 0 && result.errors === 0 && result.responses2xx > 0,
  };
  return cell;
}

function describeCell(cell: Cell): string {
  const batches = cell.modelgateBatches;
  return (
    `${SETUPS[cell.setup].label} x${cell.clients}: ${cell.requestsPerSecond} req/s, p50 ${cell.p50Ms} ms, ` +
    `p99 ${cell.p99Ms} ms, server ${cell.serverCpuCores} cores ${JSON.stringify(cell.serverCpuCoresByProcess)} ` +
    `(${cell.serverCpuUsPerRequest} µs CPU/request), load generator ${cell.loadGeneratorCpuCores} cores, ` +
    `rest of machine ${cell.otherCpuCores} cores` +
    (batches ? `, ${batches.meanRequestsPerBatch} requests/batch, ${batches.meanBatchWallMs} ms/batch` : '') +
    (cell.ok ? '' : `  << ${cell.failed} failed, ${cell.errors} errors`)
  );
}

/**
 * Warms the setup up at its most clients, then measures it at each client count. A cell during which other
 * work on this shared machine took more than NOISY_OTHER_CPU_CORES is measured again (up to
 * --noisy-retries times), keeping the attempt with the least outside load: the choice looks only at the
 * outside load, never at the result.
 */
export async function measureSetup(
  setup: SetupId,
  serving: Serving,
  run: RunCell,
  options: MeasureOptions,
  clientCounts: number[],
): Promise<Cell[]> {
  if (options.warmupSeconds > 0) await run(Math.max(...clientCounts), options.warmupSeconds);
  const cells: Cell[] = [];
  for (const clients of clientCounts) {
    let kept: Cell | undefined;
    for (let attempt = 1; attempt <= options.noisyRetries + 1; attempt++) {
      await delay(attempt === 1 ? PAUSE_BETWEEN_CELLS_MS : PAUSE_BEFORE_RETRY_MS);
      const cell = await measureCell(setup, serving, clients, run, options);
      log(`  ${describeCell(cell)}`);
      if (!kept || cell.otherCpuCores < kept.otherCpuCores) kept = { ...cell, attempts: attempt };
      if (!isNoisy(cell)) break;
      if (attempt <= options.noisyRetries)
        log(`    (other work used ${cell.otherCpuCores} cores: measuring again)`);
    }
    cells.push(kept!);
  }
  return cells;
}

// ---------------------------------------------------------------------------------------------------------
// Servers and calls

/**
 * A fresh modelgate (empty database, its own data directory, removed when it stops), started as
 * bench:realtime starts it: `serve --examples` with this environment's MODELGATE_* settings.
 */
export async function startModelgate(context: RunContext, part: PartId): Promise<ServerProcess> {
  const runDir = join(context.runDir, `${part}-${++context.modelgateStarts}`);
  mkdirSync(runDir, { recursive: true });
  const server = await startBenchServer('modelgate-batching', {
    adminKey: context.adminKey,
    runDir,
    modelPaths: new Map(),
    ceilingResponses: new Map(),
    modelgateNodeArgs: [],
  });
  return {
    ...server,
    async stop() {
      await server.stop();
      rmSync(runDir, { recursive: true, force: true });
    },
  };
}

/** A modelgate setup: that process (and the `others` it calls), and the model whose batches it reports. */
export const modelgateServing = (
  modelgate: ServerProcess,
  model: string,
  others: Record<string, number> = {},
): Serving => ({
  processes: { modelgate: modelgate.pid, ...others },
  modelgate: { url: modelgate.url, model },
});

export interface Answer {
  status: number;
  bytes: Buffer;
  headers: Headers;
}

export async function call(
  url: string,
  init: {
    method?: string;
    key?: string;
    json?: unknown;
    body?: Uint8Array | string;
    headers?: Record<string, string>;
  },
): Promise<Answer> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.key) headers.authorization = `Bearer ${init.key}`;
  let body = init.body;
  if (init.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(init.json);
  }
  const response = await fetch(url, {
    method: init.method ?? (body === undefined ? 'GET' : 'POST'),
    headers,
    body: typeof body === 'string' || body === undefined ? body : new Uint8Array(body),
  });
  return {
    status: response.status,
    bytes: Buffer.from(await response.arrayBuffer()),
    headers: response.headers,
  };
}

export const jsonOf = (answer: Answer) => JSON.parse(answer.bytes.toString()) as Record<string, unknown>;

export function expectStatus(answer: Answer, status: number, what: string): void {
  if (answer.status !== status)
    throw new Error(`${what}: answered ${answer.status}: ${answer.bytes.toString()}`);
}

/** The one call a setup answers before it is measured: anything but 200 stops the part. */
export async function callSetup(
  setup: SetupId,
  url: string,
  init: Parameters<typeof call>[1],
): Promise<Answer> {
  const answer = await call(url, init);
  expectStatus(answer, 200, SETUPS[setup].label);
  return answer;
}

/** Uploads a version of `model` to a modelgate of this run: its bytes (ONNX, an archive) or a deployment. */
export function deployVersion(
  context: RunContext,
  modelgate: ServerProcess,
  model: string,
  upload: Uint8Array | Record<string, unknown>,
): Promise<Answer> {
  const init =
    upload instanceof Uint8Array
      ? { body: upload, headers: { 'content-type': 'application/octet-stream' } }
      : { json: upload };
  return call(`${modelgate.url}/v1/models/${model}/versions`, { key: context.adminKey, ...init });
}

/** The version a deploy created, as the results record it. */
export const deployedVersionOf = (deployed: Answer) =>
  (jsonOf(deployed).versions as unknown[] | undefined)?.[0];

/** Largest absolute difference between two equally long lists of numbers; Infinity if their lengths differ. */
export function largestDifference(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) return Infinity;
  return a.reduce((worst, value, i) => Math.max(worst, Math.abs(value - b[i]!)), 0);
}

/** A note for the results, once however many rounds make it. */
export function addNote(context: RunContext, note: string): void {
  if (!context.notes.includes(note)) context.notes.push(note);
}

/** Records how a setup's answer compares with the reference answer; warns when it is off. */
export function checkAnswer(
  context: RunContext,
  setup: SetupId,
  difference: number,
  extra: Record<string, unknown>,
) {
  context.setups[setup] = { ...context.setups[setup], ...extra, largestDifferenceFromReference: difference };
  if (!(difference <= TOLERANCE)) {
    log(`WARNING: ${SETUPS[setup].label} answers differently from the reference (difference ${difference})`);
    addNote(context, `${setup}: its answer differs from the reference by ${difference}`);
  }
}

export const float32Base64 = (values: readonly number[]) =>
  Buffer.from(Float32Array.from(values).buffer).toString('base64');

/** A protocol tensor's values, in either encoding (JSON array or little-endian b64). */
export function wireValues(tensor: { datatype: string; data: unknown } | undefined): number[] {
  if (!tensor) return [];
  if (Array.isArray(tensor.data)) return tensor.data as number[];
  const bytes = Buffer.from((tensor.data as { b64: string }).b64, 'base64');
  if (tensor.datatype === 'INT64') {
    return Array.from(new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.length / 8), Number);
  }
  return Array.from(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)));
}

/** An undici pool of `clients` keep-alive connections, closed after the cell. */
async function withPool<T>(url: string, clients: number, use: (pool: Pool) => Promise<T>): Promise<T> {
  const pool = new Pool(url, { connections: clients, pipelining: 1 });
  try {
    return await use(pool);
  } finally {
    await pool.close();
  }
}

/** A closed loop of POSTs of the same bytes through undici (for bodies autocannon cannot send as given). */
export function undiciLoad(
  url: string,
  path: string,
  headers: Record<string, string>,
  body: Buffer,
): RunCell {
  return (clients, durationSeconds) =>
    withPool(url, clients, (pool) =>
      runClosedLoop({
        clients,
        durationSeconds,
        async send() {
          const response = await pool.request({ path, method: 'POST', headers, body });
          await response.body.arrayBuffer();
          return response.statusCode === 200;
        },
      }),
    );
}

/** autocannon, as bench:realtime loads its servers. */
export function autocannonLoad(url: string, headers: Record<string, string>, body: string): RunCell {
  return (connections, durationSeconds) => runLoad({ url, headers, body, connections, durationSeconds });
}
