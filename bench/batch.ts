// Batch benchmark: a CSV of N rows (default 1,000,000) of the wide-mlp example model's 64 features, made
// here from a fixed seed (not committed), through modelgate on the real Postgres: a gateway and 1 or 2
// worker processes, run from the build (npm run build) as production runs them, from the submit until the output file is complete, then the output downloaded. Next to
// it, in the same run, the ceiling: onnxruntime-node in this process on the same rows in batches of the same
// size (as many intra-op threads as workers), no parsing, no I/O. Reports rows/s, the share of the ceiling
// and the peak RSS of every process, and writes bench/results/batch.json. Run: npm run bench:batch -- --help
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { finished } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { Pool } from 'undici';
import { CHUNK_ROWS } from '../src/batch/part.ts';
import { createRng } from '../examples/build.ts';
import { parseNumber, UsageError } from './lib/args.ts';
import { installCleanup } from './lib/children.ts';
import { HOST, REPO_ROOT } from './lib/servers.ts';
import { describeSource, readPackageVersion } from './lib/source.ts';
import { buildWorkload, normalFeatures, WIDE_MLP_INPUTS } from './lib/workload.ts';
import { benchDatabaseUrl, createSchema, dropSchema, newSchemaName, redactedUrl } from './queue/database.ts';
import { modelgateEnv, startModelgateProcess } from './queue/modelgate.ts';
import type { ServerProcess } from './lib/children.ts';

const USAGE = `Usage: npm run bench:batch -- [options]

  --rows <n>           rows in the input file (default 1000000; the file is made once under bench/tmp/)
  --workers <list>     worker processes, 1 to 8 each (default 1,2)
  --database-url <url> Postgres server (env BENCH_DATABASE_URL, TEST_DATABASE_URL; default
                       postgres://postgres@127.0.0.1:5432/test); every run gets a fresh schema, dropped after
  --out <file>         results JSON (default bench/results/batch.json)
  --help
`;

/** The targets of issue 4: end to end at least half the ceiling; every process under this RSS. */
const TARGET_SHARE_OF_CEILING = 0.5;
const TARGET_PEAK_RSS_MB = 300;
const RSS_SAMPLE_MS = 250;
const STATUS_POLL_MS = 500;
const FEATURES = Array.from({ length: WIDE_MLP_INPUTS }, (_, i) => `f${i}`);

const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;
const log = (line: string) => process.stderr.write(`${line}\n`);

function parseOptions(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: 'string', default: '1000000' },
      workers: { type: 'string', default: '1,2' },
      'database-url': { type: 'string', default: benchDatabaseUrl(process.env) },
      out: { type: 'string', default: join(REPO_ROOT, 'bench/results/batch.json') },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return undefined;
  return {
    rows: parseNumber(values.rows, '--rows'),
    workers: values.workers.split(',').map((text) => parseNumber(text.trim(), '--workers', { max: 8 })),
    databaseUrl: values['database-url'],
    outPath: resolve(values.out),
  };
}

/** The rows, as the file has them: row r is `r, f0…f63` from one seeded generator. */
function* featureRows(rows: number): Generator<number[]> {
  const rng = createRng(11);
  for (let r = 0; r < rows; r++) yield normalFeatures(rng, WIDE_MLP_INPUTS);
}

async function ensureInputFile(rows: number): Promise<string> {
  const path = join(REPO_ROOT, 'bench/tmp', `batch-${rows}.csv`);
  if (existsSync(path)) return path;
  mkdirSync(join(REPO_ROOT, 'bench/tmp'), { recursive: true });
  log(`making ${relative(REPO_ROOT, path)} (${rows} rows)`);
  const partial = `${path}.partial`;
  const out = createWriteStream(partial);
  out.write(`id,${FEATURES.join(',')}\n`);
  let id = 0;
  for (const row of featureRows(rows)) {
    if (!out.write(`${++id},${row.join(',')}\n`))
      await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  out.end();
  await finished(out);
  renameSync(partial, path);
  return path;
}

/** onnxruntime-node on the same rows, CHUNK_ROWS a call, `threads` intra-op threads: rows/s. */
async function measureCeiling(onnx: Uint8Array, rows: number, threads: number) {
  const session = await ort.InferenceSession.create(onnx, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const inputName = session.inputNames[0]!;
  // The rows made before the clock starts: the ceiling has no parsing.
  const batches: Float32Array[] = [];
  let chunk: number[] = [];
  for (const row of featureRows(rows)) {
    chunk.push(...row);
    if (chunk.length === CHUNK_ROWS * WIDE_MLP_INPUTS) {
      batches.push(Float32Array.from(chunk));
      chunk = [];
    }
  }
  if (chunk.length > 0) batches.push(Float32Array.from(chunk));
  const startedAt = performance.now();
  for (const data of batches) {
    await session.run({
      [inputName]: new ort.Tensor('float32', data, [data.length / WIDE_MLP_INPUTS, WIDE_MLP_INPUTS]),
    });
  }
  const seconds = (performance.now() - startedAt) / 1000;
  await session.release();
  return {
    threads,
    rows,
    batchRows: CHUNK_ROWS,
    seconds: round(seconds, 2),
    rowsPerSecond: round(rows / seconds, 1),
  };
}

function rssMegabytes(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
    return kb / 1024;
  } catch {
    return Number.NaN;
  }
}

async function measureModelgate(options: {
  file: string;
  rows: number;
  workers: number;
  databaseUrl: string;
}) {
  const schema = newSchemaName(`batch_${options.workers}w`);
  await createSchema(options.databaseUrl, schema);
  const runDir = join(REPO_ROOT, 'bench/tmp', schema);
  mkdirSync(runDir, { recursive: true });
  const modelgateOptions = {
    runDir,
    adminKey: `mg_${randomBytes(24).toString('hex')}`,
    workloads: [],
    postgres: { url: options.databaseUrl, schema, workers: options.workers },
  };
  const started: ServerProcess[] = [];
  // Peak RSS of each process in each phase: where memory goes says what to cut.
  let phase: 'start' | 'upload' | 'run' | 'download' = 'start';
  const peaks = new Map<string, Record<string, number>>();
  const sampler = setInterval(() => {
    for (const child of started) {
      const byPhase = peaks.get(child.label) ?? {};
      byPhase[phase] = Math.max(byPhase[phase] ?? 0, rssMegabytes(child.pid));
      peaks.set(child.label, byPhase);
    }
  }, RSS_SAMPLE_MS);
  let http: Pool | undefined;
  try {
    const gateway = await startModelgateProcess(
      'gateway',
      ['serve', '--host', HOST, '--port', '0', '--no-workers'],
      modelgateEnv(modelgateOptions, runDir, 'batch-gateway'),
      { build: true },
    );
    started.push(gateway);
    for (let i = 1; i <= options.workers; i++) {
      started.push(
        await startModelgateProcess(
          `worker-${i}`,
          ['worker'],
          modelgateEnv(modelgateOptions, runDir, `batch-worker-${i}`),
          { build: true },
        ),
      );
    }
    http = new Pool(gateway.url);
    const headers = { authorization: `Bearer ${modelgateOptions.adminKey}` };
    const deployed = await http.request({
      path: '/v1/models/wide-mlp/versions',
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/octet-stream' },
      body: Buffer.from(buildWorkload('wide-mlp').onnx),
    });
    if (deployed.statusCode !== 201)
      throw new Error(`deploy answered ${deployed.statusCode}: ${await deployed.body.text()}`);
    await deployed.body.dump();
    const idle = Object.fromEntries(started.map((child) => [child.label, round(rssMegabytes(child.pid), 1)]));

    phase = 'upload';
    const startedAt = performance.now();
    const submitted = await http.request({
      path: `/v1/models/wide-mlp/batches?features=${FEATURES.join(',')}&passthrough=id`,
      method: 'POST',
      headers: { ...headers, 'content-type': 'text/csv' },
      body: createReadStream(options.file),
    });
    const batch = (await submitted.body.json()) as { id: string };
    if (submitted.statusCode !== 202)
      throw new Error(`submit answered ${submitted.statusCode}: ${JSON.stringify(batch)}`);
    const submitSeconds = (performance.now() - startedAt) / 1000;
    phase = 'run';
    let status: { status: string; rows_done: number; rows_failed: number; rows_per_second: number };
    for (;;) {
      const response = await http.request({ path: `/v1/batches/${batch.id}`, method: 'GET', headers });
      status = (await response.body.json()) as typeof status;
      if (!['queued', 'running'].includes(status.status)) break;
      await new Promise((resolve) => setTimeout(resolve, STATUS_POLL_MS));
    }
    const seconds = (performance.now() - startedAt) / 1000;
    if (status.status !== 'succeeded' || status.rows_done !== options.rows) {
      throw new Error(`the batch ended ${JSON.stringify(status)}`);
    }
    phase = 'download';
    const downloadStartedAt = performance.now();
    const output = await http.request({ path: `/v1/batches/${batch.id}/output`, method: 'GET', headers });
    let lines = 0;
    let bytes = 0;
    for await (const chunk of output.body) {
      bytes += (chunk as Buffer).length;
      for (const byte of chunk as Buffer) if (byte === 10) lines++;
    }
    if (lines !== options.rows + 1) throw new Error(`the output has ${lines} lines for ${options.rows} rows`);
    const downloadSeconds = (performance.now() - downloadStartedAt) / 1000;
    log(`  ${options.workers} worker(s): ${round(options.rows / seconds, 1)} rows/s end to end`);
    return {
      workers: options.workers,
      rows: options.rows,
      submitSeconds: round(submitSeconds, 2),
      seconds: round(seconds, 2),
      rowsPerSecond: round(options.rows / seconds, 1),
      rowsPerSecondOnceSubmitted: round(options.rows / (seconds - submitSeconds), 1),
      downloadSeconds: round(downloadSeconds, 2),
      outputBytes: bytes,
      idleRssMb: idle,
      peakRssMb: Object.fromEntries(
        [...peaks].map(([label, byPhase]) => [label, round(Math.max(...Object.values(byPhase)), 1)]),
      ),
      peakRssByPhaseMb: Object.fromEntries(
        [...peaks].map(([label, byPhase]) => [
          label,
          Object.fromEntries(Object.entries(byPhase).map(([name, mb]) => [name, round(mb, 1)])),
        ]),
      ),
    };
  } finally {
    clearInterval(sampler);
    await http?.close().catch(() => undefined);
    for (const child of started.reverse()) await child.stop();
    await dropSchema(options.databaseUrl, schema);
    rmSync(runDir, { recursive: true, force: true });
  }
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  if (!options) return void process.stdout.write(USAGE);
  installCleanup();
  const startedAt = new Date();
  const file = await ensureInputFile(options.rows);
  log('npm run build');
  execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const onnx = buildWorkload('wide-mlp').onnx;
  const runs = [];
  for (const workers of options.workers) {
    log(`ceiling: onnxruntime-node in process, ${workers} intra-op thread(s), ${CHUNK_ROWS} rows a call`);
    const ceiling = await measureCeiling(onnx, options.rows, workers);
    log(`  ${ceiling.rowsPerSecond} rows/s`);
    log(`modelgate: a gateway and ${workers} worker(s) on Postgres`);
    const modelgate = await measureModelgate({
      file,
      rows: options.rows,
      workers,
      databaseUrl: options.databaseUrl,
    });
    runs.push({
      workers,
      ceiling,
      modelgate,
      shareOfCeiling: round(modelgate.rowsPerSecond / ceiling.rowsPerSecond, 3),
    });
  }
  const targets = runs.flatMap((run) => [
    {
      target: `${run.workers} worker(s): end-to-end rows/s >= ${TARGET_SHARE_OF_CEILING} x the ceiling`,
      ok: run.shareOfCeiling >= TARGET_SHARE_OF_CEILING,
      measured: `${run.modelgate.rowsPerSecond} vs ${run.ceiling.rowsPerSecond} rows/s = ${run.shareOfCeiling}`,
    },
    ...Object.entries(run.modelgate.peakRssMb).map(([label, mb]) => ({
      target: `${run.workers} worker(s): ${label} peak RSS < ${TARGET_PEAK_RSS_MB} MB`,
      ok: mb < TARGET_PEAK_RSS_MB,
      measured: `${mb} MB`,
    })),
  ]);
  const lines = [
    'workers  ceiling rows/s  modelgate rows/s  share  submit s  total s  download s  peak RSS MB',
    ...runs.map(
      (run) =>
        `${String(run.workers).padStart(7)}  ${String(run.ceiling.rowsPerSecond).padStart(14)}  ${String(run.modelgate.rowsPerSecond).padStart(16)}  ${String(run.shareOfCeiling).padStart(5)}  ${String(run.modelgate.submitSeconds).padStart(8)}  ${String(run.modelgate.seconds).padStart(7)}  ${String(run.modelgate.downloadSeconds).padStart(10)}  ${Object.entries(
          run.modelgate.peakRssMb,
        )
          .map(([label, mb]) => `${label} ${mb}`)
          .join(', ')}`,
    ),
    '',
    'Targets:',
    ...targets.map((target) => `${target.ok ? 'PASS' : 'FAIL'}  ${target.target}: ${target.measured}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const report = {
    date: startedAt.toISOString(),
    durationSeconds: round((Date.now() - startedAt.getTime()) / 1000, 1),
    source: describeSource(),
    machine: {
      cpus: availableParallelism(),
      cpuModel: cpus()[0]?.model,
      totalMemoryGiB: round(totalmem() / 2 ** 30, 1),
      node: process.version,
      onnxruntimeNode: readPackageVersion('onnxruntime-node'),
      postgres: redactedUrl(options.databaseUrl),
    },
    settings: {
      rows: options.rows,
      input: `id + ${WIDE_MLP_INPUTS} standard-normal features (mulberry32 seed 11), CSV`,
      model: 'wide-mlp (the example model)',
      batchRows: CHUNK_ROWS,
      partRows: 'default (10,000)',
      workers: options.workers,
      timing:
        'from the start of the submit (the file streamed over HTTP) until GET /v1/batches/{id} says succeeded',
    },
    runs,
    targets,
  };
  writeFileSync(options.outPath, `${JSON.stringify(report, null, 2)}\n`);
  log(`wrote ${relative(process.cwd(), options.outPath)}`);
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`${error.message}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
